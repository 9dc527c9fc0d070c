"""Models for the explanation tests: one whose evidence is known, one trained on real speech.

``tone_model``: an MFCC logistic regression trained to tell a short tone burst in one
frequency band from background noise alone. The test clip holds one burst inside one
grid region, so a correct explanation must point at that region, and a wrong one can be
caught. ``digit_model``: a real FSDD digit model, trained on five speakers and explained
on clips of the sixth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SR = 22050
DURATION_S = 1.0
#: The test clip's grid: 4 segments of 0.25 s x 8 mel bands from 0 to 11025 Hz.
N_TIME, N_BANDS = 4, 8
#: The burst of the test clip: inside segment 1, and inside band BAND.
BURST_S = (0.30, 0.45)
BAND = 5


@dataclass(frozen=True)
class ToneModel:
    model: object
    backend: object
    clip: np.ndarray  # the test clip, (SR * DURATION_S,), tone in BURST_S at TONE_HZ
    band_edges_hz: np.ndarray
    tone_hz: float


def band_edges() -> np.ndarray:
    from earmark.interpret.perturb import RegionGrid

    return RegionGrid.for_clip(DURATION_S, SR / 2, n_time=N_TIME, n_bands=N_BANDS).band_edges_hz


def clip_with_burst(rng, tone_hz: float | None, start_s: float, stop_s: float) -> np.ndarray:
    """Pink-ish noise at a steady level, plus a tone burst (Hann-shaped) if ``tone_hz``."""
    n = int(SR * DURATION_S)
    noise = rng.normal(0.0, 1.0, n)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same") * 0.02
    if tone_hz is None:
        return noise.astype(np.float32)
    t = np.arange(n) / SR
    inside = (t >= start_s) & (t < stop_s)
    envelope = np.zeros(n)
    envelope[inside] = np.hanning(inside.sum())
    return (noise + 0.3 * envelope * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)


@lru_cache(maxsize=1)
def tone_model() -> ToneModel:
    from earmark.backends import get_backend
    from earmark.embedding import embed_signal
    from earmark.models import EarmarkModel

    backend = get_backend("mfcc")
    edges = band_edges()
    low, high = edges[BAND], edges[BAND + 1]
    rng = np.random.default_rng(0)
    clips, labels = [], []
    for _ in range(24):
        start = rng.uniform(0.0, DURATION_S - 0.2)
        # Tones anywhere inside the band (away from its edges), at any time.
        tone = rng.uniform(low + 0.15 * (high - low), high - 0.15 * (high - low))
        clips.append(clip_with_burst(rng, tone, start, start + rng.uniform(0.1, 0.2)))
        labels.append("tone")
        clips.append(clip_with_burst(rng, None, 0, 0))
        labels.append("noise")
    X = np.stack([embed_signal(backend, clip, SR).clip for clip in clips])
    model = EarmarkModel.train(X, labels, backend=backend)
    tone_hz = float(np.sqrt(low * high))
    clip = clip_with_burst(np.random.default_rng(99), tone_hz, *BURST_S)
    return ToneModel(model, backend, clip, edges, tone_hz)


@dataclass(frozen=True)
class DigitModel:
    model: object
    backend: object
    test_paths: tuple[Path, ...]  # clips of the held-out speaker


@lru_cache(maxsize=2)
def digit_model(fsdd_dir: Path) -> DigitModel:
    """Logistic regression on MFCC clip embeddings, speaker 'george' held out."""
    from _embeddings import fsdd_mfcc

    from earmark.models import EarmarkModel

    data = fsdd_mfcc(Path(fsdd_dir))
    train = data.speakers != "george"
    model = EarmarkModel.train(data.X[train], data.y[train], backend=data.identity)
    test = tuple(p for p, keep in zip(data.paths, ~train) if keep)
    return DigitModel(model, model.backend(), test)
