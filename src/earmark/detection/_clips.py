"""Clips for soundscapes: labelled pools read from any form, loaded and trimmed to sound.

Private helpers of :mod:`earmark.detection.soundscapes`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError

#: Fade at each end of a trimmed clip, so pasting it never clicks.
FADE_S = 0.005


@dataclass
class Clip:
    y: np.ndarray  # [shape=(n,), dtype=float32], trimmed and faded
    label: str | None
    source: str
    source_start: int  # first kept sample, at sr
    rms: float


def trim(y: np.ndarray, top_db: float, frame: int) -> tuple[int, int]:
    """First and one-past-last sample of the non-silent part of ``y``.

    The loud frames are those of :func:`librosa.effects.trim`: centred frames whose
    RMS is within ``top_db`` of the loudest. librosa then cuts at frame centres, up to
    half a frame off the sound; here the cut is at the first (last) sample of the first
    (last) loud frame whose magnitude reaches that same level.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    hop, half = max(1, frame // 4), frame // 2
    padded = np.pad(y.astype(np.float64), (half, half + frame))
    power = np.mean(sliding_window_view(padded, frame)[::hop][: 1 + y.size // hop] ** 2, axis=1)
    level = power.max() * 10 ** (-top_db / 10)
    loud = np.flatnonzero(power > level)
    if power.max() <= 0 or not loud.size:
        return 0, 0
    floor = math.sqrt(level)
    first = max(0, int(loud[0]) * hop - half)
    head = np.flatnonzero(np.abs(y[first : first + frame]) >= floor)
    last = min(y.size, int(loud[-1]) * hop + half)
    tail = np.flatnonzero(np.abs(y[max(0, last - frame) : last]) >= floor)
    start = first + int(head[0]) if head.size else int(loud[0]) * hop
    stop = max(0, last - frame) + int(tail[-1]) + 1 if tail.size else last
    return start, max(stop, start)


def load_clips(items, sr: int, top_db: float, what: str) -> list[Clip]:
    from .. import audio

    frame = max(16, int(round(0.032 * sr)))
    fade = np.sin(np.linspace(0, np.pi / 2, max(1, int(round(FADE_S * sr))))) ** 2
    clips = []
    for path, label in items:
        y, _ = audio.load(path, sr=sr)
        start, stop = trim(y, top_db, frame)
        y = y[start:stop].astype(np.float32)
        if y.size < 2 * fade.size:  # silent, or too short to fade in and out
            continue
        y[: fade.size] *= fade
        y[-fade.size:] *= fade[::-1]
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        if rms > 0:
            clips.append(Clip(y, label, os.path.abspath(path), int(start), rms))
    if not clips:
        raise ParameterError(f"no usable (non-silent) clip in the {what}")
    return clips


def pool_items(pool, labelled: bool, what: str) -> list[tuple[str, str | None]]:
    """(path, label) pairs sorted by label and path, so the input's order never matters."""
    if hasattr(pool, "frame") and hasattr(pool, "paths"):  # a Manifest
        pool = list(pool)
    items = []
    for item in pool:
        if isinstance(item, (str, os.PathLike)):
            path, label = item, None
        elif isinstance(item, tuple) and len(item) == 2:
            path, label = item
        else:
            path, label = getattr(item, "path", None), getattr(item, "label", None)
        if path is None or (labelled and label is None):
            expected = "(path, label) pairs or items with .path and .label" if labelled else "paths"
            raise ParameterError(f"{what}: expected {expected}, got {item!r}")
        items.append((os.fspath(path), None if label is None else str(label)))
    if not items:
        raise ParameterError(f"{what} is empty")
    return sorted(items, key=lambda pair: (pair[1] or "", pair[0]))
