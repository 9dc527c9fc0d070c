"""A placeholder backend for unit tests only: no weights, instant, deterministic.

It embeds a window as its log energy in 16 equal-width frequency bands, which is enough
for a pipeline test to tell a tone from noise. Never use it for real work.
"""

from __future__ import annotations

import numpy as np

from .base import Backend, Licence


class PlaceholderBackend(Backend):
    name = "placeholder"
    description = "Band energies; for unit tests only, not a model"
    licence = Licence("MIT (earmark's own code)", commercial_use=True)

    sample_rate = 16000
    dimension = 16
    batch_size = 16

    def __init__(self, *, window_s: float = 0.5, hop_s: float | None = None):
        super().__init__(window_s=window_s, hop_s=hop_s)
        self.window_samples = int(round(window_s * self.sample_rate))
        self.hop_samples = int(round((hop_s or window_s) * self.sample_rate))

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
        bands = np.array_split(power, self.dimension, axis=1)
        return np.log10(np.stack([b.sum(axis=1) for b in bands], axis=1) + 1e-10)
