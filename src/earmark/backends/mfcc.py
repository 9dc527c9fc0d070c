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
    code_version = "2"

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
        # Built once: librosa.feature.mfcc would rebuild the filterbank on every call.
        self._mel_basis = librosa.filters.mel(sr=self.sample_rate, n_fft=1024, n_mels=128)
        from threadpoolctl import ThreadpoolController

        # Scanning the loaded libraries costs milliseconds: do it once, not per batch.
        self._threads = ThreadpoolController()

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        import scipy.fft

        librosa = self._librosa
        # The products here are small: a second BLAS thread only adds contention.
        with self._threads.limit(limits=1, user_api="blas"):
            power = np.abs(librosa.stft(windows, n_fft=1024, hop_length=256)) ** 2
            # matmul broadcasts over the batch and goes through BLAS; einsum did not (12x slower).
            mel = self._mel_basis @ power
        # librosa's top_db floor is relative to the loudest value of the whole array, which
        # would make a window's features depend on its batch neighbours: floor per window.
        mel_db = librosa.power_to_db(mel, top_db=None)
        mel_db = np.maximum(mel_db, mel_db.max(axis=(-2, -1), keepdims=True) - 80.0)
        # Same steps as librosa.feature.mfcc (DCT-II, orthonormal), without the rebuild.
        mfcc = scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[..., : self.n_mfcc, :]
        width = min(9, mfcc.shape[-1] - (1 - mfcc.shape[-1] % 2))
        delta = librosa.feature.delta(mfcc, width=width, order=1)
        delta2 = librosa.feature.delta(mfcc, width=width, order=2)
        features = np.concatenate([mfcc, delta, delta2], axis=-2)  # (batch, 3 * n_mfcc, t)
        return np.concatenate([features.mean(axis=-1), features.std(axis=-1)], axis=-1)
