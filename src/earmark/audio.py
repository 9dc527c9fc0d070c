"""Audio input: any common format and rate in, mono float32 at the rate you ask for out.

Reading goes through libsndfile (``soundfile``), which decodes WAV, FLAC, OGG/Vorbis,
Opus and MP3 at any bit depth; resampling goes through ``soxr``, streamed, so that a
file of hours is read block by block and never held whole in memory.

Every problem with a file (missing, empty, not audio, truncated, NaN or inf samples,
zero length) raises :class:`~earmark.exceptions.AudioError` naming the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .exceptions import AudioError, ParameterError

__all__ = ["AudioInfo", "info", "load", "stream", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

#: Samples read from disk per step when streaming (at the file's own rate).
READ_BLOCK_FRAMES = 1 << 18


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about a sound file."""

    path: str
    sr: int
    n_samples: int
    channels: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sr


def _open(path) -> sf.SoundFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(path, f"not readable as audio ({error})") from None


def info(path) -> AudioInfo:
    """Read the header of ``path``.

    Raises
    ------
    AudioError
        If the file is missing, empty, not audio, or holds no samples.
    """
    with _open(path) as handle:
        result = AudioInfo(
            path=str(path),
            sr=int(handle.samplerate),
            n_samples=int(handle.frames),
            channels=int(handle.channels),
            format=handle.format,
            subtype=handle.subtype or "",
        )
    if result.n_samples <= 0:
        raise AudioError(path, "zero length: the file holds no samples")
    return result


def _span(header: AudioInfo, start_s: float | None, end_s: float | None) -> tuple[int, int]:
    """First and one-past-last sample (at the file's rate) of the requested span."""
    start = 0 if start_s is None else int(round(start_s * header.sr))
    stop = header.n_samples if end_s is None else int(round(end_s * header.sr))
    if start < 0 or (end_s is not None and stop <= start):
        raise ParameterError(
            f"{header.path}: expected 0 <= start_s < end_s, got start_s={start_s}, end_s={end_s}"
        )
    if start >= header.n_samples:
        raise AudioError(
            header.path,
            f"start_s={start_s} is past the end of the file ({header.duration_s:.3f} s)",
        )
    return start, min(stop, header.n_samples)


def stream(
    path,
    *,
    sr: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    block_frames: int = READ_BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """Yield the file as consecutive mono float32 blocks at rate ``sr``.

    Memory stays bounded by ``block_frames`` whatever the file's length; the blocks,
    concatenated, equal :func:`load` of the same span.

    Parameters
    ----------
    path : str or Path
    sr : int, optional
        Output sample rate; ``None`` keeps the file's own.
    start_s, end_s : float, optional
        Span to read, in seconds from the start of the file.
    block_frames : int
        Samples read from disk per step (at the file's rate).

    Yields
    ------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono blocks. Their lengths vary with resampling; some may be empty.

    Raises
    ------
    AudioError
        For a bad file (see module docstring), as soon as the fault is met.
    """
    header = info(path)
    out_sr = header.sr if sr is None else int(sr)
    if out_sr <= 0:
        raise ParameterError(f"expected a positive sample rate, got sr={sr}")
    start, stop = _span(header, start_s, end_s)
    resampler = (
        None
        if out_sr == header.sr
        else soxr.ResampleStream(header.sr, out_sr, 1, dtype="float32", quality="HQ")
    )
    remaining = stop - start
    with _open(path) as handle:
        if start:
            handle.seek(start)
        while remaining > 0:
            try:
                block = handle.read(
                    min(block_frames, remaining), dtype="float32", always_2d=True
                )
            except (sf.LibsndfileError, RuntimeError) as error:
                raise AudioError(path, f"decoding failed ({error})") from None
            if block.shape[0] == 0:
                break
            remaining -= block.shape[0]
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if not np.isfinite(mono).all():
                first = start + (stop - start - remaining - block.shape[0])
                first += int(np.flatnonzero(~np.isfinite(mono))[0])
                raise AudioError(
                    path, f"non-finite sample (NaN or inf) at {first / header.sr:.3f} s"
                )
            last = remaining <= 0
            yield mono if resampler is None else resampler.resample_chunk(mono, last=last)
    if remaining > 0:
        missing = remaining / header.sr
        # Compressed formats only estimate their length from the header; a shortfall
        # of a few frames there is normal, a larger one is a truncated file.
        tolerance_s = 0.0 if header.format in ("WAV", "FLAC", "AIFF", "W64", "RF64") else 0.2
        if missing > tolerance_s:
            raise AudioError(
                path,
                f"truncated: header promises {header.duration_s:.3f} s, "
                f"data ends {missing:.3f} s early",
            )
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def load(
    path,
    *,
    sr: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Load a file (or a span of it) as mono float32 at rate ``sr``.

    Use :func:`stream` for long files; ``load`` holds the whole span in memory.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    sr : int

    Examples
    --------
    >>> y, sr = load("dog.flac", sr=16000)  # doctest: +SKIP
    """
    header = info(path)
    blocks = list(stream(path, sr=sr, start_s=start_s, end_s=end_s))
    y = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if y.size == 0:
        raise AudioError(path, "zero length: no samples in the requested span")
    return y, header.sr if sr is None else int(sr)


def n_samples_at(header: AudioInfo, sr: int, start_s=None, end_s=None) -> int:
    """Length in samples, at rate ``sr``, of the span :func:`stream` yields."""
    start, stop = _span(header, start_s, end_s)
    return int(math.ceil((stop - start) * sr / header.sr))
