"""From audio to frame embeddings with timestamps, for any backend.

The one place where audio is cut into a backend's windows. The backend's
``lead_samples`` zeros (0 for most; a model trained on ``center=True`` spectrograms
declares the padding it saw) are put before the signal, and frame ``i`` of that padded
signal starts at sample ``i * hop_samples`` (at the backend's rate) and spans
``window_samples``: it covers samples ``[i * hop - lead, i * hop - lead + window)`` of
the audio. Its timestamps are computed from those integers, so they do not drift however
long the file, and are clipped to the audio (``start_s = max(i * hop - lead, 0) / sr``,
``end_s = min(i * hop - lead + window, n) / sr``); a backend whose frames describe only
the middle of their window (``focus_samples``) gets that middle's timestamps instead
(:func:`frame_times`). A padded signal of ``n`` samples
gives ``1`` frame if ``n <= window`` and ``ceil((n - window) / hop) + 1`` frames
otherwise, but never a frame that starts at or past the end (which only matters when
``hop > window``); the last window is zero-padded past the end of the signal.

Files are streamed (:func:`earmark.audio.stream`), so memory is bounded by one read
block plus one batch of windows, whatever the file's length. :func:`embed_file` gathers
every frame; :func:`stream_file` (a :class:`FrameStream`) hands them over one batch at a
time, for work on files too long to hold their embeddings (sound event detection).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from . import audio
from ._native_stderr import without_noise
from .backends.base import Backend
from .exceptions import AudioError, BackendError, EarmarkError, ParameterError

__all__ = [
    "cut_frames",
    "frame_times",
    "with_lead",
    "FrameEmbeddings",
    "FrameBatch",
    "FrameStream",
    "n_frames",
    "embed_signal",
    "embed_file",
    "stream_file",
]


@dataclass
class FrameEmbeddings:
    """Frame embeddings of one clip or file.

    Attributes
    ----------
    X : np.ndarray [shape=(n_frames, dimension), dtype=float32]
    start_s, end_s : np.ndarray [shape=(n_frames,), dtype=float64]
        Frame spans in seconds from the start of the clip (``end_s`` is clipped to the
        clip's duration).
    duration_s : float
        Length of the embedded audio.
    clip : np.ndarray [shape=(dimension,), dtype=float32]
        The backend's pooling of ``X``.
    """

    X: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    duration_s: float
    clip: np.ndarray = field(repr=False)
    scores: np.ndarray | None = field(default=None, repr=False)


def n_frames(
    n_samples: int, *, window_samples: int, hop_samples: int, lead_samples: int = 0
) -> int:
    """Number of frames a signal of ``n_samples`` gives (see module docstring).

    ``lead_samples`` zeros are put before a signal that is not empty.
    """
    if n_samples <= 0:
        return 0
    n_samples += lead_samples
    if n_samples <= window_samples:
        return 1
    # Integer ceilings: exact for any length, unlike float division.
    reaching_the_end = -(-(n_samples - window_samples) // hop_samples) + 1
    starting_inside = -(-n_samples // hop_samples)
    return min(reaching_the_end, starting_inside)


def frame_times(backend: Backend, first: int, count: int, n_samples: int):
    """Timestamps of frames ``first`` to ``first + count - 1`` of a signal of ``n_samples``
    (at the backend's rate), clipped to it.

    Frame ``i``'s window covers samples ``[i * hop - lead, i * hop - lead + window)``; the
    frame describes all of it, or only the ``focus_samples`` in its middle where the
    backend declares them.

    Returns
    -------
    start_s, end_s : np.ndarray [shape=(count,), dtype=float64]

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("placeholder")  # 0.5 s windows, 0.5 s hop, 16 kHz
    >>> [s.tolist() for s in frame_times(backend, 0, 3, 20000)]
    [[0.0, 0.5, 1.0], [0.5, 1.0, 1.25]]
    """
    hop, lead, window = backend.hop_samples, backend.lead_samples, backend.window_samples
    focus = backend.focus_samples or window
    starts = np.arange(first, first + count, dtype=np.int64) * hop - lead + (window - focus) // 2
    ends = np.minimum(starts + focus, n_samples)
    starts = np.clip(starts, 0, n_samples)
    return starts / backend.sample_rate, ends / backend.sample_rate


def cut_frames(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[np.ndarray]:
    """Cut a stream of sample blocks into frames (see module docstring).

    Keeps only the samples still needed by a window not yet emitted.
    """
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # index, in the whole signal, of buffer[0]
    emitted = 0
    total = 0
    for block in blocks:
        if block.size == 0:
            continue
        total += block.size
        buffer = np.concatenate([buffer, block]) if buffer.size else block.astype(np.float32)
        while emitted * hop + window <= total:
            start = emitted * hop - offset
            yield buffer[start : start + window]
            emitted += 1
        # With hop > window the next frame may start beyond the samples held so far.
        drop = min(emitted * hop - offset, buffer.size)
        if drop > 0:
            buffer = buffer[drop:]
            offset += drop
    for index in range(emitted, n_frames(total, window_samples=window, hop_samples=hop)):
        start = index * hop - offset
        tail = buffer[start:]
        yield np.concatenate([tail, np.zeros(window - tail.size, dtype=np.float32)])
    # Signal length in samples travels back to the caller through the generator's return.
    return total


def with_lead(blocks: Iterable[np.ndarray], lead: int) -> Iterator[np.ndarray]:
    """``lead`` zeros, then the blocks; nothing at all if every block is empty, so that
    an empty signal still embeds no frame."""
    blocks = iter(blocks)
    for block in blocks:
        if block.size:
            yield np.zeros(lead, dtype=np.float32)
            yield block
            break
    yield from blocks


@dataclass
class FrameBatch:
    """Consecutive frames of a stream, as :class:`FrameStream` yields them.

    Attributes
    ----------
    first : int
        Index, in the whole stream, of the batch's first frame.
    X : np.ndarray [shape=(n, dimension), dtype=float32]
    start_s, end_s : np.ndarray [shape=(n,), dtype=float64]
        Frame spans, from the same integer arithmetic as :class:`FrameEmbeddings`.
    scores : np.ndarray [shape=(n, n_scores)] or None
    """

    first: int
    X: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    scores: np.ndarray | None = None


class FrameStream:
    """Frame embeddings of a stream of samples, one backend batch at a time.

    Iterating yields :class:`FrameBatch` objects in order; memory is bounded by one read
    block plus one batch, whatever the length of the stream. Timestamps are exact: a
    batch embedded before the end of the stream holds only frames that lie wholly
    inside it, and the batch that holds the last frames is embedded once the length is
    known. When the iteration is over, :attr:`duration_s` and :attr:`n_frames` are set.

    Parameters
    ----------
    backend : Backend
    blocks : iterable of np.ndarray [shape=(n,), dtype=float32]
        Mono samples at ``backend.sample_rate``, e.g. :func:`earmark.audio.stream`.
    with_scores : bool
        Also ask the backend for its own class scores.
    on_progress : callable, optional
        Called with the seconds of audio each batch advanced by.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("placeholder")  # 0.5 s frames, batches of 16
    >>> stream = FrameStream(backend, [np.zeros(16000 * 10, dtype=np.float32)])
    >>> [(batch.first, batch.X.shape[0]) for batch in stream]
    [(0, 16), (16, 4)]
    >>> stream.duration_s, stream.n_frames
    (10.0, 20)
    """

    def __init__(
        self,
        backend: Backend,
        blocks: Iterable[np.ndarray],
        *,
        with_scores: bool = False,
        on_progress: Callable[[float], None] | None = None,
    ):
        self.backend = backend
        self.blocks = blocks
        self.with_scores = with_scores
        self.on_progress = on_progress
        self.duration_s: float | None = None
        self.n_frames: int | None = None
        #: The file the blocks come from (set by :func:`stream_file`), named in errors.
        self.path: str | None = None
        self._started = False

    def __iter__(self) -> Iterator[FrameBatch]:
        if self._started:
            raise EarmarkError("a FrameStream can be iterated only once")
        self._started = True
        backend = self.backend
        if getattr(backend, "parts", None):
            yield from self._fused_batches()
            return
        backend.load()
        window, hop, batch_size = backend.window_samples, backend.hop_samples, backend.batch_size
        lead = backend.lead_samples
        if not 0 <= lead < window:
            raise BackendError(
                f"{backend.name}: lead_samples must be in [0, window_samples={window}), "
                f"got {lead}"
            )
        read = 0  # samples, lead included, taken from the blocks so far

        def counted(blocks):
            nonlocal read
            for block in blocks:
                read += block.size
                yield block

        generator = cut_frames(
            counted(with_lead(self.blocks, lead) if lead else self.blocks), window, hop
        )
        batch: list[np.ndarray] = []
        first = 0

        def flush() -> FrameBatch:
            nonlocal first
            real = len(batch)
            stacked = np.stack(batch)
            if backend.fixed_batch and real < batch_size:
                stacked = np.concatenate(
                    [stacked, np.zeros((batch_size - real, window), dtype=np.float32)]
                )
            scores = None
            # A runtime's greeting on its first call (LiteRT's XNNPACK line) is dropped.
            quiet_first = (
                without_noise() if not getattr(backend, "_greeted", False)
                else contextlib.nullcontext()
            )
            with quiet_first:
                if self.with_scores:
                    X, scores = backend.embed_and_score_windows(stacked)
                    scores = scores[:real]
                else:
                    X = backend.embed_windows(stacked)
            backend._greeted = True
            # The framing rule emits a frame that ends inside the samples read so far,
            # or, once the blocks are exhausted, one that reaches the end: clipping to
            # what has been read is exact either way.
            start_s, end_s = frame_times(backend, first, real, read - lead)
            out = FrameBatch(first=first, X=X[:real], start_s=start_s, end_s=end_s,
                             scores=scores)
            first += real
            batch.clear()
            if self.on_progress is not None:
                self.on_progress(real * hop / backend.sample_rate)
            return out

        while True:
            try:
                frame = next(generator)
            except StopIteration as stop:
                # Samples of audio, without the lead.
                total = max((stop.value or 0) - lead, 0)
                break
            batch.append(frame)
            if len(batch) == batch_size:
                yield flush()
        if total == 0:
            if self.path is not None:
                # The file's fault (a span or a rate that leaves nothing), not the backend's.
                raise AudioError(self.path, "no samples to embed at the backend's rate")
            raise BackendError("no samples to embed")
        if batch:
            yield flush()
        self.duration_s = total / backend.sample_rate
        self.n_frames = first


    def _fused_batches(self) -> Iterator[FrameBatch]:
        """A fused backend's frames: the whole stream is read, each part embeds it at its
        own rate, and the aligned frames come out in batches (memory grows with the
        stream's length, unlike a plain backend's)."""
        blocks = [np.asarray(block, dtype=np.float32) for block in self.blocks]
        y = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
        if y.size == 0:
            if self.path is not None:
                raise AudioError(self.path, "no samples to embed at the backend's rate")
            raise BackendError("no samples to embed")
        frames = embed_signal(self.backend, y, self.backend.sample_rate, with_scores=self.with_scores)
        step = self.backend.batch_size
        for first in range(0, frames.X.shape[0], step):
            stop = first + step
            if self.on_progress is not None:
                self.on_progress(min(step, frames.X.shape[0] - first) * self.backend.hop_s)
            yield FrameBatch(first=first, X=frames.X[first:stop], start_s=frames.start_s[first:stop],
                             end_s=frames.end_s[first:stop])
        self.duration_s = frames.duration_s
        self.n_frames = int(frames.X.shape[0])


def _run(
    backend: Backend,
    blocks: Iterable[np.ndarray],
    *,
    with_scores: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> FrameEmbeddings:
    return _collect(
        FrameStream(backend, blocks, with_scores=with_scores, on_progress=on_progress)
    )


def _collect(stream: FrameStream) -> FrameEmbeddings:
    """All of a stream's batches as one :class:`FrameEmbeddings`."""
    batches = list(stream)
    backend, with_scores = stream.backend, stream.with_scores
    X = np.concatenate([batch.X for batch in batches])
    return FrameEmbeddings(
        X=X,
        start_s=np.concatenate([batch.start_s for batch in batches]),
        end_s=np.concatenate([batch.end_s for batch in batches]),
        duration_s=stream.duration_s,
        clip=backend.pool(X),
        scores=np.concatenate([batch.scores for batch in batches]) if with_scores else None,
    )


def stream_file(
    backend: Backend,
    path,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    with_scores: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> FrameStream:
    """Frame embeddings of a file (or a span of it), one batch at a time.

    Same frames and timestamps as :func:`embed_file`, with memory that does not grow
    with the file's length; see :class:`FrameStream`.

    Raises
    ------
    AudioError
        If the file is bad (when iterating); the message names it.
    """
    blocks = audio.stream(path, sr=backend.sample_rate, start_s=start_s, end_s=end_s)
    stream = FrameStream(backend, blocks, with_scores=with_scores, on_progress=on_progress)
    stream.path = str(path)
    return stream


def embed_signal(
    backend: Backend, y: np.ndarray, sr: int, *, with_scores: bool = False
) -> FrameEmbeddings:
    """Embed a waveform held in memory.

    Parameters
    ----------
    backend : Backend
    y : np.ndarray [shape=(n,)]
        Mono waveform.
    sr : int
        Its sample rate; resampled to ``backend.sample_rate`` with soxr if different.

    Returns
    -------
    FrameEmbeddings

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> import numpy as np
    >>> backend = get_backend("placeholder")
    >>> out = embed_signal(backend, np.zeros(16000, dtype=np.float32), 16000)
    >>> out.X.shape[1] == backend.dimension
    True
    """
    import soxr

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"expected a mono waveform of shape (n,), got {y.shape}")
    parts = getattr(backend, "parts", None)
    if parts:  # a fused backend: each part resamples to its own rate
        return backend.combine([embed_signal(part, y, sr, with_scores=with_scores) for part in parts])
    if sr != backend.sample_rate:
        y = soxr.resample(y, sr, backend.sample_rate, quality="HQ").astype(np.float32)
    return _run(backend, [y], with_scores=with_scores)


def embed_file(
    backend: Backend,
    path,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    with_scores: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> FrameEmbeddings:
    """Embed a file (or a span of it), streamed in blocks.

    Timestamps are relative to ``start_s`` (the start of the span).

    Raises
    ------
    AudioError
        If the file is bad; the message names it.
    """
    parts = getattr(backend, "parts", None)
    if parts:  # a fused backend: each part reads the file at its own rate
        return backend.combine([
            embed_file(part, path, start_s=start_s, end_s=end_s, with_scores=with_scores,
                       on_progress=on_progress if part is backend.reference else None)
            for part in parts
        ])
    stream = stream_file(
        backend, path, start_s=start_s, end_s=end_s, with_scores=with_scores,
        on_progress=on_progress,
    )
    return _collect(stream)
