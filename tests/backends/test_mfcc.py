"""The MFCC baseline: librosa's MFCC definition, and windows independent of their batch."""

from __future__ import annotations

import librosa
import numpy as np

from earmark import audio
from earmark.backends import get_backend


def _windows(fsdd_dir, backend, n=2):
    paths = sorted((fsdd_dir / "recordings").glob("*_jackson_*.wav"))[:n]
    rows = []
    for path in paths:
        y, _ = audio.load(path, sr=backend.sample_rate)
        rows.append(np.pad(y, (0, max(0, backend.window_samples - y.size)))[: backend.window_samples])
    return np.stack(rows)


def test_features_match_librosa_mfcc(fsdd_dir):
    backend = get_backend("mfcc").load()
    windows = _windows(fsdd_dir, backend, n=1)
    reference = librosa.feature.mfcc(y=windows[0], sr=backend.sample_rate, n_mfcc=20, n_fft=1024, hop_length=256)
    ours = backend.embed_windows(windows)[0]
    np.testing.assert_allclose(ours[:20], reference.mean(axis=-1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ours[60:80], reference.std(axis=-1), rtol=1e-4, atol=1e-3)


def test_a_window_does_not_depend_on_its_batch(fsdd_dir):
    backend = get_backend("mfcc").load()
    windows = _windows(fsdd_dir, backend, n=2)
    quiet = windows[0] * 1e-4  # its 80 dB floor must come from itself, not a loud neighbour
    alone = backend.embed_windows(quiet[None])[0]
    batched = backend.embed_windows(np.stack([quiet, windows[1] * 10]))[0]
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-4)
