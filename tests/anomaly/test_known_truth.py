"""Known truth: a detector fitted on clean tones finds a burst of high-frequency noise,
scores its segment highest, and its explanation points at the burst's band and time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from earmark.anomaly import explain_anomaly
from earmark.backends import get_backend
from earmark.embedding import embed_signal
from earmark.models import AnomalyModel

SR = 22050
BURST_S = (2.1, 2.4)
BURST_HZ = (6000, 9000)


def _tone(rng, *, burst: bool = False) -> np.ndarray:
    t = np.arange(4 * SR) / SR
    f0 = rng.uniform(200, 500)
    y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 5))
    y = 0.2 * y * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)) + 1e-3 * rng.normal(size=t.size)
    if burst:
        sos = butter(6, BURST_HZ, btype="band", fs=SR, output="sos")
        start = int(BURST_S[0] * SR)
        noise = sosfilt(sos, rng.normal(size=int((BURST_S[1] - BURST_S[0]) * SR)))
        y[start:start + noise.size] += 0.3 * noise
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    backend = get_backend("mfcc", window_s=0.25, hop_s=0.125)
    bags = [embed_signal(backend, _tone(rng), SR).X for _ in range(12)]
    model = AnomalyModel.fit_bags(bags, backend=backend, detector="knn", pooling="max")
    return model, backend, rng


def test_the_burst_segment_scores_highest_and_is_an_event(fitted, tmp_path):
    import soundfile

    model, backend, rng = fitted
    y = _tone(rng, burst=True)
    frames = embed_signal(backend, y, SR)
    scores = model.frame_scores(frames.X)
    top = int(np.argmax(scores))
    assert frames.start_s[top] < BURST_S[1] and frames.end_s[top] > BURST_S[0]
    # Every frame that does not touch the burst stays below the burst's frame.
    away = (frames.end_s <= BURST_S[0]) | (frames.start_s >= BURST_S[1])
    assert scores[away].max() < scores[top]
    path = tmp_path / "burst.wav"
    soundfile.write(path, y, SR)
    events, *_ = model.segments(path, backend=backend)
    assert events, "the burst was not reported as an anomalous segment"
    best = max(events, key=lambda e: e.score)
    assert best.onset_s < BURST_S[1] and best.offset_s > BURST_S[0]
    # The clip with the burst is more anomalous than a clean one.
    clean = embed_signal(backend, _tone(rng), SR).X
    burst_score, clean_score = model.score_bags([frames.X, clean])
    assert burst_score > model.sections["default"].clip_threshold > clean_score


def test_the_explanation_points_at_the_burst(fitted):
    model, _, rng = fitted
    explanation = explain_anomaly(model, _tone(rng, burst=True), SR, n_time=8, n_bands=8)
    region = explanation.top_regions(1)[0]
    assert region["start_s"] < BURST_S[1] and region["end_s"] > BURST_S[0]
    assert region["low_hz"] < BURST_HZ[1] and region["high_hz"] > BURST_HZ[0]
    assert explanation.label == "anomalous"
