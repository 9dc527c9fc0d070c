"""What a clip becomes before a network's trained layers: its front end.

- ``"log-mel"``: a 64-band log-mel in decibels (16 kHz, 1024-point FFT, 320-sample =
  20 ms hop, uncentred frames, :func:`earmark.interpret.features.log_mel`), shape
  ``(1, frames, 64)``: what the from-scratch networks read.
- ``"aisfx-block3"``: aiSFX's scaled log-mel of the clip (:meth:`AisfxBackend.log_mel
  <earmark.backends.aisfx.AisfxBackend.log_mel>`, the whole clip scaled to its peak, as
  the aisfx package does) through the pretrained network's three lower blocks, frozen:
  ``(256, frames / 8, 12)``. Computed once per clip and kept, so fine-tuning the last
  block costs one block per epoch; it is the cache the issue asked for, and since it
  does not depend on any label it is computed once for every split of an evaluation.
- ``"aisfx-block4"``: the same through all four blocks, ``(512, frames / 8, 12)``.

Every clip of a model has one fixed length (:attr:`Frontend.n_samples`): the longest
clip of the training data, at most ``max_seconds`` (5 s by default), at least what the
network needs (one 2.35 s aiSFX block); shorter clips are padded with silence at the
end and longer ones cut, at training and prediction alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import EarmarkError, NoUsableItemsError, ParameterError

__all__ = ["FRONTENDS", "Frontend", "frontend_for", "clip_inputs", "durations"]

#: Front end names and their sample rates.
FRONTENDS = {"log-mel": 16000, "aisfx-block3": 44100, "aisfx-block4": 44100}

_LOG_MEL = {"n_mels": 64, "n_fft": 1024, "hop_length": 320}
_AISFX_FFT, _AISFX_HOP, _AISFX_BLOCK = 2048, 1024, 100
#: Longest clip length a model file may declare (a hostile file could ask for hours).
MAX_SECONDS_LIMIT = 60.0


@dataclass(frozen=True)
class Frontend:
    """A front end and its fixed clip length.

    Attributes
    ----------
    name : str
        One of :data:`FRONTENDS`.
    n_samples : int
        Every clip is padded or cut to this many samples at :attr:`sr`.
    """

    name: str
    n_samples: int

    def __post_init__(self):
        if self.name not in FRONTENDS:
            raise ParameterError(f"unknown front end {self.name!r}; expected one of {', '.join(FRONTENDS)}")
        low = _AISFX_FFT + (_AISFX_BLOCK - 1) * _AISFX_HOP if self.name != "log-mel" else _LOG_MEL["n_fft"]
        if not isinstance(self.n_samples, (int, np.integer)) or isinstance(self.n_samples, bool) \
                or not low <= self.n_samples <= MAX_SECONDS_LIMIT * self.sr + low:
            raise ParameterError(f"front end {self.name}: n_samples={self.n_samples!r} is outside "
                                 f"{low}..{int(MAX_SECONDS_LIMIT * self.sr + low)}")  # fmt: skip
        if self.name != "log-mel" and (self.n_samples - _AISFX_FFT) % _AISFX_HOP:
            raise ParameterError(f"front end {self.name}: n_samples must be 2048 + a multiple of 1024")

    @property
    def sr(self) -> int:
        return FRONTENDS[self.name]

    @property
    def frames(self) -> int:
        """Spectrogram frames of a clip."""
        if self.name == "log-mel":
            return 1 + (self.n_samples - _LOG_MEL["n_fft"]) // _LOG_MEL["hop_length"]
        return 1 + (self.n_samples - _AISFX_FFT) // _AISFX_HOP

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, time, frequency)`` of one clip's input."""
        if self.name == "log-mel":
            return (1, self.frames, _LOG_MEL["n_mels"])
        return (256 if self.name == "aisfx-block3" else 512, self.frames // 8, 12)

    @property
    def n_mels(self) -> int:
        return _LOG_MEL["n_mels"] if self.name == "log-mel" else 96

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_samples": int(self.n_samples)}

    # ------------------------------------------------------------------ inputs
    def inputs(self, clips: list[np.ndarray]) -> np.ndarray:
        """Inputs of clips already at :attr:`sr`, [shape=(n, *shape), dtype=float32]."""
        fixed = np.zeros((len(clips), self.n_samples), dtype=np.float32)
        for row, y in zip(fixed, clips):
            y = np.asarray(y, dtype=np.float32)[: self.n_samples]
            row[: y.size] = y
        if self.name == "log-mel":
            from ..interpret.features import log_mel

            return np.stack([log_mel(y, sr=self.sr, **_LOG_MEL)[None] for y in fixed])
        return _aisfx_maps(fixed, blocks=3 if self.name == "aisfx-block3" else 4)


def _aisfx_maps(windows: np.ndarray, *, blocks: int) -> np.ndarray:
    import torch

    from ..interpret.encoders import aisfx_backend

    log_mel = aisfx_backend().log_mel(windows)
    network = _frozen_network()
    with torch.inference_mode():
        x = torch.from_numpy(log_mel).unsqueeze(1)
        for k, block in enumerate((network.conv_block1, network.conv_block2, network.conv_block3,
                                   network.conv_block4)[:blocks]):  # fmt: skip
            x = block(x, pool=k < 3)
        return x.contiguous().numpy()


_NETWORK: list = []


def _frozen_network():
    """aiSFX as trained, loaded once per process (loading checks the checkpoint's hash)."""
    if not _NETWORK:
        from ..backends.aisfx import pretrained_network

        _NETWORK.append(pretrained_network())
    return _NETWORK[0]


def frontend_for(name: str, durations_s, *, max_seconds: float = 5.0) -> Frontend:
    """The front end ``name`` with a clip length that holds the longest clip, up to
    ``max_seconds``.

    Parameters
    ----------
    name : str
    durations_s : array-like of float
        Length of each training clip.
    max_seconds : float

    Examples
    --------
    >>> frontend_for("log-mel", [0.4, 1.2]).shape
    (1, 57, 64)
    >>> frontend_for("aisfx-block3", [0.4, 1.2]).shape  # one aiSFX block at least
    (256, 12, 12)
    """
    if name not in FRONTENDS:
        raise ParameterError(f"unknown front end {name!r}; expected one of {', '.join(FRONTENDS)}")
    if not 0 < max_seconds <= MAX_SECONDS_LIMIT:
        raise ParameterError(f"expected 0 < max_seconds <= {MAX_SECONDS_LIMIT:g}, got {max_seconds!r}")
    longest = min(float(np.max(durations_s)) if len(durations_s) else 0.0, max_seconds)
    sr = FRONTENDS[name]
    if name == "log-mel":
        return Frontend(name, max(_LOG_MEL["n_fft"], int(math.ceil(longest * sr))))
    frames = max(_AISFX_BLOCK, 1 + math.ceil((longest * sr - _AISFX_FFT) / _AISFX_HOP))
    frames = _AISFX_BLOCK + 8 * math.ceil((frames - _AISFX_BLOCK) / 8)  # whole steps after 3 poolings
    return Frontend(name, _AISFX_FFT + (frames - 1) * _AISFX_HOP)


def durations(manifest) -> np.ndarray:
    """Seconds of each item of a manifest (its span, else its file's header); 0 where
    the header cannot be read (the item fails later, with its reason)."""
    from ..audio import info

    out = np.zeros(len(manifest))
    for i, item in enumerate(manifest):
        try:
            total = info(item.path).duration_s
        except EarmarkError:
            continue
        start = item.start_s or 0.0
        end = total if item.end_s is None else min(item.end_s, total)
        out[i] = max(0.0, end - start)
    return out


def clip_inputs(manifest, frontend: Frontend, *, progress: bool = False, batch: int = 16):
    """The inputs of every item of a manifest; unreadable items are named, the rest go on.

    Parameters
    ----------
    manifest : Manifest
    frontend : Frontend
    progress : bool
    batch : int
        Clips per pass through the frozen network.

    Returns
    -------
    X : np.ndarray [shape=(n_ok, *frontend.shape), dtype=float32]
    ok : np.ndarray [shape=(n_items,), dtype=bool]
    failures : list of (str, str)
        ``(path, reason)`` of the items that could not be read.

    Raises
    ------
    NoUsableItemsError
        If not one item could be read.
    """
    from ..audio import load

    items = list(manifest)
    ok = np.zeros(len(items), dtype=bool)
    failures, pending, blocks = [], [], []
    iterator = enumerate(items)
    if progress:
        from rich.progress import track

        iterator = track(iterator, total=len(items), description=f"{frontend.name} inputs")
    for i, item in iterator:
        try:
            y, _ = load(item.path, sr=frontend.sr, start_s=item.start_s, end_s=item.end_s)
        except EarmarkError as error:
            failures.append((str(item.path), str(error).removeprefix(f"{item.path}: ")))
            continue
        pending.append(y[: frontend.n_samples])
        ok[i] = True
        if len(pending) == batch:
            blocks.append(frontend.inputs(pending))
            pending = []
    if pending:
        blocks.append(frontend.inputs(pending))
    if not blocks:
        raise NoUsableItemsError(
            f"no item could be read ({len(failures)} failed"
            + (f"; first: {failures[0][0]}: {failures[0][1]}" if failures else "") + ")",
            failures,
        )
    return np.concatenate(blocks), ok, failures
