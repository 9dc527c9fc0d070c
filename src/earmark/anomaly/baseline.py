"""The signal-processing check beside the learned detectors: energy above a cut-off.

Mai, Davies, Griffin & Benetos (DCASE 2022) found, by explaining deep anomaly detectors,
that they relied on high frequencies, and that a high-pass filter followed by an energy
measure did as well. :class:`HighPassBaseline` is that detector: the level (dB) of a
recording above a cut-off frequency, scored by its distance from the normal recordings'
levels in units of their spread. The cut-off is chosen on normal data alone: the
candidate at which normal recordings' levels vary least, so that a change stands out.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError

__all__ = ["HighPassBaseline", "band_levels", "file_band_levels", "CUTOFFS_HZ"]

#: Candidate cut-offs, in Hz.
CUTOFFS_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def band_levels(y, sr: int, cutoffs_hz=CUTOFFS_HZ) -> np.ndarray:
    """Mean power above each cut-off, in dB (cut-offs past ``sr / 2`` get the floor).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int
    cutoffs_hz : sequence of float

    Returns
    -------
    np.ndarray [shape=(n_cutoffs,)]

    Examples
    --------
    >>> sr = 16000
    >>> t = np.arange(sr) / sr
    >>> low, high = band_levels(np.sin(2 * np.pi * 3000 * t), sr, (1000, 4000))
    >>> bool(low > high + 30)
    True
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"expected a mono waveform of shape (n,), got {y.shape}")
    n_fft = 1024 if y.size >= 1024 else int(2 ** np.floor(np.log2(max(y.size, 16))))
    hop = n_fft // 2
    pad = (-(y.size - n_fft)) % hop if y.size > n_fft else n_fft - y.size
    y = np.pad(y, (0, pad))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0) / n_fft
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return np.array([10 * np.log10(power[freqs >= cutoff].sum() + 1e-12) for cutoff in cutoffs_hz])


def file_band_levels(paths, cutoffs_hz=CUTOFFS_HZ) -> list:
    """:func:`band_levels` of each file at its own rate; None for a file that cannot be read.

    Returns
    -------
    list of (np.ndarray [shape=(n_cutoffs,)] or None)
    """
    from .. import audio
    from ..exceptions import EarmarkError

    out = []
    for path in paths:
        try:
            y, sr = audio.load(path)
            out.append(band_levels(y, sr, cutoffs_hz))
        except EarmarkError:
            out.append(None)
    return out


class HighPassBaseline(OutlierMixin, BaseEstimator):
    """Level above a cut-off chosen on normal data; score = |z| against the normal levels.

    Fitted on :func:`band_levels` rows of normal recordings (one column per cut-off in
    ``cutoffs_hz``).

    Parameters
    ----------
    cutoffs_hz : sequence of float
        The candidates (the columns of ``X``).

    Attributes
    ----------
    cutoff_hz_ : float
        The chosen cut-off.
    mean_, std_ : float
        The normal recordings' level above it, and its spread.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 6)) * [5, 5, 1, 5, 5, 5]
    >>> HighPassBaseline().fit(X).cutoff_hz_
    1000.0
    """

    def __init__(self, *, cutoffs_hz=CUTOFFS_HZ):
        self.cutoffs_hz = cutoffs_hz

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        cutoffs = np.asarray(self.cutoffs_hz, dtype=np.float64)
        if cutoffs.shape != (X.shape[1],):
            raise ParameterError(f"expected {len(cutoffs)} columns (one per cut-off), got {X.shape[1]}")
        spread = X.std(axis=0)
        # A band with no energy in any normal recording (above Nyquist) is not a choice.
        usable = X.max(axis=0) > -110
        if not usable.any():
            raise ParameterError("no cut-off has energy in the normal recordings")
        choice = int(np.argmin(np.where(usable, spread, np.inf)))
        self.column_ = choice
        self.cutoff_hz_ = float(cutoffs[choice])
        self.mean_ = float(X[:, choice].mean())
        self.std_ = max(float(spread[choice]), 1e-3)
        return self

    def score_samples(self, X) -> np.ndarray:
        """|z| of each recording's level above the cut-off (higher = more anomalous).

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_cutoffs)]

        Returns
        -------
        np.ndarray [shape=(n,)]
        """
        check_is_fitted(self, "cutoff_hz_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.abs(X[:, self.column_] - self.mean_) / self.std_

    def decision_function(self, X) -> np.ndarray:
        return -self.score_samples(X)

    def predict(self, X) -> np.ndarray:
        """-1 for recordings more than three spreads from the normal level, else +1."""
        return np.where(self.score_samples(X) > 3.0, -1, 1)
