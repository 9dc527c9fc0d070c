"""Frame calibration of detectors: Platt maps fitted on validation recordings (frame
targets from strong labels, top frames from label sets), stored, applied, checked."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.detection.detector import frame_targets_for, train_detector
from earmark.detection.frame_calibration import (
    MIN_EACH, apply_frame_calibration, check_frame_calibration, fit_frame_calibration,
)
from earmark.exceptions import ModelFileError, ParameterError
from earmark.models import load_model

sys.path.insert(0, str(Path(__file__).parent))
from test_detector import _confounded  # noqa: E402


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def test_platt_map_is_recovered_from_frame_targets():
    """Scores whose true frequency is sigmoid(2 logit(p) - 1): the fit finds that map."""
    rng = np.random.default_rng(0)
    raw = [rng.uniform(0.01, 0.99, size=(200, 2)) for _ in range(20)]
    truth = [(rng.uniform(size=s.shape) < _sigmoid(2 * _logit(s) - 1)).astype(float) for s in raw]

    fitted = fit_frame_calibration(raw, [("a", "b")] * 20, ["a", "b"], frame_targets=truth)

    assert fitted["targets"] == {"frames": 4000, "recordings": 0}
    for label in "ab":
        assert fitted["source"][label] == "own"
        assert fitted["slope"][label] == pytest.approx(2.0, abs=0.2)
        assert fitted["intercept"][label] == pytest.approx(-1.0, abs=0.2)
    fresh = rng.uniform(0.01, 0.99, size=(20000, 2))
    calibrated = apply_frame_calibration(fresh, fitted, ["a", "b"])
    happened = rng.uniform(size=fresh.shape) < _sigmoid(2 * _logit(fresh) - 1)
    # Reliability: in every tenth of the calibrated score, the frequency matches it.
    for column in range(2):
        bins = np.minimum((calibrated[:, column] * 10).astype(int), 9)
        for b in np.unique(bins):
            inside = bins == b
            if inside.sum() > 200:
                assert abs(calibrated[inside, column].mean() - happened[inside, column].mean()) < 0.05


def test_rare_class_takes_the_pooled_map_and_a_reversed_one_is_refused():
    rng = np.random.default_rng(1)
    rows, sets = [], []
    for index in range(60):
        labels = ("a",) if index % 2 else ("backwards",)
        if index == 7:
            labels = ("a", "rare")
        scores = rng.uniform(0.0, 0.3, size=(10, 3))
        scores[:, 0] += 0.6 * ("a" in labels)
        scores[:, 2] += 0.6 * ("backwards" not in labels)  # rises where the class is absent
        rows.append(np.clip(scores, 0, 1))
        sets.append(labels)

    fitted = fit_frame_calibration(rows, sets, ["a", "rare", "backwards"])

    assert fitted["source"] == {"a": "own", "rare": "pooled", "backwards": "pooled"}
    assert fitted["slope"]["rare"] == fitted["slope"]["backwards"] > 0
    assert MIN_EACH > 1


def test_weak_detector_at_one_half_finds_about_as_many_frames_as_sound():
    """The issue's line in miniature: raw MIL scores at 0.5 flag about twice the frames
    that hold the class (measured: 228 for 120); calibrated on the validation part's
    label sets, 0.5 flags about as many (124)."""
    rng = np.random.default_rng(3)
    frames, label_sets, events = _confounded(rng, 80)
    test_frames, _, test_events = _confounded(rng, 80)
    model = train_detector(frames, label_sets, backend=get_backend("placeholder"), hidden=16,
                           epochs=150, validation_fraction=0.25, context=0)
    truth = np.concatenate([frame_targets_for(e, f[1], f[2], ["a"])[:, 0]
                            for f, e in zip(test_frames, test_events)])
    calibrated = np.concatenate([model.segment_proba(f[0])[:, 0] for f in test_frames])
    raw = np.concatenate([model.pipeline[-1].segment_proba(f[0])[:, 0] for f in test_frames])

    assert model.postprocessing["calibration"]["targets"]["recordings"] == 20
    assert abs((raw >= 0.5).sum() / truth.sum() - 1) > 0.5
    assert abs((calibrated >= 0.5).sum() / truth.sum() - 1) < 0.25
    # Monotone: the ranking of frames is the raw one.
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(calibrated[order]) >= -1e-9)


def test_stored_calibration_is_checked_when_read_back(tmp_path):
    from earmark.models._container import write_container

    rng = np.random.default_rng(3)
    frames, label_sets, _ = _confounded(rng, 40)
    model = train_detector(frames, label_sets, backend=get_backend("placeholder"), hidden=8,
                           epochs=5, validation_fraction=0.25, context=0)
    path = model.save(tmp_path / "d.earmark")
    loaded = load_model(path)
    assert loaded.postprocessing["calibration"] == model.postprocessing["calibration"]
    np.testing.assert_allclose(loaded.segment_proba(frames[0][0]), model.segment_proba(frames[0][0]))

    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
        pipeline = archive.read("pipeline.skops")
    for key in ("members", "format", "format_version"):
        metadata.pop(key, None)
    metadata["postprocessing"]["calibration"]["slope"]["a"] = 1e300
    write_container(tmp_path / "bad.earmark", metadata, pipeline=pipeline)
    with pytest.raises(ModelFileError, match="slope of 'a'"):
        load_model(tmp_path / "bad.earmark")
    with pytest.raises(ParameterError, match="intercept for classes"):
        check_frame_calibration({"method": "platt", "slope": {"a": 1.0}, "intercept": {}}, ["a"])


def test_calibration_moves_the_thresholds_so_the_same_frames_are_active():
    from earmark.detection.postprocessing import THRESHOLDS

    rng = np.random.default_rng(5)
    frames, label_sets, _ = _confounded(rng, 60)
    model = train_detector(frames, label_sets, backend=get_backend("placeholder"), hidden=8,
                           epochs=30, validation_fraction=0.25, context=0)
    calibration = model.postprocessing["calibration"]
    stored = model.postprocessing["thresholds"]["a"]
    grid = apply_frame_calibration(np.array(THRESHOLDS)[:, None], calibration, ["a"])[:, 0]
    raw_threshold = THRESHOLDS[int(np.argmin(abs(grid - stored)))]
    assert abs(grid - stored).min() < 1e-9  # a grid threshold, mapped
    for X, _, _ in frames[:10]:
        raw = model.pipeline[-1].segment_proba(X)[:, 0]
        calibrated = model.segment_proba(X)[:, 0]
        np.testing.assert_array_equal(raw >= raw_threshold, calibrated >= stored)
