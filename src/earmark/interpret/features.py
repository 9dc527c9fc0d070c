"""Log-mel patches with exact times: the input of the prototype network.

A patch is ``patch_frames`` consecutive frames of a log-mel spectrogram computed without
centring (frame ``k`` covers samples ``[k * hop_length, k * hop_length + n_fft)``), so
each patch covers an exact span of the recording, from ``start_s`` to ``end_s``. That
span is what a prototype is shown as: its nearest real training segment, as a picture
and as sound.

Two spectrograms (``PatchConfig.spectrogram``): ``"db"``, power in decibels for a
network learned from scratch, and ``"aisfx"``, the scaled log-mel blocks the pretrained
aiSFX network reads (:meth:`earmark.backends.aisfx.AisfxBackend.log_mel`: 44.1 kHz, 96
bands, 100 frames, each block scaled to its own peak), for a network whose encoder
starts with aiSFX's frozen convolutions (:meth:`PatchConfig.aisfx`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import EarmarkError, NoUsableItemsError, ParameterError

__all__ = ["PatchConfig", "PatchSet", "log_mel", "log_mel_patches", "manifest_patches",
           "score_patch_files"]

#: Floor of the log-mel power in decibels; digital silence would otherwise be -inf.
_FLOOR_DB = -100.0
#: The spectrogram grid the aiSFX network was trained on (earmark.backends.aisfx).
_AISFX_GRID = {"sr": 44100, "n_mels": 96, "n_fft": 2048, "hop_length": 1024, "patch_frames": 100}


@dataclass(frozen=True)
class PatchConfig:
    """How audio becomes patches (stored with a model, so new audio is cut the same way).

    Attributes
    ----------
    sr : int
        Rate the audio is resampled to, in Hz.
    n_mels, n_fft, hop_length : int
        Mel bands, FFT size and hop (samples) of the spectrogram.
    patch_frames : int
        Frames per patch (``patch_frames * hop_length / sr`` seconds, plus one FFT).
    patch_hop_frames : int
        Frames between the starts of consecutive patches of one recording.
    max_patches : int or None
        At most this many patches per recording, from its start (None: all).
    spectrogram : {"db", "aisfx"}
        Power in decibels, or the aiSFX network's own scaled log-mel (which fixes
        ``sr``, ``n_mels``, ``n_fft``, ``hop_length`` and ``patch_frames``; see
        :meth:`aisfx`).
    """

    sr: int = 16000
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 256
    patch_frames: int = 64
    patch_hop_frames: int = 32
    max_patches: int | None = 4
    spectrogram: str = "db"

    @classmethod
    def aisfx(cls, *, patch_hop_frames: int = 50, max_patches: int | None = 4) -> "PatchConfig":
        """Patches the aiSFX network reads: 100 frames (2.35 s) of its 96-band log-mel.

        Examples
        --------
        >>> config = PatchConfig.aisfx(max_patches=2)
        >>> config.patch_samples, round(config.patch_s, 3)
        (103424, 2.345)
        """
        return cls(**_AISFX_GRID, patch_hop_frames=patch_hop_frames, max_patches=max_patches,
                   spectrogram="aisfx")  # fmt: skip

    def __post_init__(self):
        for name in ("sr", "n_mels", "n_fft", "hop_length", "patch_frames", "patch_hop_frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"expected {name} to be an integer >= 1, got {value!r}")
        if self.max_patches is not None and (
            not isinstance(self.max_patches, (int, np.integer)) or self.max_patches < 1
        ):
            raise ParameterError(f"expected max_patches >= 1 or None, got {self.max_patches!r}")
        if self.spectrogram not in ("db", "aisfx"):
            raise ParameterError(f"expected spectrogram 'db' or 'aisfx', got {self.spectrogram!r}")
        if self.spectrogram == "aisfx":
            wrong = {k: getattr(self, k) for k, v in _AISFX_GRID.items() if getattr(self, k) != v}
            if wrong:
                raise ParameterError(
                    f"the aisfx spectrogram is fixed by its network ({_AISFX_GRID}); got {wrong}: "
                    f"use PatchConfig.aisfx()"
                )

    @property
    def patch_samples(self) -> int:
        """Samples a patch covers."""
        return (self.patch_frames - 1) * self.hop_length + self.n_fft

    @property
    def patch_s(self) -> float:
        """Seconds a patch covers."""
        return self.patch_samples / self.sr

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class PatchSet:
    """Patches of many recordings, each with where it came from.

    Attributes
    ----------
    X : np.ndarray [shape=(n_patches, patch_frames, n_mels), dtype=float32]
        Log-mel patches in decibels.
    item : np.ndarray [shape=(n_patches,), dtype=int64]
        Index of each patch's recording in the manifest.
    start_s, end_s : np.ndarray [shape=(n_patches,), dtype=float64]
        Span of each patch in its file, in seconds.
    ok : np.ndarray [shape=(n_items,), dtype=bool]
        Items that gave at least one patch.
    failures : list of (str, str)
        ``(path, reason)`` of the items that could not be read.
    """

    X: np.ndarray
    item: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    ok: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)


def log_mel(y, *, sr: int, n_mels: int = 64, n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """Log-mel spectrogram in decibels, frames uncentred so their times are exact.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio, ``n_samples >= n_fft``.
    sr : int
    n_mels, n_fft, hop_length : int

    Returns
    -------
    S_db : np.ndarray [shape=(1 + (n_samples - n_fft) // hop_length, n_mels), dtype=float32]
        Frame ``k`` covers samples ``[k * hop_length, k * hop_length + n_fft)``.

    Examples
    --------
    >>> log_mel(np.zeros(16000, dtype=np.float32), sr=16000).shape
    (59, 64)
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size < n_fft:
        raise ParameterError(f"expected mono audio of at least {n_fft} samples, got shape {y.shape}")
    S = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, center=False, power=2.0
    )
    # A fixed reference (not the clip's maximum) keeps loudness comparable across clips.
    S_db = 10.0 * np.log10(np.maximum(S, 10 ** (_FLOOR_DB / 10)))
    return S_db.T.astype(np.float32)


def log_mel_patches(y, config: PatchConfig = PatchConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Cut one recording into log-mel patches; a short one is padded with silence.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio at ``config.sr``.
    config : PatchConfig

    Returns
    -------
    X : np.ndarray [shape=(n_patches, patch_frames, n_mels), dtype=float32]
    start_s : np.ndarray [shape=(n_patches,)]
        Start of each patch in seconds from the start of ``y``; each ends
        ``config.patch_s`` later.

    Examples
    --------
    >>> X, start_s = log_mel_patches(np.zeros(8000, dtype=np.float32))
    >>> X.shape, start_s.tolist()
    ((1, 64, 64), [0.0])
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"expected non-empty mono audio, got shape {y.shape}")
    if y.size < config.patch_samples:
        y = np.pad(y, (0, config.patch_samples - y.size))
    # Frames of an uncentred spectrogram; a patch starts every patch_hop_frames.
    n_frames = 1 + (y.size - config.n_fft) // config.hop_length
    starts = np.arange(0, n_frames - config.patch_frames + 1, config.patch_hop_frames)
    if config.max_patches is not None:
        starts = starts[: config.max_patches]
    if config.spectrogram == "aisfx":
        # The aiSFX backend's own log-mel of each patch's span (each scaled to its peak).
        from .encoders import aisfx_backend

        spans = starts * config.hop_length
        X = aisfx_backend().log_mel(np.stack([y[s : s + config.patch_samples] for s in spans]))
    else:
        S = log_mel(
            y, sr=config.sr, n_mels=config.n_mels, n_fft=config.n_fft, hop_length=config.hop_length
        )
        X = np.stack([S[s : s + config.patch_frames] for s in starts])
    return X, starts * config.hop_length / config.sr


def manifest_patches(
    manifest, config: PatchConfig = PatchConfig(), *, progress: bool = False
) -> PatchSet:
    """Patches of every item of a manifest; unreadable items are named, the rest go on.

    Parameters
    ----------
    manifest : Manifest
        Items with a ``start_s`` / ``end_s`` are cut from that span of their file.
    config : PatchConfig
    progress : bool
        Show a progress bar.

    Returns
    -------
    PatchSet
        Times are in seconds from the start of each file.

    Raises
    ------
    NoUsableItemsError
        If not one item could be cut; its ``failures`` say why for each.
    """
    from ..audio import load

    if config.spectrogram == "aisfx":
        # Once, before any file: a missing aisfx wheel is one clear error, not a
        # failure per file.
        from .encoders import aisfx_backend

        aisfx_backend()
    items = list(manifest)
    blocks, item_index, starts, failures = [], [], [], []
    ok = np.zeros(len(items), dtype=bool)
    iterator = enumerate(items)
    if progress:
        from rich.progress import track

        iterator = track(iterator, total=len(items), description="log-mel patches")
    for i, item in iterator:
        try:
            y, _ = load(item.path, sr=config.sr, start_s=item.start_s, end_s=item.end_s)
            X, start_s = log_mel_patches(y, config)
        except EarmarkError as error:  # AudioError names the file; a ParameterError does not
            failures.append((str(item.path), str(error).removeprefix(f"{item.path}: ")))
            continue
        blocks.append(X)
        item_index.append(np.full(len(X), i, dtype=np.int64))
        starts.append(start_s + (item.start_s or 0.0))
        ok[i] = True
    if not blocks:
        raise NoUsableItemsError(
            f"no item of the manifest could be cut into patches ({len(failures)} failed"
            + (f"; first: {failures[0][0]}: {failures[0][1]}" if failures else "")
            + ")",
            failures,
        )
    start_s = np.concatenate(starts)
    return PatchSet(
        X=np.concatenate(blocks),
        item=np.concatenate(item_index),
        start_s=start_s,
        end_s=start_s + config.patch_s,
        ok=ok,
        failures=failures,
    )


def score_patch_files(paths, config: "PatchConfig", clip_proba, n_classes: int, *,
                      progress: bool = False):
    """Patches of audio files and per-file probabilities, for models that read patches.

    What the prototype network and the graph tagger share in ``score_files``: the files
    cut into patches (:func:`manifest_patches`), ``clip_proba(patches, n_files)`` turned
    into ``(P, ok)``, and one error naming each file that could not be read.

    Returns
    -------
    patches : PatchSet or None
        None when not one file could be read.
    P : np.ndarray [shape=(n_files, n_classes)]
    ok : np.ndarray [shape=(n_files,), dtype=bool]
    errors : list of (str or None)
    """
    from pathlib import Path

    import pandas as pd

    from ..manifest import Manifest

    given = [str(p) for p in paths]
    resolved = [str(Path(p).resolve()) for p in given]
    manifest = Manifest(pd.DataFrame({"path": resolved, "labels": ["?"] * len(given)}))
    try:
        patches = manifest_patches(manifest, config, progress=progress)
        failed = dict(patches.failures)
        P, ok = clip_proba(patches, len(given))
    except NoUsableItemsError as error:  # not one file could be read
        failed, ok = dict(error.failures), np.zeros(len(given), dtype=bool)
        patches, P = None, np.zeros((len(given), n_classes))
    errors = [None if good else f"{name}: {failed.get(path, 'could not be read')}"
              for name, path, good in zip(given, resolved, ok)]  # fmt: skip
    return patches, P, ok, errors
