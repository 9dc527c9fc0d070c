"""Manifest: validation, accessors for scikit-learn, subsets and the CSV format."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from earmark.datasets import demo_path
from earmark.exceptions import EarmarkError, ManifestError, ParameterError
from earmark.manifest import Manifest, ManifestFormatError, ManifestItem


@pytest.fixture
def clips(tmp_path):
    """Six real recordings from the bundled demo in tmp_path/audio: 3 digits x 2 speakers."""
    folder = tmp_path / "audio"
    folder.mkdir()
    paths = []
    for digit in (0, 1, 2):
        for speaker in ("jackson", "theo"):
            name = f"{digit}_{speaker}_0.wav"
            shutil.copy(demo_path() / "recordings" / name, folder / name)
            paths.append(str(folder / name))
    return paths


def _frame(paths):
    return pd.DataFrame(
        {
            "path": paths,
            "labels": [p.rsplit("/", 1)[1][0] for p in paths],
            "group": [p.rsplit("_", 2)[1] for p in paths],
            "fold": [1, 2, 1, 2, 1, 2],
        }
    )


def test_frame_is_normalised_and_exposes_sklearn_arrays(clips):
    manifest = Manifest(_frame(clips))
    assert len(manifest) == 6
    assert manifest.classes == ["0", "1", "2"]
    assert manifest.frame["labels"].iloc[0] == ("0",)
    assert manifest.y.tolist() == ["0", "0", "1", "1", "2", "2"]
    assert manifest.groups.tolist() == ["jackson", "theo"] * 3
    assert manifest.folds.dtype == np.int64 and manifest.folds.tolist() == [1, 2] * 3
    assert (manifest.has_folds, manifest.has_groups, manifest.has_domains) == (True, True, False)
    assert not manifest.is_multilabel
    assert manifest.source == "table"
    with pytest.raises(ParameterError, match="expected a domain for every item, 6 of 6 lack one"):
        manifest.domains


def test_iteration_yields_items_with_none_for_missing(clips):
    frame = _frame(clips).assign(start_s=[0.1] + [None] * 5, end_s=[0.4] + [None] * 5)
    items = list(Manifest(frame))
    assert items[0] == ManifestItem(clips[0], ("0",), 1, "jackson", None, 0.1, 0.4)
    assert items[1].start_s is None and items[1].domain is None and items[1].label == "0"
    assert isinstance(items[0].fold, int)


def test_integer_labels_become_text_and_label_alias_is_accepted(clips):
    manifest = Manifest(pd.DataFrame({"path": clips, "label": [0, 0, 1, 1, 2, 2]}))
    assert manifest.classes == ["0", "1", "2"]
    assert not manifest.has_folds and not manifest.has_groups


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": None}, r"columns 'path' and 'labels'.*got \['path', 'group', 'fold'\]"),
        ({"path": ["audio/x.wav"] * 6}, r"column 'path': expected an absolute path.*audio/x.wav"),
        ({"fold": [1, 2, 1.5, 2, 1, 2]}, r"column 'fold': expected an integer, got 1.5 \(row 2\)"),
        ({"fold": ["one"] * 6}, r"'fold': expected an integer or a missing value, got 'one'"),
        ({"labels": ["a;b"] * 6}, r"column 'labels': expected non-empty strings without ';'"),
        ({"labels": [()] * 6}, r"column 'labels': expected at least one label per item"),
        ({"labels": [None] * 6}, r"column 'labels': expected at least one label per item"),
        ({"group": [3.5] * 6}, r"column 'group': expected a non-empty string or a missing value"),
        ({"start_s": [0.5] * 6, "end_s": [0.5] * 6}, r"0 <= start_s < end_s, got start_s=0.5"),
    ],
)
def test_invalid_frames_say_what_was_expected_and_what_came(clips, change, message):
    frame = _frame(clips)
    for column, values in change.items():
        if values is None:
            frame = frame.drop(columns=column)
        else:
            frame[column] = values
    with pytest.raises(ManifestFormatError, match=message) as caught:
        Manifest(frame)
    assert isinstance(caught.value, ManifestError) and isinstance(caught.value, ValueError)
    assert isinstance(caught.value, EarmarkError)


def test_not_a_frame_is_refused():
    with pytest.raises(ManifestFormatError, match="expected a pandas DataFrame, got list"):
        Manifest([{"path": "/a.wav", "labels": "x"}])


def test_multilabel_manifest_has_no_y(clips):
    frame = _frame(clips)
    frame["labels"] = [("dog", "bark"), ("dog",), ("cat",), ["cat", "purr"], "bird", ("bird",)]
    manifest = Manifest(frame)
    assert manifest.is_multilabel
    assert manifest.classes == ["bark", "bird", "cat", "dog", "purr"]
    assert manifest.frame["labels"].iloc[3] == ("cat", "purr")
    with pytest.raises(ParameterError, match="multi-label"):
        manifest.y
    with pytest.raises(ParameterError, match="expected one label"):
        next(iter(manifest)).label


def test_subset_by_mask_and_indices(clips):
    manifest = Manifest(_frame(clips), source="fsdd")
    by_mask = manifest.subset(manifest.folds == 2)
    assert by_mask.groups.tolist() == ["theo"] * 3 and by_mask.source == "fsdd"
    assert by_mask.frame.index.tolist() == [0, 1, 2]
    by_index = manifest.subset([5, 0])
    assert by_index.paths.tolist() == [clips[5], clips[0]]
    assert len(manifest.subset([])) == 0 and manifest.subset([]).classes == []
    assert len(manifest) == 6  # the original is untouched
    with pytest.raises(ParameterError, match=r"boolean mask of shape \(6,\), got \(2,\)"):
        manifest.subset([True, False])
    with pytest.raises(ParameterError, match="integer indices"):
        manifest.subset(["a"])
    with pytest.raises(ParameterError, match="expected indices below 6, got 6"):
        manifest.subset([0, 6])


def test_csv_round_trip_writes_relative_paths_that_follow_the_folder(clips, tmp_path):
    frame = _frame(clips).assign(domain=["studio"] * 6, start_s=[None, 0.1, None, None, None, None])
    frame["labels"] = [("0",), ("0", "zero"), ("1",), ("1",), ("2",), ("2",)]
    manifest = Manifest(frame)
    written = manifest.to_csv(tmp_path / "audio" / "manifest.csv")
    text = written.read_text()
    assert "0_jackson_0.wav,0,1,jackson,studio" in text  # relative path, missing start_s
    assert "0_theo_0.wav,0;zero,2,theo,studio,0.1," in text
    assert str(tmp_path) not in text

    again = Manifest.from_csv(written)
    assert again.source == "csv"
    pd.testing.assert_frame_equal(again.frame, manifest.frame)

    moved = shutil.copytree(tmp_path / "audio", tmp_path / "moved")
    relocated = Manifest.from_csv(moved / "manifest.csv")
    assert relocated.paths[0] == str(moved / "0_jackson_0.wav")


def test_csv_outside_the_audio_folder_keeps_absolute_paths(clips, tmp_path):
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    written = Manifest(_frame(clips)).to_csv(elsewhere / "m.csv")
    assert clips[0] in written.read_text()
    assert Manifest.from_csv(written).paths.tolist() == clips


def test_csv_accepts_common_column_names_and_empty_cells(clips, tmp_path):
    folder = tmp_path / "audio"
    (folder / "labels.csv").write_text(
        "Filename,Class,Speaker,fold,onset,offset,comment\n"
        "0_jackson_0.wav,zero,jackson,,0.05,0.3,good take\n"
        "sub/../1_theo_0.wav,one;uno,theo,3,,,\n"
    )
    manifest = Manifest.from_csv(folder / "labels.csv")
    expected = [str(folder / "0_jackson_0.wav"), str(folder / "1_theo_0.wav")]
    assert manifest.paths.tolist() == expected
    assert manifest.frame["labels"].tolist() == [("zero",), ("one", "uno")]
    assert manifest.frame["group"].tolist() == ["jackson", "theo"]
    assert manifest.frame["fold"].isna().tolist() == [True, False] and not manifest.has_folds
    assert manifest.frame["start_s"].iloc[0] == pytest.approx(0.05)
    assert manifest.frame["comment"].iloc[0] == "good take"  # unknown columns are kept


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("path,file,label\n", r"ambiguous 'path' column: \['path', 'file'\]"),
        ("path,speaker\n", r"expected a labels column named one of \['labels', 'label'"),
        ("name,label\n", r"expected a path column named one of .*got columns \['name', 'label'\]"),
        ("", "expected a CSV with a header row, got an empty file"),
    ],
)
def test_unusable_csv_is_refused_naming_the_file(tmp_path, header, message):
    path = tmp_path / "bad.csv"
    path.write_text(header)
    with pytest.raises(ManifestFormatError, match=message) as caught:
        Manifest.from_csv(path)
    assert str(path) in str(caught.value)


def test_csv_cell_errors_name_the_file_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("path,label,fold\na.wav,x,1\nb.wav,y,first\n")
    with pytest.raises(ManifestFormatError, match=r"bad.csv: column 'fold'.*'first' \(row 1\)"):
        Manifest.from_csv(path)


def test_describe_counts_classes_folds_and_groups(clips):
    manifest = Manifest(_frame(clips), source="fsdd")
    text = manifest.describe()
    assert text.splitlines()[0] == "6 items, 3 classes (single-label), source: fsdd"
    assert "classes: 0 2, 1 2, 2 2" in text
    assert "folds: 1 3, 2 3" in text
    assert "groups: 2 (3 items each)" in text
    # No item has a domain: said once, as "none", not again as a gap.
    assert "domains: none" in text and "without" not in text
    frame = _frame(clips)
    frame.loc[0, "group"] = None
    partial = Manifest(frame, source="fsdd").describe()
    assert "groups: 2 (2 to 3 items each)" in partial
    assert "items: 1 without a group" in partial
    summary = manifest.summary()
    assert summary["classes"] == {"0": 2, "1": 2, "2": 2} and summary["n_groups"] == 2
    assert repr(manifest) == "Manifest(6 items, 3 classes, source='fsdd')"
