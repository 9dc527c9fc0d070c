"""Audio input: any common format and rate in, mono float32 at the rate you ask for out.

Reading goes through libsndfile (``soundfile``), which decodes WAV, FLAC, OGG/Vorbis,
Opus and MP3 at any bit depth; what libsndfile cannot read (M4A/AAC, WMA, the audio of
video containers) goes through FFmpeg, from PyAV's wheels (:mod:`earmark._av_decode`).
Resampling goes through ``soxr``, streamed, so that a file of hours is read block by
block and never held whole in memory.

Every problem with a file (missing, empty, not audio, truncated, NaN or inf samples,
zero length) raises :class:`~earmark.exceptions.AudioError` naming the file.

A header is not trusted further than the file's size: a sample rate outside
:data:`SAMPLE_RATE_RANGE` is refused, a duration longer than the file's bytes can hold at
:data:`MIN_BITS_PER_SECOND` is refused, and no read step produces more than
``block_frames`` samples after resampling, so a header that lies about its rate cannot
inflate memory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .exceptions import AudioError, NotReadableBySndfile, ParameterError

__all__ = [
    "AudioInfo", "info", "load", "stream", "SUPPORTED_EXTENSIONS", "SAMPLE_RATE_RANGE",
    "MIN_BITS_PER_SECOND",
]

#: Read by libsndfile.
SNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
#: Read by FFmpeg (PyAV) where libsndfile cannot: what phones, recorders and video hold.
FFMPEG_EXTENSIONS = (
    ".m4a", ".aac", ".mp4", ".m4b", ".wma", ".wmv", ".webm", ".mkv", ".mka", ".mov",
    ".3gp", ".amr", ".caf", ".ac3", ".avi",
)
SUPPORTED_EXTENSIONS = SNDFILE_EXTENSIONS + FFMPEG_EXTENSIONS

#: Sample rates (Hz) a real recording has: telephone speech to ultrasonic bat detectors.
#: A header outside this range is damaged or forged (1 Hz makes 64 KB of WAV nine hours).
SAMPLE_RATE_RANGE = (1_000, 1_536_000)
#: The lowest bit rate any codec reaches on real audio (FLAC of digital silence is about
#: 190 bit/s): a header promising more seconds than the file's bytes allow at this rate
#: is lying.
MIN_BITS_PER_SECOND = 64

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
    #: "libsndfile", or "ffmpeg" for what only FFmpeg (PyAV) reads.
    decoder: str = "libsndfile"

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sr


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return path


def _open(path) -> sf.SoundFile:
    """libsndfile's handle, or a NotReadableBySndfile error saying why libsndfile cannot read it."""
    path = _check_file(path)
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise NotReadableBySndfile(path, _sndfile_reason(path, error)) from None


def _sndfile_reason(path, error) -> str:
    reason = str(error).replace(f"Error opening {str(path)!r}: ", "")
    rate = _riff_rate(path)
    low, high = SAMPLE_RATE_RANGE
    if rate is not None and not low <= rate <= high:
        return _implausible_rate(rate)
    # libsndfile's MP3 reader says a file without one whole MPEG frame "does not exist or
    # is not a regular file", which it plainly is.
    if "does not exist" in reason:
        if Path(path).suffix.lower() == ".mp3" and _looks_like_mp3(path):
            return "damaged or truncated MP3: no complete frame could be decoded"
        return "not readable as audio (read as MPEG audio, no whole frame found in it)"
    if "malformed" in reason:
        return f"damaged or truncated ({reason})"
    return f"not readable as audio ({reason})"


def _implausible_rate(rate: int) -> str:
    low, high = SAMPLE_RATE_RANGE
    return (
        f"implausible sample rate in the header: {rate} Hz "
        f"(expected {low} to {high} Hz); the header is damaged"
    )


def _riff_rate(path) -> int | None:
    """The sample rate a WAV file's ``fmt `` chunk declares, if it is a WAV file."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    at = head.find(b"fmt ")
    if head[:4] not in (b"RIFF", b"RF64") or at < 0 or len(head) < at + 16:
        return None
    format_tag = int.from_bytes(head[at + 8 : at + 10], "little")
    channels = int.from_bytes(head[at + 10 : at + 12], "little")
    if format_tag == 0 or channels == 0:
        return None  # not a fmt chunk whose rate alone is wrong
    return int.from_bytes(head[at + 12 : at + 16], "little")


def _mp3_decoder_may_speak(path) -> bool:
    """Whether libsndfile may hand the file to libmpg123 (by its name or its bytes)."""
    return Path(path).suffix.lower() == ".mp3" or _looks_like_mp3(path)


def _looks_like_mp3(path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def info(path) -> AudioInfo:
    """Read the header of ``path``, and check it against the file's size.

    Raises
    ------
    AudioError
        If the file is missing, empty, not audio, cut short, holds no samples, or its
        header declares an implausible sample rate or more audio than its bytes hold.
    """
    from ._native_stderr import attributed

    _check_file(path)
    try:
        with attributed(path) if _mp3_decoder_may_speak(path) else contextlib.nullcontext():
            handle = _open(path)
        with handle:
            result = AudioInfo(
                path=str(path),
                sr=int(handle.samplerate),
                n_samples=int(handle.frames),
                channels=int(handle.channels),
                format=handle.format,
                subtype=handle.subtype or "",
            )
    except NotReadableBySndfile as refusal:
        # libsndfile's verdict on the formats it reads stands (FFmpeg would guess its way
        # through a damaged WAV); the rest go to FFmpeg.
        if Path(path).suffix.lower() in SNDFILE_EXTENSIONS:
            raise AudioError(path, refusal.reason) from None
        from . import _av_decode

        result = _av_decode.info(path, refusal.reason)
    else:
        fault = _container_fault(path)
        if fault:
            raise AudioError(path, fault)
    _check_plausible(result)
    if result.n_samples <= 0:
        raise AudioError(path, "zero length: the file holds no samples")
    return result


def _check_plausible(header: AudioInfo) -> None:
    """Refuse a header that promises what the file cannot hold (see module docstring)."""
    low, high = SAMPLE_RATE_RANGE
    if not low <= header.sr <= high:
        raise AudioError(header.path, _implausible_rate(header.sr))
    size_bits = 8 * os.path.getsize(header.path)
    if header.n_samples > 0 and header.duration_s * MIN_BITS_PER_SECOND > size_bits:
        raise AudioError(
            header.path,
            f"the header declares {header.duration_s:.0f} s of audio, more than "
            f"{size_bits // 8} bytes can hold; the header is damaged",
        )


# libsndfile silently shortens a WAV, AIFF or Ogg file that was cut short to the data
# it finds, so its frame count cannot reveal truncation; the container's own sizes can.
_IFF_DATA_CHUNK = {b"RIFF": b"data", b"RIFX": b"data", b"RF64": b"data", b"FORM": b"SSND"}
#: Sizes a recorder writes into a WAV header while it does not yet know the length.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
_OGG_MAX_PAGE_BYTES = 27 + 255 + 255 * 255


def _container_fault(path) -> str | None:
    """Why the file's container says it was cut short, or None if it looks whole."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
        if magic in _IFF_DATA_CHUNK:
            return _iff_fault(handle, magic, size)
        if magic == b"OggS":
            handle.seek(max(0, size - 2 * _OGG_MAX_PAGE_BYTES))
            return _ogg_fault(handle.read())
    return None


def _iff_fault(handle, magic: bytes, size: int) -> str | None:
    """Compare the audio chunk's declared size with the bytes left in a RIFF/AIFF file."""
    order = "little" if magic in (b"RIFF", b"RF64") else "big"
    wanted = _IFF_DATA_CHUNK[magic]
    offset, data_size_64 = 12, None
    for _ in range(256):  # a handful of chunks precede the audio in real files
        handle.seek(offset)
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:], order)
        if chunk_id == b"ds64":  # RF64 keeps the 64-bit data size here
            data_size_64 = int.from_bytes(handle.read(16)[8:], "little")
        if chunk_id == wanted:
            if chunk_size == 0xFFFFFFFF and data_size_64 is not None:
                chunk_size = data_size_64
            elif chunk_size in _UNKNOWN_SIZES:
                return None
            available = size - offset - 8
            if chunk_size > available:
                return (
                    f"truncated: the header declares {chunk_size} bytes of audio data, "
                    f"the file holds {available}"
                )
            return None
        offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _ogg_fault(tail: bytes) -> str | None:
    """Check that an Ogg file's last page is complete and marks the end of the stream."""
    position = len(tail)
    while (position := tail.rfind(b"OggS", 0, position)) >= 0:
        header = tail[position : position + 27]
        if len(header) == 27 and header[4] == 0:  # stream structure version 0
            lacing = tail[position + 27 : position + 27 + header[26]]
            end = position + 27 + header[26] + sum(lacing)
            if len(lacing) < header[26] or end > len(tail):
                return "truncated: the file ends inside an Ogg page"
            if end == len(tail) and not header[5] & 0x04:
                return "truncated: the last Ogg page does not mark the end of the stream"
            return None
    return None


def _mp3_length_is_exact(path) -> bool:
    """True if the MP3 has a Xing/Info/VBRI header, so its frame count is exact.

    Without one, libsndfile estimates the length from the file size and bit rate,
    counting tag bytes as audio: real files then decode a fraction of a second (or,
    with cover art, many seconds) shorter than the header promises.
    """
    with open(path, "rb") as handle:
        head = handle.read(10)
        skip = 0
        if head[:3] == b"ID3" and len(head) == 10:
            skip = 10 + sum((head[6 + i] & 0x7F) << (21 - 7 * i) for i in range(4))
            skip += 10 if head[5] & 0x10 else 0  # ID3v2.4 footer
        handle.seek(skip)
        data = handle.read(8192)
    for index in range(len(data) - 1):
        if data[index] == 0xFF and data[index + 1] & 0xE0 == 0xE0:
            first_frame = data[index : index + 200]
            return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))
    return False


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
    # Upsampling multiplies a block: read fewer samples so that none yields more than
    # block_frames (a forged low rate would otherwise make gigabytes of one block).
    if out_sr > header.sr:
        block_frames = max(1, block_frames * header.sr // out_sr)
    if header.decoder == "ffmpeg":
        from . import _av_decode

        blocks = _av_decode.blocks(path, start, stop, block_frames)
    else:
        blocks = _sndfile_blocks(path, start, stop, block_frames)
    for block in blocks:
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
        # Every format but MP3 states its exact length. An MP3 with a Xing/Info header
        # does too, give or take the two MPEG frames decoders disagree on; without one
        # the length is a guess and a shortfall says nothing.
        if header.decoder == "ffmpeg":
            tolerance = None  # FFmpeg's length is the container's estimate
        elif header.format != "MP3":
            tolerance = 0
        elif _mp3_length_is_exact(path):
            tolerance = 2 * 1152
        else:
            tolerance = None
        if tolerance is not None and remaining > tolerance:
            raise AudioError(
                path,
                f"truncated: header promises {header.duration_s:.3f} s, "
                f"data ends {remaining / header.sr:.3f} s early",
            )
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _sndfile_blocks(path, start: int, stop: int, block_frames: int) -> Iterator[np.ndarray]:
    """Blocks of shape (n, channels) from libsndfile, samples ``[start, stop)``.

    An MP3's decoder (libmpg123) prints its complaints on stderr without the file's
    name; they are printed again with it (:mod:`earmark._native_stderr`).
    """
    from ._native_stderr import attributed

    noisy = _mp3_decoder_may_speak(path)
    guard = (lambda: attributed(path)) if noisy else contextlib.nullcontext
    remaining = stop - start
    with guard():
        handle = _open(path)
    with handle:
        if start:
            with guard():
                handle.seek(start)
        while remaining > 0:
            try:
                with guard():
                    block = handle.read(
                        min(block_frames, remaining), dtype="float32", always_2d=True
                    )
            except (sf.LibsndfileError, RuntimeError) as error:
                raise AudioError(
                    path, f"damaged or truncated: decoding failed ({error})"
                ) from None
            if block.shape[0] == 0:
                return
            remaining -= block.shape[0]
            yield block


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
    """Length in samples, at rate ``sr``, of the span :func:`stream` yields.

    soxr gives ``round(n * sr / header.sr)`` samples (halves rounded up), computed here
    in integers. For an MP3 without a Xing header this is an upper bound, since its
    header length is an estimate.
    """
    start, stop = _span(header, start_s, end_s)
    n = stop - start
    return n if sr == header.sr else (2 * n * sr + header.sr) // (2 * header.sr)
