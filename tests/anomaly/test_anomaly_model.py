"""The anomaly model kind on real recordings: fit, save, load, predict, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.exceptions import ModelFileError, ParameterError
from earmark.models import AnomalyModel, load_model, predict_files


def _notes(folder, dynamics=("forte", "fortissimo", "mezzo-forte", "mezzo-piano")):
    return sorted(p for p in folder.glob("*.mp3") if p.stem.split("_")[3] in dynamics
                  and "normal" in p.stem.split("_")[4])


@pytest.fixture(scope="module")
def flute_model(philharmonia_dir):
    backend = get_backend("mfcc")
    flute = _notes(philharmonia_dir / "flute")
    # Every other note trains, so the held-out notes lie in the same range.
    model = AnomalyModel.fit_files(flute[::2], backend=backend)
    return model, backend, flute[1::2]


def test_held_out_notes_score_low_and_notes_with_a_rattle_high(flute_model, tmp_path):
    import soundfile

    from earmark import audio
    from earmark.anomaly import evaluate_scores

    model, backend, held_out = flute_model
    rng = np.random.default_rng(0)
    rattled = []
    for path in held_out:
        y, sr = audio.load(path)
        clicks = np.zeros_like(y)
        for start in range(0, len(y) - 200, sr // 8):  # 8 clicks a second
            clicks[start:start + 200] = rng.normal(size=200) * np.exp(-np.arange(200) / 40)
        gain = np.sqrt(np.mean(y ** 2) / np.mean(clicks ** 2)) * 10 ** (3 / 20)  # at -3 dB
        rattled.append(tmp_path / path.name.replace(".mp3", "-rattle.wav"))
        soundfile.write(rattled[-1], y + gain * clicks, sr)
    normal = np.array([r["score"] for r in model.score_rows(held_out, backend=backend)])
    faulty = np.array([r["score"] for r in model.score_rows(rattled, backend=backend)])
    result = evaluate_scores(np.r_[normal, faulty], np.r_[np.zeros(len(normal)), np.ones(len(faulty))])
    assert result.auc >= 0.9
    threshold = model.sections["default"].clip_threshold
    assert (faulty >= threshold).mean() >= 0.8
    assert (normal >= threshold).mean() <= 0.5  # 10 % expected; few notes, so loosely


def test_file_round_trip_and_predict(flute_model, tmp_path, philharmonia_dir):
    model, backend, held_out = flute_model
    path = model.save(tmp_path / "flute.earmark")
    loaded = load_model(path)
    assert loaded.kind == "anomaly" and list(loaded.sections) == ["default"]
    files = [*held_out[:3], sorted((philharmonia_dir / "cello").glob("*.mp3"))[0], tmp_path / "gone.wav"]
    before = model.score_rows(files, backend=backend)
    after = loaded.score_rows(files, backend=backend)
    assert [r["score"] for r in before] == pytest.approx([r["score"] for r in after])
    predictions = predict_files(loaded, files, backend=backend)
    assert predictions[-1].error and "gone.wav" in predictions[-1].error
    assert {p.label for p in predictions[:-1]} <= {"normal", "anomalous"}
    assert predictions[3].extra["anomaly_score"] == pytest.approx(after[3]["score"])


def test_too_few_normal_recordings_names_the_section(philharmonia_dir):
    backend = get_backend("mfcc")
    flute = _notes(philharmonia_dir / "flute")[:6]
    oboe = _notes(philharmonia_dir / "oboe")[:2]
    with pytest.raises(ParameterError, match="section 'oboe' has 2 usable normal"):
        AnomalyModel.fit_files([*flute, *oboe], ["flute"] * 6 + ["oboe"] * 2, backend=backend)


def test_a_corrupt_normal_file_is_skipped_by_name(philharmonia_dir, tmp_path):
    backend = get_backend("mfcc")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    flute = _notes(philharmonia_dir / "flute")[:6]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AnomalyModel.fit_files([*flute, broken], backend=backend)
    assert any("broken.wav" in str(w.message) for w in caught)
    assert model.sections["default"].n_items == 6
    assert any("broken.wav" in note for note in model.training["notes"])


def test_non_finite_statistics_in_a_file_are_refused(flute_model, tmp_path):
    import json
    import zipfile

    model, _, _ = flute_model
    path = model.save(tmp_path / "m.earmark")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(members["model.json"])
    metadata["sections"][0]["clip_spread"] = -1.0
    members["model.json"] = json.dumps(metadata).encode()
    with zipfile.ZipFile(tmp_path / "bad.earmark", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="non-finite normal-set statistics"):
        load_model(tmp_path / "bad.earmark")
