"""Detect sound events in one file of any length, in memory that does not grow with it.

The file streams through the backend one batch of frames at a time
(:class:`earmark.embedding.FrameStream`); each batch is scored at once and its
embeddings dropped. Only the scores are kept (``n_rows x n_classes`` numbers: a three-hour
file at a 0.5 s hop is 21 600 rows), so the median filter and the event rules of
:func:`~earmark.detection.events.frames_to_events` run on the whole file exactly as on a
short one, with no seam at batch boundaries. A min/max envelope of the waveform is
gathered on the way for the picture (:func:`~earmark.detection.plots.plot_detections`).

Two kinds of scorer plug in:

- a **frame scorer** (:class:`FrameScorer`): anything with ``classes_`` and
  ``segment_proba(X)`` that scores each frame embedding on its own, such as
  :class:`~earmark.detection.mil.MILClassifier`. One score row per backend frame;
- a **clip classifier** (anything with ``classes_`` and ``predict_proba`` over clip
  embeddings, such as :class:`~earmark.model.EarmarkModel`), through
  :class:`SlidingWindows`: windows of ``window_s`` every ``hop_s`` seconds, each
  embedded as the backend pools the frames that lie inside it (for a mean-pooling
  backend with no lead, exactly the clip embedding of that stretch of audio cut out
  on its own), one score row per window.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from .. import audio
from ..embedding import FrameBatch, FrameStream, n_frames
from ..exceptions import EarmarkError, ParameterError
from .boundaries import LevelTrack, refine_boundaries
from .envelope import Envelope
from .events import Event, frames_to_events, median_filter_scores, median_frames_for
from .events import WINDOW_REDUCTIONS, resolve_thresholds, window_cells, write_events

__all__ = ["FrameScorer", "SlidingWindows", "DetectionResult", "detect_file", "CELL_REDUCTIONS",
           "BOUNDARIES", "level_search_s"]

#: Values of ``detect_file(cells=...)``: runs of whole windows, or cells between them.
CELL_REDUCTIONS = (None, *WINDOW_REDUCTIONS)


@runtime_checkable
class FrameScorer(Protocol):
    """What a per-frame detector provides.

    ``segment_proba`` must score each row on its own (it is called on consecutive
    batches of a file's frames, not on the whole file at once).
    """

    classes_: Any

    def segment_proba(self, X: np.ndarray) -> np.ndarray:
        """Scores of frame embeddings: ``(n_frames, dimension) -> (n_frames, n_classes)``."""


class SlidingWindows:
    """Run a clip classifier over a long file in sliding windows.

    Parameters
    ----------
    model : object with ``classes_`` and ``predict_proba``
        A classifier of clip embeddings, e.g. :class:`~earmark.model.EarmarkModel`.
    window_s : float, optional
        Window length. The window is embedded from the backend frames that lie inside
        it, so it must be the backend's own window plus a whole number of its hops;
        defaults to the backend's window (one frame per window).
    hop_s : float, optional
        Step between windows, a whole number of backend hops; defaults to the backend's
        hop.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("mfcc")  # 1 s frames every 0.5 s
    >>> SlidingWindows(model=None, window_s=2.0, hop_s=1.0).frames_for(backend)
    (3, 2)
    """

    def __init__(self, model, *, window_s: float | None = None, hop_s: float | None = None):
        self.model = model
        self.window_s = window_s
        self.hop_s = hop_s

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.model.classes_)

    def frames_for(self, backend) -> tuple[int, int]:
        """``(frames per window, frames per hop)`` on ``backend``'s frame grid.

        Raises
        ------
        ParameterError
            If the window or hop does not fall on that grid; the message lists the
            lengths that do.
        """
        sr, window, hop = backend.sample_rate, backend.window_samples, backend.hop_samples
        window_samples = window if self.window_s is None else _samples(self.window_s, sr)
        hop_samples = hop if self.hop_s is None else _samples(self.hop_s, sr)
        if window_samples < window or (window_samples - window) % hop:
            choices = ", ".join(f"{(window + i * hop) / sr:g}" for i in range(4))
            raise ParameterError(
                f"window must be the {backend.name} backend's window ({window / sr:g} s) plus "
                f"a whole number of its hops ({hop / sr:g} s), i.e. {choices}, ... s; "
                f"got {self.window_s}"
            )
        if hop_samples <= 0 or hop_samples % hop:
            raise ParameterError(
                f"hop must be a whole number of the {backend.name} backend's hops "
                f"({hop / sr:g} s), i.e. {', '.join(f'{i * hop / sr:g}' for i in (1, 2, 3))}, "
                f"... s; got {self.hop_s}"
            )
        return (window_samples - window) // hop + 1, hop_samples // hop

    def __repr__(self) -> str:
        return f"SlidingWindows({self.model!r}, window_s={self.window_s}, hop_s={self.hop_s})"


def _samples(seconds: float, sr: int) -> int:
    if not seconds > 0:
        raise ParameterError(f"expected a window and hop > 0 seconds, got {seconds}")
    return int(round(seconds * sr))


# ------------------------------------------------------------------ scoring sessions
def _small_batch():
    """One BLAS thread while a session scores a batch of a few dozen frames: a second
    thread only spins on products that small and takes the core the backend needs
    (a detector on a 3-hour file: 0.58 of embed's throughput with two BLAS threads,
    0.90 with one)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """The loaded BLAS libraries, found once (``threadpool_limits`` looks them up on
    every call: 2.8 ms, against 0.05 ms to limit through a kept controller, per batch)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class _FrameSession:
    """One score row per backend frame, from a :class:`FrameScorer`."""

    def __init__(self, scorer, backend):
        self.scorer = scorer
        self.n_classes = len(scorer.classes_)
        self.hop_s = backend.hop_s

    def feed(self, batch: FrameBatch):
        with _small_batch():
            scores = np.asarray(self.scorer.segment_proba(batch.X), dtype=np.float32)
        if scores.shape != (batch.X.shape[0], self.n_classes):
            raise EarmarkError(
                f"segment_proba: expected scores of shape ({batch.X.shape[0]}, "
                f"{self.n_classes}), got {scores.shape}"
            )
        return scores, batch.start_s, batch.end_s

    def finish(self, n_frames_total: int):
        return None


class _ContextSession(_FrameSession):
    """One score row per frame from a scorer that reads ``context_frames`` neighbours on
    each side: frames are held until their right-hand context has arrived, and the
    file's edges repeat its first and last frame (as the scorer does on a whole
    recording), so the scores are the same as on the file read at once."""

    def __init__(self, scorer, backend):
        super().__init__(scorer, backend)
        self.context = int(scorer.context_frames)
        self._X = None  # frames held: context before the next frame to score, and after
        self._start = np.zeros(0)
        self._end = np.zeros(0)

    def feed(self, batch: FrameBatch):
        if len(batch.X) == 0:
            return None
        if self._X is None:
            self._X = np.repeat(batch.X[:1], self.context, axis=0)
        self._X = np.concatenate([self._X, batch.X])
        self._start = np.concatenate([self._start, batch.start_s])
        self._end = np.concatenate([self._end, batch.end_s])
        return self._score()

    def finish(self, n_frames_total: int):
        if self._X is None or len(self._start) == 0:
            return None
        self._X = np.concatenate([self._X, np.repeat(self._X[-1:], self.context, axis=0)])
        return self._score()

    def _score(self):
        ready = self._X.shape[0] - 2 * self.context  # frames with context on both sides
        if ready < 1:
            return None
        with _small_batch():
            scores = np.asarray(self.scorer.segment_proba(self._X, padded=True), dtype=np.float32)
        if scores.shape != (ready, self.n_classes):
            raise EarmarkError(
                f"segment_proba: expected scores of shape ({ready}, {self.n_classes}), "
                f"got {scores.shape}"
            )
        out = scores, self._start[:ready], self._end[:ready]
        self._X = self._X[ready:]
        self._start, self._end = self._start[ready:], self._end[ready:]
        return out


class _WindowSession:
    """One score row per window, keeping only the frames a window still needs."""

    def __init__(self, windows: SlidingWindows, backend):
        self.model = windows.model
        self.backend = backend
        self.per_window, self.per_hop = windows.frames_for(backend)
        self.hop_s = self.per_hop * backend.hop_s
        self.n_classes = len(windows.classes_)
        self._X = np.zeros((0, backend.dimension), dtype=np.float32)
        self._start = np.zeros(0)
        self._end = np.zeros(0)
        self._offset = 0  # stream index of the first frame held
        self._next = 0  # index of the next window to score

    def feed(self, batch: FrameBatch):
        self._X = np.concatenate([self._X, batch.X])
        self._start = np.concatenate([self._start, batch.start_s])
        self._end = np.concatenate([self._end, batch.end_s])
        held_to = self._offset + self._X.shape[0]
        last = (held_to - self.per_window) // self.per_hop  # last window wholly held
        out = self._score(range(self._next, last + 1), held_to)
        drop = min(self._next * self.per_hop - self._offset, self._X.shape[0])
        if drop > 0:
            self._X, self._start, self._end = self._X[drop:], self._start[drop:], self._end[drop:]
            self._offset += drop
        return out

    def finish(self, n_frames_total: int):
        # Windows follow the backend's framing rule on the frame grid: they start every
        # hop and stop after the first that reaches the last frame, which may be short.
        count = n_frames(n_frames_total, window_samples=self.per_window, hop_samples=self.per_hop)
        return self._score(range(self._next, count), n_frames_total)

    def _score(self, indices: range, held_to: int):
        if len(indices) == 0:
            return None
        firsts = np.array(indices) * self.per_hop
        lasts = np.minimum(firsts + self.per_window, held_to) - 1
        firsts, lasts = firsts - self._offset, lasts - self._offset
        if self.per_window == 1:
            X = self._X[firsts]
        else:
            X = np.stack([self.backend.pool(self._X[a : b + 1]) for a, b in zip(firsts, lasts)])
        with _small_batch():
            scores = np.asarray(self.model.predict_proba(X), dtype=np.float32)
        if scores.shape != (X.shape[0], self.n_classes):
            raise EarmarkError(
                f"predict_proba: expected scores of shape ({X.shape[0]}, {self.n_classes}), "
                f"got {scores.shape}"
            )
        self._next = indices[-1] + 1
        return scores, self._start[firsts], self._end[lasts]


def _session(scorer, backend):
    if isinstance(scorer, SlidingWindows):
        return _WindowSession(scorer, backend)
    if hasattr(scorer, "segment_proba"):
        if getattr(scorer, "context_frames", 0):
            return _ContextSession(scorer, backend)
        return _FrameSession(scorer, backend)
    if hasattr(scorer, "predict_proba"):
        return _WindowSession(SlidingWindows(scorer), backend)
    raise ParameterError(
        f"expected a frame scorer (segment_proba) or a clip classifier (predict_proba), "
        f"got {type(scorer).__name__}"
    )


#: How event boundaries are placed: on the frames' edges, where overlapping windows
#: agree, or there and then refined on the level.
BOUNDARIES = ("frames", "windows", "level")


def _prepare(scorer, backend, *, threshold=0.5, median_s=0.0, min_duration_s=0.0,
             merge_gap_s=0.0, cells=None, boundaries="frames"):
    """Check every detection parameter against the scorer and backend, before any audio."""
    session = _session(scorer, backend)
    classes = [str(label) for label in np.asarray(scorer.classes_).tolist()]
    thresholds = resolve_thresholds(threshold, classes)
    median_frames = median_frames_for(median_s, session.hop_s)
    if not (min_duration_s >= 0 and merge_gap_s >= 0):
        raise ParameterError(
            f"expected min_duration_s >= 0 and merge_gap_s >= 0, got {min_duration_s} "
            f"and {merge_gap_s}"
        )
    if cells not in CELL_REDUCTIONS:
        raise ParameterError(f"cells: expected one of {CELL_REDUCTIONS}, got {cells!r}")
    if boundaries not in BOUNDARIES:
        raise ParameterError(f"boundaries: expected one of {BOUNDARIES}, got {boundaries!r}")
    return session, classes, thresholds, median_frames


def level_search_s(scorer, hop_s: float) -> float:
    """How far the level refinement looks for an event's edges: an edge is uncertain by a
    hop, and by the frames a context model reads on each side (its scores rise before
    the sound does)."""
    return (1 + int(getattr(scorer, "context_frames", 0) or 0)) * hop_s


# ------------------------------------------------------------------------ detection
@dataclass
class DetectionResult:
    """Events and score curves of one file.

    Attributes
    ----------
    path : str
    classes : list of str [shape=(n_classes,)]
    scores : np.ndarray [shape=(n_rows, n_classes), dtype=float32]
        Raw scores, one row per frame or window, before the median filter.
    start_s, end_s : np.ndarray [shape=(n_rows,), dtype=float64]
        Span of each row.
    events : list of Event
    duration_s : float
    sample_rate : int
        The file's own rate (a Raven table's band reaches half of it).
    hop_s : float
        Step between rows.
    thresholds : np.ndarray [shape=(n_classes,)]
    median_frames : int
    envelope : tuple of np.ndarray, optional
        ``(start_s, low, high)`` of the waveform (see :class:`Envelope`).
    """

    path: str
    classes: list[str]
    scores: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    events: list[Event]
    duration_s: float
    sample_rate: int
    hop_s: float
    thresholds: np.ndarray
    median_frames: int = 1
    envelope: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def smoothed_scores(self) -> np.ndarray:
        """The scores after the median filter: what the thresholds were applied to."""
        return median_filter_scores(self.scores, self.median_frames)

    def write(self, path, format: str | None = None):
        """Write the events with :func:`~earmark.detection.events.write_events`."""
        return write_events(self.events, path, format, high_freq_hz=self.sample_rate / 2)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (events, not the score curves)."""
        return {
            "path": self.path,
            "duration_s": self.duration_s,
            "classes": self.classes,
            "n_rows": int(self.scores.shape[0]),
            "hop_s": self.hop_s,
            "thresholds": self.thresholds.tolist(),
            "median_frames": self.median_frames,
            "events": [event.to_dict() for event in self.events],
        }


def detect_file(
    scorer,
    backend,
    path,
    *,
    threshold=0.5,
    median_s: float = 0.0,
    min_duration_s: float = 0.0,
    merge_gap_s: float = 0.0,
    cells: str | None = None,
    boundaries: str = "frames",
    on_progress: Callable[[float], None] | None = None,
    envelope_bins: int = 2000,
) -> DetectionResult:
    """Score one file frame by frame (or window by window) and turn the scores into events.

    Parameters
    ----------
    scorer : FrameScorer, SlidingWindows, or a clip classifier
        A bare clip classifier is run as ``SlidingWindows(scorer)`` (one backend frame
        per window).
    backend : Backend
        The backend the scorer was trained on.
    path : str or Path
    threshold : float, sequence or mapping
        See :func:`~earmark.detection.events.resolve_thresholds`.
    median_s : float
        Length of the median filter in seconds (:func:`median_frames_for`).
    min_duration_s, merge_gap_s : float
        See :func:`~earmark.detection.events.frames_to_events`.
    cells : {None, "mean", "min", "max"}
        For windows longer than their hop: score the short cells between window
        edges by reducing the windows over each (:func:`~earmark.detection.events.
        window_cells`) before finding events, so an event is not stretched by a window
        on each side. ``None`` finds runs of whole windows.
    boundaries : {"frames", "windows", "level"}
        ``"frames"`` puts an event over its run of frames; ``"windows"``, for windows
        longer than their hop, where the run's windows agree
        (:func:`~earmark.detection.events.frames_to_events`, ``windows="agree"``);
        ``"level"`` does that and then moves each onset and offset, within one hop (and
        the frames a context model reads on each side), to where the
        recording's level crosses halfway between its background and the event's peak
        (:func:`~earmark.detection.boundaries.refine_boundaries`; a 10 ms level track is
        kept while the audio streams, 4 MB for three hours). ``earmark detect`` uses it.
    on_progress : callable, optional
        Called with the seconds of audio each batch advanced by.
    envelope_bins : int
        Resolution of the waveform envelope kept for the picture.

    Returns
    -------
    DetectionResult

    Raises
    ------
    AudioError
        If the file is bad; the message names it.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> from earmark.backends import get_backend
    >>> class Loudness:  # a frame scorer: "loud" where band energies are high
    ...     classes_ = np.array(["loud"])
    ...     def segment_proba(self, X):
    ...         return (X.mean(axis=1, keepdims=True) > -2).astype(float)
    >>> y = np.zeros(16000 * 4, dtype=np.float32)
    >>> y[16000:24000] = np.sin(np.arange(8000) * 0.3)  # a tone from 1.0 to 1.5 s
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = f"{folder.name}/tone.wav"; sf.write(path, y, 16000)
    >>> result = detect_file(Loudness(), get_backend("placeholder"), path)
    >>> [(e.label, e.onset_s, e.offset_s) for e in result.events]
    [('loud', 1.0, 1.5)]
    >>> folder.cleanup()
    """
    session, classes, thresholds, median_frames = _prepare(
        scorer, backend, threshold=threshold, median_s=median_s,
        min_duration_s=min_duration_s, merge_gap_s=merge_gap_s, cells=cells,
        boundaries=boundaries,
    )
    header = audio.info(path)
    envelope = Envelope(backend.sample_rate, max_bins=envelope_bins)
    blocks = envelope.tap(audio.stream(path, sr=backend.sample_rate))
    level = LevelTrack(backend.sample_rate) if boundaries == "level" else None
    if level is not None:
        blocks = level.tap(blocks)
    stream = FrameStream(backend, blocks, on_progress=on_progress)
    parts = [session.feed(batch) for batch in stream]
    parts.append(session.finish(stream.n_frames))
    parts = [part for part in parts if part is not None]
    scores = np.concatenate([part[0] for part in parts]).astype(np.float32, copy=False)
    start_s = np.concatenate([part[1] for part in parts])
    end_s = np.concatenate([part[2] for part in parts])
    event_rows = (scores, start_s, end_s) if cells is None else window_cells(
        scores, start_s, end_s, reduce=cells)
    events = frames_to_events(
        *event_rows, classes,
        threshold=thresholds, median_frames=median_frames,
        min_duration_s=min_duration_s, merge_gap_s=merge_gap_s, path=path,
        windows="span" if boundaries == "frames" else "agree",
    )
    if level is not None:
        events = refine_boundaries(events, level.result(), bin_s=level.bin_s,
                                   search_s=level_search_s(scorer, session.hop_s))
    return DetectionResult(
        path=str(path),
        classes=classes,
        scores=scores,
        start_s=start_s,
        end_s=end_s,
        events=events,
        duration_s=float(stream.duration_s),
        sample_rate=header.sr,
        hop_s=session.hop_s,
        thresholds=thresholds,
        median_frames=median_frames,
        envelope=envelope.result(),
    )
