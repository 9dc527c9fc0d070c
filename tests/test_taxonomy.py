"""Label taxonomies: both file shapes, errors that name the problem, shipped ones that fit."""

from __future__ import annotations

import json

import pytest

from earmark.datasets import load_dataset
from earmark.exceptions import ParameterError
from earmark.taxonomy import SHIPPED_TAXONOMIES, Taxonomy, load_taxonomy


def test_parent_map_and_tree_give_the_same_taxonomy(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"violin": "bowed", "cello": "bowed", "bowed": "strings"}))
    tree = tmp_path / "tree.yaml"
    tree.write_text("strings:\n  bowed: [violin, cello]\n")
    a, b = Taxonomy.from_file(flat), Taxonomy.from_file(tree)
    assert a == b
    assert a.ancestors("violin") == ("bowed", "strings")
    assert a.depth("violin") == 2 and a.depth("strings") == 0
    assert a.leaves == ("cello", "violin")
    assert a.at_level("cello", 1) == "bowed" and a.at_level("cello", 5) == "strings"
    assert a.closure(["cello"]) == {"cello", "bowed", "strings"}


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"a": "b", "b": "a"}, "cycle"),
        ({"a": "a"}, "its own parent"),
        ({"x": ["a"], "y": ["a"]}, "two parents"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_taxonomies_are_refused_with_the_reason(mapping, message):
    with pytest.raises(ParameterError, match=message):
        Taxonomy.from_mapping(mapping)


def test_a_bad_file_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("animals: [dog\n")
    with pytest.raises(ParameterError, match="broken.yaml"):
        load_taxonomy(path)
    with pytest.raises(ParameterError, match="neither a taxonomy file nor a shipped"):
        load_taxonomy("no-such-taxonomy")


def test_check_covers_names_missing_classes():
    taxonomy = Taxonomy.from_mapping({"dog": "animals"})
    with pytest.raises(ParameterError, match="no parent for 1 of 2 classes: 'rain'"):
        taxonomy.check_covers(["dog", "rain"])
    with pytest.raises(ParameterError, match="leaves"):
        Taxonomy.from_mapping({"dog": "animals", "animals": "living"}).check_covers(["animals"])


def test_esc50_has_five_groups_of_ten():
    taxonomy = load_taxonomy("esc50")
    groups = sorted({taxonomy.parent(leaf) for leaf in taxonomy.leaves})
    assert groups == sorted(
        ["animals", "natural soundscapes", "human non-speech", "interior/domestic",
         "exterior/urban"]
    )
    assert all(len(taxonomy.children(group)) == 10 for group in groups)


@pytest.mark.parametrize(
    "name, fixture", [("philharmonia", "philharmonia_dir"), ("speech-commands", "speech_commands_dir")]
)
def test_shipped_taxonomies_cover_the_real_datasets(name, fixture, request):
    manifest = load_dataset(request.getfixturevalue(fixture))
    load_taxonomy(name).check_covers(manifest.classes)


def test_every_shipped_taxonomy_loads():
    for name in SHIPPED_TAXONOMIES:
        assert len(load_taxonomy(name).leaves) >= 10
