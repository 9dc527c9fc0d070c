"""A waveform's min/max envelope, computed while the audio streams past, in fixed memory.

A picture of a three-hour file needs a few thousand columns, not 200 million samples.
:class:`Envelope` keeps the lowest and highest sample of each bin; when the bins
outnumber twice ``max_bins`` it merges neighbours in pairs and doubles the bin width,
so memory stays bounded without knowing the length in advance, and every bin is still
the exact min and max of the samples it spans.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..exceptions import ParameterError

__all__ = ["Envelope"]


class Envelope:
    """Min and max of a signal per bin, fed block by block.

    Parameters
    ----------
    sr : int
        Sample rate of the blocks.
    max_bins : int
        The envelope keeps between ``max_bins`` and ``2 * max_bins`` bins once the
        signal is long enough (fewer for a short signal: a bin never holds less than
        one sample).

    Examples
    --------
    >>> envelope = Envelope(sr=4, max_bins=2)
    >>> envelope.add(np.array([0, 1, -1, 2, 3, -3, 0, 0], dtype=np.float32))
    >>> start_s, low, high = envelope.result()
    >>> start_s.tolist(), low.tolist(), high.tolist()
    ([0.0, 0.5, 1.0, 1.5], [0.0, -1.0, -3.0, 0.0], [1.0, 2.0, 3.0, 0.0])
    """

    def __init__(self, sr: int, *, max_bins: int = 2000):
        if max_bins < 1 or sr <= 0:
            raise ParameterError(f"expected sr > 0 and max_bins >= 1, got {sr} and {max_bins}")
        self.sr = int(sr)
        self.max_bins = int(max_bins)
        self.bin_samples = 1
        self._low = np.empty(2 * self.max_bins + 1, dtype=np.float32)
        self._high = np.empty_like(self._low)
        self._count = 0  # full bins held
        # The bin being filled: how many samples it has, and their min and max.
        self._partial = 0
        self._partial_low = np.inf
        self._partial_high = -np.inf
        self.n_samples = 0

    def add(self, y: np.ndarray) -> None:
        """Take the next block of samples (``np.ndarray [shape=(n,)]``)."""
        y = np.asarray(y, dtype=np.float32).ravel()
        if y.size == 0:
            return
        self.n_samples += y.size
        while self._count + (self._partial + y.size) // self.bin_samples > 2 * self.max_bins:
            self._widen()
        width = self.bin_samples
        if self._partial:
            need = width - self._partial
            head, y = y[:need], y[need:]
            self._partial_low = min(self._partial_low, float(head.min()))
            self._partial_high = max(self._partial_high, float(head.max()))
            self._partial += head.size
            if self._partial < width:
                return
            self._push(np.float32(self._partial_low), np.float32(self._partial_high))
            self._clear_partial()
        full = y.size // width
        if full:
            bins = y[: full * width].reshape(full, width)
            self._low[self._count : self._count + full] = bins.min(axis=1)
            self._high[self._count : self._count + full] = bins.max(axis=1)
            self._count += full
        rest = y[full * width :]
        if rest.size:
            self._partial = rest.size
            self._partial_low = float(rest.min())
            self._partial_high = float(rest.max())

    def tap(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass ``blocks`` through unchanged, adding each one on the way."""
        for block in blocks:
            self.add(block)
            yield block

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The envelope so far (a last, partial bin included).

        Returns
        -------
        start_s : np.ndarray [shape=(n_bins,), dtype=float64]
            Start of each bin in seconds (bins are ``bin_samples`` wide).
        low, high : np.ndarray [shape=(n_bins,), dtype=float32]
        """
        low, high = self._low[: self._count], self._high[: self._count]
        if self._partial:
            low = np.append(low, np.float32(self._partial_low))
            high = np.append(high, np.float32(self._partial_high))
        start_s = np.arange(low.size, dtype=np.int64) * self.bin_samples / self.sr
        return start_s, low.copy(), high.copy()

    def _push(self, low, high) -> None:
        self._low[self._count], self._high[self._count] = low, high
        self._count += 1

    def _clear_partial(self) -> None:
        self._partial, self._partial_low, self._partial_high = 0, np.inf, -np.inf

    def _widen(self) -> None:
        """Double the bin width, merging bins in pairs (an odd last bin joins the partial)."""
        if self._count % 2:
            self._count -= 1
            self._partial += self.bin_samples
            self._partial_low = min(self._partial_low, float(self._low[self._count]))
            self._partial_high = max(self._partial_high, float(self._high[self._count]))
        pairs = self._count // 2
        self._low[:pairs] = self._low[: self._count].reshape(pairs, 2).min(axis=1)
        self._high[:pairs] = self._high[: self._count].reshape(pairs, 2).max(axis=1)
        self._count = pairs
        self.bin_samples *= 2
