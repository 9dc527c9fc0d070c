"""Refinement prunes redundant prototypes and weak channels, and keeps prototypes real."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from _protonet_data import labels_of, trained
from earmark.exceptions import ParameterError
from earmark.interpret.protonet import PrototypeNetwork
from earmark.interpret.refine import refine, refine_manifest


@pytest.fixture(scope="module")
def small(speech_commands_dir):
    return trained(speech_commands_dir)


@pytest.fixture(scope="module")
def with_duplicate(small):
    """The small network with prototype 1 made an exact copy of prototype 0."""
    network, _, _ = small
    duplicated = copy.deepcopy(network)
    same_class = np.flatnonzero(network.prototype_class_ == network.prototype_class_[0])
    twin = int(same_class[1])
    duplicated.params_["prototypes"][twin] = duplicated.params_["prototypes"][0]
    return duplicated, twin


def test_refine_merges_duplicates_prunes_channels_and_shrinks(with_duplicate, small):
    network, twin = with_duplicate
    _, manifest, patches = small
    before = {name: value.copy() for name, value in network.params_.items()}

    refined, report = refine(
        network, patches.X, labels_of(manifest, patches), min_channel_share=0.9, epochs=2
    )

    assert (twin, 0) in [tuple(pair) for pair in report.merged]
    assert report.n_prototypes_after == refined.n_prototypes_ < network.n_prototypes_
    assert report.n_channels_after == refined.params_["prototypes"].shape[1]
    assert report.n_channels_after < report.n_channels_before
    assert len(report.channels_removed) == report.n_channels_before - report.n_channels_after
    assert report.n_parameters_after == refined.n_parameters_ < network.n_parameters_
    assert 0 <= report.accuracy_after <= 1 and refined.refinement_ == report.to_dict()
    # The input network is left as it was.
    for name, value in before.items():
        np.testing.assert_array_equal(network.params_[name], value, err_msg=name)


def test_refined_prototypes_are_still_real_training_latents(with_duplicate, small):
    network, _ = with_duplicate
    _, manifest, patches = small

    refined, _ = refine(network, patches.X, labels_of(manifest, patches), epochs=1)

    rows = [segment["row"] for segment in refined.prototype_segments_]
    np.testing.assert_allclose(refined.params_["prototypes"], refined.encode(patches.X[rows]), atol=1e-4)
    np.testing.assert_array_equal(refined.prototype_patches_, patches.X[rows])


def test_refine_manifest_reports_item_accuracy_and_survives_saving(small, tmp_path):
    network, manifest, _ = small

    refined, report = refine_manifest(network, manifest, epochs=1, min_channel_share=0.5)
    loaded = PrototypeNetwork.load(refined.save(tmp_path / "refined.protonet"))

    assert loaded.refinement_["n_parameters_after"] == refined.n_parameters_
    assert loaded.prototype_audio_.shape[0] == refined.n_prototypes_
    assert np.abs(loaded.prototype_audio_).max() > 0  # the sounds were cut again
    assert report.summary().startswith(f"prototypes {network.n_prototypes_} -> ")


def test_refine_refuses_unknown_labels_and_bad_settings(small):
    network, _, patches = small
    with pytest.raises(ParameterError, match="among the network's classes"):
        refine(network, patches.X[:2], ["yes", "giraffe"])
    with pytest.raises(ParameterError, match="min_channel_share"):
        refine(network, patches.X[:2], ["yes", "no"], min_channel_share=1.5)
