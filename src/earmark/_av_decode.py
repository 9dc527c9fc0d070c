"""Audio that libsndfile cannot read, through FFmpeg as PyAV's wheels carry it.

M4A/AAC from phones, WMA, and the audio track of video containers. Only used where
libsndfile refuses a file, so WAV, FLAC, Ogg and MP3 decode exactly as before.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .exceptions import AudioError

__all__ = ["info", "blocks"]


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return None
    return av


def _open_audio(path, sndfile_reason: str):
    av = _av()
    if av is None:
        raise AudioError(path, f"{sndfile_reason}; FFmpeg (PyAV) is not installed")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        raise AudioError(path, sndfile_reason) from None
    if not container.streams.audio:
        container.close()
        raise AudioError(path, f"{sndfile_reason}; FFmpeg finds no audio stream in it")
    stream = container.streams.audio[0]
    if stream.codec_context is None or not (stream.codec_context.sample_rate or 0) > 0:
        container.close()
        raise AudioError(path, f"{sndfile_reason}; FFmpeg has no decoder for its audio")
    return container, stream


def info(path, sndfile_reason: str):
    """The header of a file only FFmpeg reads, as an :class:`~earmark.audio.AudioInfo`.

    ``n_samples`` comes from the stream's (or container's) declared duration.
    """
    from .audio import AudioInfo

    container, stream = _open_audio(path, sndfile_reason)
    with container:
        sr = int(stream.codec_context.sample_rate or stream.sample_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        else:
            seconds = 0.0
        channels = int(stream.codec_context.channels or 1)
        return AudioInfo(
            path=str(path),
            sr=sr,
            n_samples=int(round(seconds * sr)),
            channels=channels,
            format=container.format.name.split(",")[0].upper(),
            subtype=stream.codec_context.name or "",
            decoder="ffmpeg",
        )


def blocks(path, start: int, stop: int, block_frames: int) -> Iterator[np.ndarray]:
    """Blocks of shape (n, channels), float32, of samples ``[start, stop)``.

    Samples before ``start`` are decoded and dropped (exact, if slow for a late span).
    """
    av = _av()
    container, stream = _open_audio(path, "not readable as audio")
    to_float = av.AudioResampler(format="fltp")
    position = 0  # index of the next decoded sample
    pending: list[np.ndarray] = []
    held = 0
    try:
        with container:
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    planes = converted.to_ndarray()  # (channels, n)
                    block = np.ascontiguousarray(planes.T, dtype=np.float32)
                    begin, end = position, position + block.shape[0]
                    position = end
                    if end <= start:
                        continue
                    block = block[max(start - begin, 0) : block.shape[0] - max(end - stop, 0)]
                    pending.append(block)
                    held += block.shape[0]
                    while held >= block_frames:
                        joined = np.concatenate(pending)
                        yield joined[:block_frames]
                        rest = joined[block_frames:]
                        pending, held = ([rest] if rest.size else []), rest.shape[0]
                    if position >= stop:
                        break
                if position >= stop:
                    break
    except av.FFmpegError as error:
        raise AudioError(path, f"damaged or truncated: decoding failed ({error})") from None
    if pending:
        yield np.concatenate(pending)
