"""MFCC summary statistics: the classic baseline.

Each frame is one second of audio (hop half a second) at 22.05 kHz, described by the
mean and standard deviation of 20 MFCCs and their first and second deltas over that
second (120 numbers). A clip is the mean of its frames, so for a clip of up to one
second it is exactly the clip's own summary statistics.
"""

from __future__ import annotations

import numpy as np

from .base import Backend, Licence


class MfccBackend(Backend):
    name = "mfcc"
    description = "MFCC + deltas, mean and std per 1 s frame (classic baseline)"
    licence = Licence("ISC (librosa); no weights", commercial_use=True)
    requires = ("librosa",)
    code_version = "1"

    sample_rate = 22050
    batch_size = 32

    def __init__(self, *, n_mfcc: int = 20, window_s: float = 1.0, hop_s: float = 0.5):
        super().__init__(n_mfcc=n_mfcc, window_s=window_s, hop_s=hop_s)
        self.n_mfcc = n_mfcc
        self.dimension = 6 * n_mfcc
        self.window_samples = int(round(window_s * self.sample_rate))
        self.hop_samples = int(round(hop_s * self.sample_rate))

    def _load(self) -> None:
        import librosa

        self._librosa = librosa

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        librosa = self._librosa
        # librosa works on (..., n) arrays, so the whole batch is one call.
        mfcc = librosa.feature.mfcc(
            y=windows, sr=self.sample_rate, n_mfcc=self.n_mfcc, n_fft=1024, hop_length=256
        )
        width = min(9, mfcc.shape[-1] - (1 - mfcc.shape[-1] % 2))
        delta = librosa.feature.delta(mfcc, width=width, order=1)
        delta2 = librosa.feature.delta(mfcc, width=width, order=2)
        features = np.concatenate([mfcc, delta, delta2], axis=-2)  # (batch, 3 * n_mfcc, t)
        return np.concatenate([features.mean(axis=-1), features.std(axis=-1)], axis=-1)
