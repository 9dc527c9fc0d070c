"""Layout detection and loading, on the real shared datasets and on small trees of real audio."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest

from earmark.audio import info
from earmark.datasets import LAYOUTS, LayoutError, demo_path, detect_layout, load_dataset
from earmark.exceptions import ManifestError, ParameterError


def _real_wav(index: int):
    """A real 8 kHz recording (from the bundled demo) to stand in for another dataset's clip."""
    return sorted((demo_path() / "recordings").glob("*_theo_*.wav"))[index]


# --- the real datasets -----------------------------------------------------------------


def test_fsdd_gives_digits_grouped_by_speaker(fsdd_dir):
    for path in (fsdd_dir, fsdd_dir / "recordings"):
        assert detect_layout(path) == "fsdd"
    manifest = load_dataset(fsdd_dir)
    assert manifest.source == "fsdd"
    assert len(manifest) == 3000
    assert manifest.classes == [str(d) for d in range(10)]
    assert collections.Counter(manifest.y) == {str(d): 300 for d in range(10)}
    assert collections.Counter(manifest.groups) == {
        s: 500 for s in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    }
    assert manifest.domains.tolist() == manifest.groups.tolist()
    assert not manifest.has_folds
    for item in manifest.subset(np.arange(0, 3000, 250)):
        name = item.path.rsplit("/", 1)[1]
        assert name.startswith(f"{item.label}_{item.group}_")


def test_speech_commands_folds_follow_the_official_lists(speech_commands_dir):
    assert detect_layout(speech_commands_dir) == "speech_commands"
    manifest = load_dataset(speech_commands_dir)
    assert len(manifest) == 300
    assert collections.Counter(manifest.y) == {w: 10 for w in manifest.classes}
    assert len(manifest.classes) == 30
    validation = set((speech_commands_dir / "validation_list.txt").read_text().split())
    testing = set((speech_commands_dir / "testing_list.txt").read_text().split())
    for item in manifest:
        relative = "/".join(item.path.rsplit("/", 2)[1:])
        expected = 1 if relative in validation else 2 if relative in testing else 0
        assert item.fold == expected, relative
        assert item.group == relative.split("/")[1].split("_nohash_")[0]
    assert set(manifest.folds) == {0, 1, 2}
    # The official lists keep each speaker inside one partition.
    folds_per_speaker = manifest.frame.groupby("group")["fold"].nunique()
    assert folds_per_speaker.max() == 1


def test_speech_commands_skips_background_noise(speech_commands_dir, tmp_path):
    for name in ("yes", "no", "validation_list.txt", "testing_list.txt"):
        (tmp_path / name).symlink_to(speech_commands_dir / name)
    noise = tmp_path / "_background_noise_"
    noise.mkdir()
    shutil.copy(next((speech_commands_dir / "up").glob("*.wav")), noise / "white_noise.wav")
    assert detect_layout(tmp_path) == "speech_commands"
    manifest = load_dataset(tmp_path)
    assert manifest.classes == ["no", "yes"] and len(manifest) == 20


def test_philharmonia_is_enriched_with_dynamics_and_notes(philharmonia_dir):
    assert detect_layout(philharmonia_dir) == "philharmonia"
    manifest = load_dataset(philharmonia_dir)
    assert len(manifest) == 480
    assert collections.Counter(manifest.y) == {c: 40 for c in manifest.classes}
    assert len(manifest.classes) == 12 and "cor_anglais" in manifest.classes
    for item, note in zip(manifest, manifest.frame["note"]):
        _, file_note, _, dynamic, _ = item.path.rsplit("/", 1)[1][: -len(".mp3")].split("_")
        assert (item.domain, note) == (dynamic, file_note)
        assert item.group == f"{item.label}/{dynamic}"
    assert manifest.frame["group"].nunique() == 63
    assert set(manifest.domains) >= {"pianissimo", "piano", "forte", "fortissimo"}


def test_philharmonia_with_a_foreign_file_falls_back_to_folders(philharmonia_dir, tmp_path):
    for name in ("flute", "oboe"):
        shutil.copytree(philharmonia_dir / name, tmp_path / name)
    shutil.copy(next((tmp_path / "oboe").iterdir()), tmp_path / "oboe" / "my oboe take.mp3")
    assert detect_layout(tmp_path) == "folders"
    manifest = load_dataset(tmp_path)
    assert (len(manifest), manifest.classes, manifest.has_groups) == (81, ["flute", "oboe"], False)


# --- known datasets rebuilt small, with real audio ------------------------------------------


@pytest.fixture
def esc50(tmp_path):
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = [
        ("1-100032-A-0.wav", 1, 0, "dog", "True", "100032", "A"),
        ("1-100032-B-0.wav", 1, 0, "dog", "True", "100032", "B"),
        ("2-118072-A-0.wav", 2, 0, "dog", "True", "118072", "A"),
        ("1-115545-A-48.wav", 1, 48, "fireworks", "False", "115545", "A"),
        ("3-115545-A-48.wav", 3, 48, "fireworks", "False", "155545", "A"),
    ]
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for index, row in enumerate(rows):
        shutil.copy(_real_wav(index), root / "audio" / row[0])
        lines.append(",".join(map(str, row)))
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


def test_esc50_uses_official_folds_and_source_recordings(esc50):
    assert detect_layout(esc50) == "esc50"
    assert detect_layout(esc50 / "meta" / "esc50.csv") == "esc50"
    manifest = load_dataset(esc50)
    assert manifest.source == "esc50"
    assert manifest.y.tolist() == ["dog", "dog", "dog", "fireworks", "fireworks"]
    assert manifest.folds.tolist() == [1, 1, 2, 1, 3]
    assert manifest.groups.tolist() == ["100032", "100032", "118072", "115545", "155545"]
    assert manifest.frame["esc10"].tolist() == [True, True, True, False, False]
    assert manifest.paths[0] == str(esc50 / "audio" / "1-100032-A-0.wav")
    assert all(info(path).sr == 8000 for path in manifest.paths)
    via_csv = load_dataset(esc50 / "meta" / "esc50.csv")
    assert via_csv.paths.tolist() == manifest.paths.tolist()


def test_esc50_listing_a_missing_file_is_an_error(esc50):
    (esc50 / "audio" / "2-118072-A-0.wav").unlink()
    with pytest.raises(ManifestError, match=r"esc50.csv: 1 of 5 listed audio files do not exist"):
        load_dataset(esc50)


@pytest.fixture
def urbansound8k(tmp_path):
    root = tmp_path / "UrbanSound8K"
    (root / "metadata").mkdir(parents=True)
    rows = [
        ("100032-3-0-0.wav", 100032, 0.0, 0.317551, 1, 5, 3, "dog_bark"),
        ("100263-2-0-117.wav", 100263, 58.5, 62.5, 1, 5, 2, "children_playing"),
        ("100263-2-0-121.wav", 100263, 60.5, 64.5, 1, 5, 2, "children_playing"),
        ("102305-6-0-0.wav", 102305, 0.0, 2.61, 2, 1, 6, "gun_shot"),
    ]
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for index, row in enumerate(rows):
        folder = root / "audio" / f"fold{row[5]}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(_real_wav(index), folder / row[0])
        lines.append(",".join(map(str, row)))
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    return root


def test_urbansound8k_groups_by_freesound_recording_and_ignores_start_end(urbansound8k):
    assert detect_layout(urbansound8k) == "urbansound8k"
    manifest = load_dataset(urbansound8k)
    assert manifest.y.tolist() == ["dog_bark", "children_playing", "children_playing", "gun_shot"]
    assert manifest.folds.tolist() == [5, 5, 5, 1]
    assert manifest.groups.tolist() == ["100032", "100263", "100263", "102305"]
    assert manifest.paths[3] == str(urbansound8k / "audio" / "fold1" / "102305-6-0-0.wav")
    # start/end locate the clip in its Freesound original: each clip is read whole.
    assert manifest.frame["start_s"].isna().all() and manifest.frame["end_s"].isna().all()


# --- generic layouts ---------------------------------------------------------------------


def test_class_folders_are_searched_recursively_for_audio_only(tmp_path):
    (tmp_path / "birds" / "2023").mkdir(parents=True)
    (tmp_path / "cars").mkdir()
    shutil.copy(_real_wav(0), tmp_path / "birds" / "a.wav")
    shutil.copy(_real_wav(1), tmp_path / "birds" / "2023" / "b.WAV")
    shutil.copy(_real_wav(2), tmp_path / "cars" / "c.wav")
    (tmp_path / "cars" / "notes.txt").write_text("not audio")
    (tmp_path / "cars" / "._c.wav").write_bytes(b"macOS metadata")
    (tmp_path / "empty").mkdir()
    assert detect_layout(tmp_path) == "folders"
    manifest = load_dataset(tmp_path)
    assert manifest.source == "folders"
    assert manifest.y.tolist() == ["birds", "birds", "cars"]
    assert [p.rsplit("/", 1)[1] for p in manifest.paths] == ["b.WAV", "a.wav", "c.wav"]


def test_csv_in_a_folder_of_audio(tmp_path):
    for index in range(3):
        shutil.copy(_real_wav(index), tmp_path / f"clip{index}.wav")
    (tmp_path / "labels.csv").write_text(
        "file,label,group\nclip0.wav,theo,a\nclip1.wav,theo;male,a\nclip2.wav,other,b\n"
    )
    assert detect_layout(tmp_path) == "csv"
    assert detect_layout(tmp_path / "labels.csv") == "csv"
    manifest = load_dataset(tmp_path)
    assert manifest.source == "csv" and manifest.is_multilabel
    assert manifest.paths.tolist() == [str(tmp_path / f"clip{i}.wav") for i in range(3)]
    (tmp_path / "labels.csv").write_text("file,label\nclip0.wav,x\nclip9.wav,y\n")
    with pytest.raises(ManifestError, match=r"1 of 2 listed audio files do not exist.*clip9.wav"):
        load_dataset(tmp_path / "labels.csv")


def test_forced_layout_overrides_detection():
    manifest = load_dataset(demo_path(), layout="folders")
    assert manifest.source == "folders" and manifest.classes == ["recordings"]
    with pytest.raises(ParameterError, match=r"expected layout 'auto' or one of \['csv'"):
        load_dataset(demo_path(), layout="esc-50")
    assert set(LAYOUTS) == {
        "csv", "esc50", "urbansound8k", "fsdd", "speech_commands", "philharmonia", "folders"
    }


# --- ambiguous and unrecognised ------------------------------------------------------------


def test_two_known_layouts_in_one_folder_are_ambiguous(esc50):
    (esc50 / "metadata").mkdir()
    (esc50 / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fsID,fold,class\n")
    with pytest.raises(LayoutError, match="ambiguous layout, it matches esc50, urbansound8k") as e:
        detect_layout(esc50)
    assert "meta/esc50.csv and audio/" in str(e.value)
    assert e.value.candidates == ("esc50", "urbansound8k")
    with pytest.raises(LayoutError, match="pass layout= to choose one"):
        load_dataset(esc50)
    assert len(load_dataset(esc50, layout="esc50")) == 5


def test_manifest_csv_beside_word_folders_is_ambiguous(speech_commands_dir, tmp_path):
    for name in ("yes", "testing_list.txt"):
        (tmp_path / name).symlink_to(speech_commands_dir / name)
    some_yes = sorted((speech_commands_dir / "yes").glob("*.wav"))[0].name
    (tmp_path / "mine.csv").write_text(f"path,label\nyes/{some_yes},yes\n")
    with pytest.raises(LayoutError, match="matches speech_commands, csv") as caught:
        detect_layout(tmp_path)
    assert "manifest CSV mine.csv" in str(caught.value)


def test_several_manifest_csvs_are_ambiguous(tmp_path):
    shutil.copy(_real_wav(0), tmp_path / "a.wav")
    for name in ("train.csv", "test.csv"):
        (tmp_path / name).write_text("path,label\na.wav,x\n")
    with pytest.raises(LayoutError, match=r"found 2 manifest CSVs \(test.csv, train.csv\)"):
        detect_layout(tmp_path)


def test_unrecognised_layouts_say_what_was_found(tmp_path):
    with pytest.raises(LayoutError, match="unrecognised layout: 0 audio files at the top, "
                       r"0 subfolders with audio, CSV files: none"):
        detect_layout(tmp_path)

    shutil.copy(_real_wav(0), tmp_path / "song.wav")
    (tmp_path / "speakers.csv").write_text("speaker,gender\ntheo,male\n")
    with pytest.raises(LayoutError, match=r"1 audio files at the top.*\['speakers.csv'\]"):
        detect_layout(tmp_path)

    (tmp_path / "dogs").mkdir()
    shutil.copy(_real_wav(1), tmp_path / "dogs" / "bark.wav")
    with pytest.raises(LayoutError, match="files directly in the dataset folder have none"):
        detect_layout(tmp_path)
    with pytest.raises(ManifestError, match=r"1 audio files \(e.g. song.wav\) lie outside"):
        load_dataset(tmp_path, layout="folders")


def test_paths_that_are_not_datasets(tmp_path):
    with pytest.raises(ManifestError, match="no such file or folder"):
        detect_layout(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError, match="expected a dataset folder or a .csv file, got a file"):
        detect_layout(tmp_path / "notes.txt")
    (tmp_path / "other.csv").write_text("name,value\nx,1\n")
    with pytest.raises(LayoutError, match=r"not a manifest CSV: expected a path column"):
        detect_layout(tmp_path / "other.csv")


def _class_tree(root: Path) -> Path:
    for index, label in enumerate(("dog", "cat")):
        (root / label).mkdir(parents=True)
        for take in range(2):
            shutil.copy(_real_wav(2 * index + take), root / label / f"{label}{take}.wav")
    return root


def test_a_stray_predictions_csv_does_not_hijack_class_folders(tmp_path):
    root = _class_tree(tmp_path / "data")
    # What `earmark predict data -o data/predictions.csv` writes: real paths, a label.
    rows = [f"{p},dog,0.9,,False," for p in sorted(root.rglob("*.wav"))]
    (root / "predictions.csv").write_text("path,label,score,top_k,unknown,error\n"
                                          + "\n".join(rows) + "\n")
    (root / "old.csv").write_text("path,label\nelsewhere/x.wav,bird\n")
    assert detect_layout(root) == "folders"
    manifest = load_dataset(root)
    assert manifest.source == "folders" and sorted(manifest.classes) == ["cat", "dog"]
    notes = " | ".join(manifest.detection_notes)
    assert "ignored predictions.csv: earmark's output" in notes
    assert "ignored old.csv: its paths do not name files here (0 of the first 1 exist)" in notes


def test_the_manifest_csv_taken_is_named(tmp_path):
    root = _class_tree(tmp_path / "data")
    (root / "labels.csv").write_text("path,label\ndog/dog0.wav,loud\ncat/cat1.wav,quiet\n")
    (root / "predictions.csv").write_text("path,label,score\ndog/dog0.wav,dog,0.5\n")
    manifest = load_dataset(root)
    assert manifest.source == "csv" and sorted(manifest.classes) == ["loud", "quiet"]
    assert manifest.detection_notes[0] == "manifest: labels.csv"
    assert any(note.startswith("ignored predictions.csv") for note in manifest.detection_notes)


def test_files_of_types_not_read_as_audio_are_counted_not_dropped_in_silence(tmp_path):
    root = _class_tree(tmp_path / "data")
    (root / "dog" / "bark.mid").write_bytes(b"MThd")
    (root / "cat" / "meow.xyz").write_bytes(b"?")
    (root / "cat" / "notes.txt").write_text("companion files are not worth a word")
    manifest = load_dataset(root)
    assert len(manifest) == 4
    (note,) = [n for n in manifest.detection_notes if n.startswith("not read")]
    assert "2 file(s) of types earmark does not read as audio (1 .mid, 1 .xyz)" in note
