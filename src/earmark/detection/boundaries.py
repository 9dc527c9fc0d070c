"""Event boundaries from the recording's own level, finer than the embedding's frame grid.

A detector's frames are as coarse as its backend's hop (half a second for BirdNET at
``hop_s=0.5`` and for MFCC frames), so an event's onset and offset can be a quarter of a
second off however sure the class is, and event-based F with a 200 ms collar counts it
as missed. Where the event stands above its background, the signal says more exactly
where it starts and stops. :class:`LevelTrack` keeps the signal's level in 10 ms bins
while the audio streams past (4 MB for three hours), and :func:`refine_boundaries` moves
each boundary, within one frame hop of where the scores put it, to where the level
crosses halfway (in dB) between the background beside it and the event's own peak.

The halfway rule needs no setting per recording: the background is the 20th percentile
of the level within ``context_s`` of the event and the peak is the event's loudest bin,
so a quiet event over a quiet bed and a loud one over a loud bed get the same treatment
(the background is read beside the event, within ``context_s`` on each side).
An event whose peak is less than ``min_rise_db`` (12 dB) above the loud end of the
background beside it (its 80th percentile) keeps its boundaries: over a fluctuating bed
the crossings would be the bed's. Measured with ``benchmarks/detector.py``'s MFCC
detector (Philharmonia notes over a dense bed of speech; the 12 dB was chosen on these
development soundscapes): at 12-24 dB SNR, event F 0.046 -> 0.108 (0.131 with no rise
required), onset F 0.371 -> 0.371, segment F 0.388 -> 0.406; at 0-12 dB, where the
speech is as loud as the notes, event and onset F stay at 0.040 and 0.183 (segment F
0.273 -> 0.269), where requiring no rise dropped event F to 0.008: hence the rule.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..exceptions import ParameterError
from .events import Event

__all__ = ["LevelTrack", "refine_boundaries", "LEVEL_BIN_S"]

#: Width of a level bin in seconds.
LEVEL_BIN_S = 0.01


class LevelTrack:
    """Mean-square level of a signal in fixed bins, in dB, fed block by block.

    Parameters
    ----------
    sr : int
        Sample rate of the blocks.
    bin_s : float
        Bin width in seconds (rounded to whole samples).

    Examples
    --------
    >>> track = LevelTrack(sr=100, bin_s=0.1)
    >>> track.add(np.r_[np.zeros(10), np.ones(15)].astype(np.float32))
    >>> np.round(track.result(), 1).tolist()  # silence, full scale, a half-filled bin
    [-120.0, 0.0, 0.0]
    """

    def __init__(self, sr: int, bin_s: float = LEVEL_BIN_S):
        if sr <= 0 or bin_s <= 0:
            raise ParameterError(f"expected sr > 0 and bin_s > 0, got {sr} and {bin_s}")
        self.sr = int(sr)
        self.bin_samples = max(1, int(round(bin_s * sr)))
        self.bin_s = self.bin_samples / self.sr
        self._levels: list[np.ndarray] = []
        self._carry = np.zeros(0, dtype=np.float64)

    def add(self, block: np.ndarray) -> None:
        """Add the next samples (mono) of the signal."""
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        samples = np.concatenate([self._carry, block]) if self._carry.size else block
        whole = samples.size // self.bin_samples * self.bin_samples
        if whole:
            power = (samples[:whole] ** 2).reshape(-1, self.bin_samples).mean(axis=1)
            self._levels.append(_db(power))
        self._carry = samples[whole:].copy()

    def tap(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass ``blocks`` through unchanged, adding each one on the way."""
        for block in blocks:
            self.add(block)
            yield block

    def result(self) -> np.ndarray:
        """Level of each bin in dB (a last, partial bin included) [shape=(n_bins,)]."""
        levels = list(self._levels)
        if self._carry.size:
            levels.append(_db(np.array([np.mean(self._carry ** 2)])))
        return np.concatenate(levels) if levels else np.zeros(0, dtype=np.float32)


def _db(power: np.ndarray) -> np.ndarray:
    return (10.0 * np.log10(np.maximum(power, 1e-12))).astype(np.float32)


def refine_boundaries(
    events: Sequence[Event],
    level_db: np.ndarray,
    *,
    bin_s: float,
    search_s: float,
    context_s: float = 5.0,
    fraction: float = 0.5,
    min_rise_db: float = 12.0,
) -> list[Event]:
    """Move each event's onset and offset to where the level crosses its halfway mark.

    Parameters
    ----------
    events : sequence of Event
    level_db : np.ndarray [shape=(n_bins,)]
        :meth:`LevelTrack.result` of the same recording.
    bin_s : float
        Width of a level bin (:attr:`LevelTrack.bin_s`).
    search_s : float
        A boundary moves at most this far (the scorer's hop: the scores already placed
        it within one frame).
    context_s : float
        The background is the 20th percentile of the level this far on each side.
    fraction : float in (0, 1)
        Where between background (0) and the event's peak (1) the mark lies, in dB.
    min_rise_db : float
        Events whose peak is less than this above the loud end of their background (its
        80th percentile) are left as they are: over a fluctuating bed (speech, traffic)
        the level's crossings are the bed's, not the event's.

    Returns
    -------
    list of Event
        In the same order; an event whose refined span would be empty keeps its own.

    Examples
    --------
    >>> level = np.full(300, -60.0, dtype=np.float32)
    >>> level[112:178] = -20.0  # a sound from 1.12 to 1.78 s
    >>> [e] = refine_boundaries([Event(None, "a", 1.0, 2.0, 0.9)], level, bin_s=0.01, search_s=0.5)
    >>> round(e.onset_s, 2), round(e.offset_s, 2)
    (1.12, 1.78)
    """
    if not 0 < fraction < 1:
        raise ParameterError(f"expected fraction in (0, 1), got {fraction}")
    if search_s < 0 or context_s <= 0:
        raise ParameterError(f"expected search_s >= 0 and context_s > 0, got {search_s}, {context_s}")
    level_db = np.asarray(level_db, dtype=np.float64)
    n = level_db.size
    reach, context = int(round(search_s / bin_s)), int(round(context_s / bin_s))
    refined = []
    for event in events:
        first = min(max(int(np.floor(event.onset_s / bin_s)), 0), max(n - 1, 0))
        last = min(max(int(np.ceil(event.offset_s / bin_s)), first + 1), n)
        if n == 0 or last <= first:
            refined.append(event)
            continue
        # The background is measured beside the event, not under it: a long event would
        # otherwise be its own "loud background".
        around = np.r_[level_db[max(0, first - context):first], level_db[last:min(n, last + context)]]
        if around.size == 0:
            refined.append(event)
            continue
        background, loud_background = (float(v) for v in np.percentile(around, [20, 80]))
        peak = float(level_db[first:last].max())
        if peak - loud_background < min_rise_db:
            refined.append(event)
            continue
        mark = background + fraction * (peak - background)
        low, high = max(0, first - reach), min(n, first + reach + 1)
        above = np.flatnonzero(level_db[low:high] >= mark)
        onset = (low + above[0]) * bin_s if above.size else event.onset_s
        low, high = max(0, last - reach - 1), min(n, last + reach)
        above = np.flatnonzero(level_db[low:high] >= mark)
        offset = (low + above[-1] + 1) * bin_s if above.size else event.offset_s
        if offset <= onset:
            refined.append(event)
            continue
        refined.append(replace(event, onset_s=float(onset), offset_s=float(offset)))
    return refined
