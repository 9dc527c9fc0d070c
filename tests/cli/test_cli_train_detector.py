"""``earmark train --detector``: weak label sets (``a;b``, empty cells, ``--negatives``),
learned post-processing stored in the model and used by ``detect`` by default."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from _cli_data import WORDS

from earmark.models import EarmarkModel


def _weak_set(words_dir, tmp_path):
    """Recordings of one or two words (label sets), some of noise only (empty labels),
    and one row naming a missing file."""
    rng = np.random.default_rng(0)
    clips = {word: sorted((words_dir / word).glob("*.wav")) for word in WORDS}
    folder = tmp_path / "weak"
    folder.mkdir()
    rows = ["path,labels"]
    for index in range(24):
        chosen = [WORDS[index % 3]] + ([WORDS[(index + 1) % 3]] if index % 2 else [])
        parts = [0.01 * rng.normal(size=8000)]
        for word in chosen:
            y, sr = sf.read(clips[word][index % len(clips[word])])
            parts += [y, 0.01 * rng.normal(size=8000)]
        sf.write(folder / f"rec{index}.wav", np.concatenate(parts).astype(np.float32), 16000)
        rows.append(f"rec{index}.wav,{';'.join(chosen)}")
    for index in range(4):
        sf.write(folder / f"quiet{index}.wav", 0.01 * rng.normal(size=32000), 16000)
        rows.append(f"quiet{index}.wav,")
    rows.append("missing.wav,bed")
    (folder / "weak.csv").write_text("\n".join(rows) + "\n")
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    for index in range(3):
        sf.write(negatives / f"n{index}.wav", 0.02 * rng.normal(size=32000), 16000)
    return folder / "weak.csv", negatives


def test_detector_trains_on_label_sets_and_detect_uses_what_it_learned(cli, words_dir, tmp_path):
    manifest, negatives = _weak_set(words_dir, tmp_path)
    model_path = tmp_path / "m.earmark"

    trained = cli("train", manifest, "-b", "mfcc", "--detector", "--negatives", negatives,
                  "-o", model_path)

    assert trained.code == 0, trained.stderr
    text = trained.stdout + trained.stderr
    assert "row 29 (missing.wav): no such file" in " ".join(text.split())
    assert "7 with none of them" in text and "validation" in text
    model = EarmarkModel.load(model_path)
    assert model.kind == "frames" and model.learner == "detector"
    assert model.classes_.tolist() == list(WORDS) and model.context_frames == 2
    learned = model.postprocessing
    assert set(learned["thresholds"]) == set(WORDS)
    assert learned["validation"]["n_recordings"] > 0
    assert model.training["n_without_label"] == 7

    out = tmp_path / "out"
    run = cli("detect", model_path, manifest.parent / "rec1.wav", "-o", out, "--no-plot", "--json")
    assert run.code == 0, run.stderr
    (row,) = run.json()
    assert row["thresholds"] == [learned["thresholds"][w] for w in WORDS]
    again = cli("detect", model_path, manifest.parent / "rec1.wav", "-o", out, "--no-plot",
                "--json", "-t", "0.5", "--cells", "none")
    assert again.json()[0]["thresholds"] == [0.5] * 3


def test_mil_accepts_label_sets_and_negatives(cli, words_dir, tmp_path):
    manifest, negatives = _weak_set(words_dir, tmp_path)

    run = cli("train", manifest, "-b", "mfcc", "--mil", "attention", "--negatives", negatives,
              "-o", tmp_path / "m.earmark", "--json")

    assert run.code == 0, run.stderr
    assert run.json()["training"]["multilabel"] is True
    assert run.json()["training"]["n_without_label"] == 7


def test_negatives_need_a_frame_model(cli, words_dir, tmp_path):
    run = cli("train", words_dir, "-b", "mfcc", "--negatives", tmp_path, "-o", tmp_path / "m.earmark")
    assert run.code != 0 and "--negatives goes with --detector or --mil" in run.stderr


def _strong_set(words_dir, tmp_path):
    """The same kind of recordings, written with an events table (path, label, onset_s,
    offset_s): one row per word at the time it was placed, an empty-label row for each
    quiet recording, and three bad rows (a missing file, a time past the end, an offset
    before the onset)."""
    rng = np.random.default_rng(1)
    clips = {word: sorted((words_dir / word).glob("*.wav")) for word in WORDS}
    folder = tmp_path / "strong"
    folder.mkdir()
    rows = ["path,label,onset_s,offset_s"]
    for index in range(24):
        chosen = [WORDS[index % 3]] + ([WORDS[(index + 1) % 3]] if index % 2 else [])
        parts, at = [0.01 * rng.normal(size=8000)], 8000
        for word in chosen:
            y, sr = sf.read(clips[word][index % len(clips[word])])
            rows.append(f"rec{index}.wav,{word},{at / sr:.3f},{(at + len(y)) / sr:.3f}")
            parts += [y, 0.01 * rng.normal(size=8000)]
            at += len(y) + 8000
        sf.write(folder / f"rec{index}.wav", np.concatenate(parts).astype(np.float32), 16000)
    for index in range(4):
        sf.write(folder / f"quiet{index}.wav", 0.01 * rng.normal(size=32000), 16000)
        rows.append(f"quiet{index}.wav,,0,2")
    rows += ["missing.wav,bed,0,1", "rec0.wav,bed,99,100", "rec1.wav,bed,0.8,0.2"]
    (folder / "events.csv").write_text("\n".join(rows) + "\n")
    return folder / "events.csv"


def test_an_events_table_gives_strong_labels_and_names_its_bad_rows(cli, words_dir, tmp_path):
    from earmark.detection.detector import weak_items

    table = _strong_set(words_dir, tmp_path)
    items = weak_items(table)
    assert len(items.paths) == 28 and items.n_negatives == 4
    assert [len(events) for events in items.events[:2]] == [1, 2]
    assert items.label_sets[1] == tuple(sorted(label for label, _, _ in items.events[1]))
    said = " | ".join(items.skipped)
    assert "row 41 (missing.wav): no such file" in said
    assert "row 42 (rec0.wav): onset 99 s is past the end" in said
    assert "row 43 (rec1.wav): expected 0 <= onset_s < offset_s" in said

    model_path = tmp_path / "m.earmark"
    trained = cli("train", table, "-b", "mfcc", "--detector", "-o", model_path)
    assert trained.code == 0, trained.stderr
    assert "36 timed events (strong labels)" in " ".join((trained.stdout + trained.stderr).split())
    model = EarmarkModel.load(model_path)
    assert model.learner == "detector" and model.classes_.tolist() == list(WORDS)
    assert model.training["n_strongly_labelled"] == 28


def test_soundscapes_made_from_clips_train_a_detector(cli, words_dir, philharmonia_dir, tmp_path):
    """Words placed over orchestral notes (another kind of sound) at known times; the
    training table adds the soundscapes no word fell in; a detector trains on it."""
    import csv
    import shutil

    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    for note in sorted((philharmonia_dir / "cello").glob("*.mp3"))[:6]:
        shutil.copy(note, backgrounds / note.name)
    out = tmp_path / "scapes"
    made = cli("soundscapes", words_dir, "--backgrounds", backgrounds, "-o", out, "-n", "24",
               "--duration", "4", "--events-per-minute", "20", "--json")
    assert made.code == 0, made.stderr
    summary = made.json()
    assert summary["n_soundscapes"] == 24 and summary["labels"] == list(WORDS)
    with open(summary["training"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["path"] for row in rows}) == 24
    assert sum(1 for row in rows if not row["label"]) == summary["n_without_events"]
    assert sum(1 for row in rows if row["label"]) == summary["n_events"]
    again = cli("soundscapes", words_dir, "--backgrounds", backgrounds, "-o", tmp_path / "again",
                "-n", "24", "--duration", "4", "--events-per-minute", "20", "--json")
    assert again.code == 0, again.stderr
    assert (tmp_path / "again" / "soundscape_003.wav").read_bytes() == \
        (out / "soundscape_003.wav").read_bytes()  # seeded

    trained = cli("train", summary["training"], "-b", "mfcc", "--detector",
                  "-o", tmp_path / "m.earmark", "--json")
    assert trained.code == 0, trained.stderr
    assert trained.json()["training"]["n_strongly_labelled"] == 24


def test_soundscapes_needs_background_audio(cli, words_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    run = cli("soundscapes", words_dir, "--backgrounds", tmp_path / "empty", "-o", tmp_path / "o")
    assert run.code == 2 and "expected audio files" in run.stderr and "Traceback" not in run.stderr


def test_a_detector_by_default_reads_aisfx_on_its_step_grid(cli, words_dir, tmp_path):
    """No backend named: the detector's frames come every 0.186 s (aiSFX map steps), the
    grid that placed events best on the development soundscapes."""
    manifest, _ = _weak_set(words_dir, tmp_path)
    model_path = tmp_path / "m.earmark"
    trained = cli("train", manifest, "--detector", "-o", model_path)
    assert trained.code == 0, trained.stderr
    assert "aisfx frames every 0.18576 s" in " ".join((trained.stdout + trained.stderr).split())
    model = EarmarkModel.load(model_path)
    assert model.backend_identity["backend"] == "aisfx"
    assert model.backend_identity["params"]["grid"] == "steps"
    run = cli("detect", model_path, manifest.parent / "rec1.wav", "-o", tmp_path / "out",
              "--no-plot", "--json")
    assert run.code == 0, run.stderr
