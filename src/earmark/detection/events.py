"""From per-frame class scores to timestamped sound events, and event files.

Longer than ~500 lines: the post-processing steps and the four event file formats
share one :class:`Event` type and its exact sample arithmetic; they are read together.

:func:`frames_to_events` turns a score matrix (one row per frame, one column per class)
into events in four steps, per class:

1. threshold: a frame is active when its score is ``>= threshold``;
2. median filter: a running median of ``median_frames`` rows (an odd number) along
   time, the first and last rows repeated past the ends (``mode="nearest"``). For an
   odd window, filtering the scores and then thresholding gives exactly the same
   activity as thresholding and then filtering the 0/1 activity, since a threshold
   keeps the order of values; the filtered scores are what is thresholded here;
3. runs of consecutive active frames become events: the onset is the start of the
   run's first frame and the offset the end of its last, taken from the frame
   timestamps given (exact integer sample arithmetic in :mod:`earmark.embedding`).
   With ``windows="agree"`` and frames that overlap (a window longer than its hop,
   BirdNET's 3 s at 0.5 s), a run says less than its span: every window of a short
   sound's run holds the sound, so the sound lies where they all agree, from the run's
   last window start to its first window end; a run longer than one window (a long
   sound) runs from its first window's centre to its last one's. Taking the whole span instead puts a
   short sound's onset up to a window length early. (The middle of a short sound is
   what a run tells well; its length depends on how much of it a window must hold to
   score high, which the scores do not say.)
   Events of one class that overlap or lie at most ``merge_gap_s`` apart are merged;
4. events shorter than ``min_duration_s`` are dropped.

An event's score is the highest filtered score over its frames, so it is never below
the threshold.

Event files (:func:`write_events`, :func:`read_events`) come in four formats: ``csv``
and ``json`` (every field), ``audacity`` (a label track: ``onset<TAB>offset<TAB>label``
per line, 6 decimals) and ``raven`` (a Raven Pro selection table). Files are written
next to their destination and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "Event",
    "FORMATS",
    "frames_to_events",
    "WINDOW_RULES",
    "window_cells",
    "WINDOW_REDUCTIONS",
    "median_frames_for",
    "resolve_thresholds",
    "write_events",
    "read_events",
    "format_for",
]

#: Event file formats, with the file suffix each is inferred from (``.txt`` reads as
#: ``audacity``; a Raven table must be asked for by name).
FORMATS = ("csv", "json", "audacity", "raven")
_SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".txt": "audacity"}
_CSV_COLUMNS = ("path", "label", "onset_s", "offset_s", "score")
RAVEN_COLUMNS = (
    "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
    "Low Freq (Hz)", "High Freq (Hz)", "Annotation", "Score",
)
#: Slack when comparing times computed from integers: far below one sample at 1 MHz.
_TIME_TOLERANCE_S = 1e-9
#: How :func:`window_cells` reduces the windows over a cell.
WINDOW_REDUCTIONS = ("mean", "min", "max")


@dataclass(frozen=True)
class Event:
    """One detected (or annotated) sound event.

    Attributes
    ----------
    path : str or None
        The audio file it was found in.
    label : str
    onset_s, offset_s : float
        Start and end, in seconds from the start of the file.
    score : float or None
        Highest filtered score over the event's frames (None when read from a format
        that does not keep scores, such as an Audacity label track).
    """

    path: str | None
    label: str
    onset_s: float
    offset_s: float
    score: float | None = None

    @property
    def duration_s(self) -> float:
        return self.offset_s - self.onset_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------- events
def resolve_thresholds(threshold, classes: Sequence) -> np.ndarray:
    """One threshold per class.

    Parameters
    ----------
    threshold : float, sequence of float [shape=(n_classes,)], or mapping
        A mapping gives thresholds by label (matched as text); classes it does not
        name get the value under the key ``"*"``, or 0.5.
    classes : sequence [shape=(n_classes,)]

    Returns
    -------
    thresholds : np.ndarray [shape=(n_classes,), dtype=float64]

    Examples
    --------
    >>> resolve_thresholds({"dog": 0.8, "*": 0.3}, ["cat", "dog"]).tolist()
    [0.3, 0.8]
    """
    names = [str(label) for label in classes]
    if isinstance(threshold, Mapping):
        given = {str(key): value for key, value in threshold.items()}
        unknown = sorted(set(given) - set(names) - {"*"})
        if unknown:
            raise ParameterError(
                f"thresholds given for unknown classes {unknown}; the classes are {names}"
            )
        default = given.pop("*", 0.5)
        values = np.array([given.get(name, default) for name in names], dtype=np.float64)
    else:
        try:
            values = np.asarray(threshold, dtype=np.float64)
        except (TypeError, ValueError):
            values = np.zeros(0)
        if values.shape not in ((), (len(names),)):
            raise ParameterError(
                f"expected one threshold or {len(names)} (one per class), got {threshold!r}"
            )
        values = np.broadcast_to(values, (len(names),)).copy()
    if not np.isfinite(values).all():
        raise ParameterError(f"thresholds must be finite numbers, got {values.tolist()}")
    return values


def median_frames_for(median_s: float, hop_s: float) -> int:
    """Length of a median filter of ``median_s`` seconds over rows ``hop_s`` apart.

    Rounded to the nearest whole number of rows, then up to an odd number (a median
    over an even number of rows has no middle); 0 seconds gives 1 row (no filter).

    Examples
    --------
    >>> median_frames_for(2.0, 0.5), median_frames_for(0.0, 0.5)
    (5, 1)
    """
    if not (median_s >= 0 and math.isfinite(median_s)):
        raise ParameterError(f"expected median_s >= 0, got {median_s}")
    if not hop_s > 0:
        raise ParameterError(f"expected hop_s > 0, got {hop_s}")
    rows = max(1, int(round(median_s / hop_s)))
    return rows if rows % 2 else rows + 1


#: Where a run of overlapping frames puts its event (:func:`frames_to_events`).
WINDOW_RULES = ("span", "agree")


def frames_to_events(
    scores,
    start_s,
    end_s,
    classes: Sequence,
    *,
    threshold=0.5,
    median_frames: int = 1,
    min_duration_s: float = 0.0,
    merge_gap_s: float = 0.0,
    path=None,
    windows: str = "span",
) -> list[Event]:
    """Events from per-frame class scores (see the module docstring for the rules).

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames, n_classes)]
        Frame scores, rows in time order.
    start_s, end_s : np.ndarray [shape=(n_frames,)]
        Each frame's span in seconds.
    classes : sequence [shape=(n_classes,)]
        Label of each column.
    threshold : float, sequence or mapping
        See :func:`resolve_thresholds`; a frame is active when its filtered score is
        ``>= threshold``.
    median_frames : int
        Odd length of the running median, in frames; 1 leaves the scores as they are.
    min_duration_s : float
        Events shorter than this (after merging) are dropped.
    merge_gap_s : float
        Events of one class at most this far apart are merged into one.
    path : str or Path, optional
        Recorded in every event.
    windows : {"span", "agree"}
        Where a run of overlapping frames puts its event: over the frames' whole span,
        or where they agree (step 3 above; the same as ``"span"`` for frames that do
        not overlap).

    Returns
    -------
    events : list of Event
        Sorted by onset, then by class order.

    Examples
    --------
    >>> scores = np.array([[0.1], [0.9], [0.8], [0.2], [0.7]])
    >>> start = np.arange(5) * 0.5
    >>> events = frames_to_events(scores, start, start + 0.5, ["bird"])
    >>> [(e.onset_s, e.offset_s, e.score) for e in events]
    [(0.5, 1.5, 0.9), (2.0, 2.5, 0.7)]
    >>> [e.onset_s for e in frames_to_events(scores, start, start + 0.5, ["bird"],
    ...                                      median_frames=3)]
    [0.5]

    Three 3 s windows at a 0.5 s hop hold a sound: it lies where all three agree.

    >>> start = np.arange(8) * 0.5
    >>> held = np.array([[0.1], [0.1], [0.9], [0.9], [0.9], [0.1], [0.1], [0.1]])
    >>> [(e.onset_s, e.offset_s) for e in frames_to_events(held, start, start + 3.0, ["bird"])]
    [(1.0, 5.0)]
    >>> [(e.onset_s, e.offset_s) for e in frames_to_events(held, start, start + 3.0, ["bird"],
    ...                                                    windows="agree")]
    [(2.0, 4.0)]
    """
    scores = np.asarray(scores, dtype=np.float64)
    start_s = np.asarray(start_s, dtype=np.float64)
    end_s = np.asarray(end_s, dtype=np.float64)
    classes = list(classes)
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise ParameterError(
            f"expected scores of shape (n_frames, {len(classes)}), got {scores.shape}"
        )
    if start_s.shape != (scores.shape[0],) or end_s.shape != (scores.shape[0],):
        raise ParameterError(
            f"expected start_s and end_s of shape ({scores.shape[0]},), got "
            f"{start_s.shape} and {end_s.shape}"
        )
    if not np.isfinite(scores).all():
        raise ParameterError("scores hold NaN or infinite values")
    if median_frames < 1 or median_frames % 2 == 0:
        raise ParameterError(f"expected an odd median_frames >= 1, got {median_frames}")
    if min_duration_s < 0 or merge_gap_s < 0:
        raise ParameterError(
            f"expected min_duration_s >= 0 and merge_gap_s >= 0, got {min_duration_s} "
            f"and {merge_gap_s}"
        )
    if windows not in WINDOW_RULES:
        raise ParameterError(f"windows: expected one of {WINDOW_RULES}, got {windows!r}")
    thresholds = resolve_thresholds(threshold, classes)
    smoothed = median_filter_scores(scores, median_frames)
    active = smoothed >= thresholds
    path = None if path is None else str(path)
    agree = windows == "agree" and _overlapping(start_s, end_s)
    found: list[tuple[float, int, Event]] = []
    for column, label in enumerate(classes):
        runs = _runs(active[:, column])
        spans = [
            [*(_agreed(start_s, end_s, first, last) if agree else (start_s[first], end_s[last])),
             smoothed[first : last + 1, column].max()]
            for first, last in runs
        ]
        merged: list[list[float]] = []
        for onset, offset, score in spans:
            if merged and onset - merged[-1][1] <= merge_gap_s + _TIME_TOLERANCE_S:
                merged[-1][1] = max(merged[-1][1], offset)
                merged[-1][2] = max(merged[-1][2], score)
            else:
                merged.append([onset, offset, score])
        for onset, offset, score in merged:
            if offset - onset + _TIME_TOLERANCE_S >= min_duration_s:
                event = Event(path, str(_plain(label)), float(onset), float(offset), float(score))
                found.append((event.onset_s, column, event))
    found.sort(key=lambda item: item[:2])
    return [event for _, _, event in found]


def window_cells(scores, start_s, end_s, *, reduce: str = "mean"):
    """Turn overlapping window scores into scores of the short cells between them.

    A backend whose window is longer than its hop (BirdNET: 3 s windows, hop 0.5 s)
    gives every instant several scores, one per window covering it. Taking runs of
    active *windows* as events stretches each event by up to a window on both sides
    (a 0.5 s word makes six 3 s windows active: a 5.5 s event starting 2.5 s early).
    Here the timeline is cut at every window start and end, and each cell gets a
    reduction of the scores of the windows that cover it: ``"min"`` (a cell is
    active only if *every* window over it is, which recovers an event's true span
    when windows score high exactly when they overlap it) or ``"mean"`` (softer, for
    windows whose score grows with how much of the event they hold). Cells no window
    covers are dropped. Windows that do not overlap come back unchanged.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_windows, n_classes)]
    start_s, end_s : np.ndarray [shape=(n_windows,)]
        Window spans, in time order (starts and ends both non-decreasing).
    reduce : {"mean", "min", "max"}

    Returns
    -------
    cell_scores : np.ndarray [shape=(n_cells, n_classes)]
    cell_start_s, cell_end_s : np.ndarray [shape=(n_cells,)]

    Examples
    --------
    >>> start = np.arange(4) * 1.0          # 2 s windows, hop 1 s
    >>> scores = np.array([[0.0], [1.0], [1.0], [0.0]])
    >>> cells, a, b = window_cells(scores, start, start + 2.0, reduce="min")
    >>> a.tolist(), cells[:, 0].tolist()
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 0.0, 0.0])
    """
    if reduce not in WINDOW_REDUCTIONS:
        raise ParameterError(f"reduce: expected 'mean', 'min' or 'max', got {reduce!r}")
    scores = np.asarray(scores, dtype=np.float64)
    start_s = np.asarray(start_s, dtype=np.float64)
    end_s = np.asarray(end_s, dtype=np.float64)
    if scores.ndim != 2 or start_s.shape != (scores.shape[0],) or end_s.shape != start_s.shape:
        raise ParameterError(
            f"expected scores (n, n_classes) and spans (n,), got {scores.shape}, "
            f"{start_s.shape} and {end_s.shape}"
        )
    if len(start_s) == 0:
        return scores, start_s, end_s
    if np.any(np.diff(start_s) < 0) or np.any(np.diff(end_s) < 0):
        raise ParameterError("window starts and ends must be in time order")
    edges = np.unique(np.concatenate([start_s, end_s]))
    left, right = edges[:-1], edges[1:]
    # Windows covering [left, right): those starting at or before `left` whose end is
    # at or after `right`; with ordered starts and ends that is one index range.
    first = np.searchsorted(end_s, right - _TIME_TOLERANCE_S, side="left")
    last = np.searchsorted(start_s, left + _TIME_TOLERANCE_S, side="right") - 1
    covered = first <= last
    left, right, first, last = left[covered], right[covered], first[covered], last[covered]
    if reduce == "mean":
        # Prefix sums give every range's mean in one step.
        prefix = np.vstack([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0)])
        cells = (prefix[last + 1] - prefix[first]) / (last - first + 1)[:, None]
    else:
        # The ranges are short (window / hop rows at most): reduce them offset by offset.
        combine = np.minimum if reduce == "min" else np.maximum
        cells = scores[first].copy()
        for offset in range(1, int((last - first).max(initial=0)) + 1):
            inside = first + offset <= last
            cells[inside] = combine(cells[inside], scores[(first + offset)[inside]])
    return cells, left, right


def median_filter_scores(scores: np.ndarray, median_frames: int) -> np.ndarray:
    """Running median of ``median_frames`` rows along time, per class column.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames, n_classes)]
    median_frames : int
        Odd; the first and last rows are repeated past the ends.

    Returns
    -------
    smoothed : np.ndarray [shape=(n_frames, n_classes)]
    """
    if median_frames <= 1 or scores.shape[0] == 0:
        return scores
    from scipy.ndimage import median_filter

    return median_filter(scores, size=(median_frames, 1), mode="nearest")


def _overlapping(start_s: np.ndarray, end_s: np.ndarray) -> bool:
    """Whether consecutive frames overlap (a window longer than its hop)."""
    return len(start_s) > 1 and bool(np.median(end_s[:-1] - start_s[1:]) > _TIME_TOLERANCE_S)


def _agreed(start_s, end_s, first: int, last: int) -> tuple[float, float]:
    """Where a run of overlapping windows places its sound (module docstring, step 3):
    the windows' intersection when it is not empty, else from the first window's centre
    to the last one's. Never outside the run's span."""
    if start_s[last] < end_s[first]:
        return float(start_s[last]), float(end_s[first])
    # A long sound: from the first window's centre to the last one's, right where a
    # window scores high once the sound fills half of it. (Trimming a quarter window,
    # which hedges towards windows that must be full, lost onset F on the development
    # soundscapes: BirdNET, weak labels, 0.217 -> 0.168.)
    half = (end_s[first] - start_s[first]) / 2
    return float(start_s[first] + half), float(end_s[last] - half)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    if not active.any():
        return []
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    firsts = np.flatnonzero(edges == 1)
    lasts = np.flatnonzero(edges == -1) - 1
    return list(zip(firsts.tolist(), lasts.tolist()))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


# -------------------------------------------------------------------------- files
def format_for(path, format: str | None = None) -> str:
    """The event file format of ``path``: ``format`` if given, else from the suffix."""
    if format is not None:
        if format not in FORMATS:
            raise ParameterError(f"expected a format in {FORMATS}, got {format!r}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ParameterError(
            f"{path}: cannot tell the event format from the suffix {suffix!r}; use "
            f".csv, .json or .txt (Audacity labels), or name a format from {FORMATS}"
        )
    return _SUFFIX_FORMATS[suffix]


def write_events(
    events: Iterable[Event],
    path,
    format: str | None = None,
    *,
    high_freq_hz: float | None = None,
    low_freq_hz: float = 0.0,
) -> Path:
    """Write events to one file, atomically.

    Parameters
    ----------
    events : iterable of Event
    path : str or Path
    format : {"csv", "json", "audacity", "raven"}, optional
        Inferred from the suffix when omitted (``.csv``, ``.json``, ``.txt`` for an
        Audacity label track).
    high_freq_hz, low_freq_hz : float
        Frequency band of every selection in a Raven table; ``high_freq_hz`` is needed
        for ``raven`` (usually the file's Nyquist frequency, half its sample rate).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.TemporaryDirectory()
    >>> event = Event("a.wav", "dog", 1.5, 2.25, 0.9)
    >>> written = write_events([event], pathlib.Path(folder.name) / "a.txt")
    >>> written.read_text().split("\\t")
    ['1.500000', '2.250000', 'dog\\n']
    >>> folder.cleanup()
    """
    events = list(events)
    format = format_for(path, format)
    if format == "csv":
        text = _csv_text(events)
    elif format == "json":
        text = json.dumps([event.to_dict() for event in events], indent=2) + "\n"
    elif format == "audacity":
        text = "".join(
            f"{e.onset_s:.6f}\t{e.offset_s:.6f}\t{_one_line(e.label)}\n" for e in events
        )
    else:
        if high_freq_hz is None:
            raise ParameterError(
                "a Raven selection table needs high_freq_hz (e.g. half the file's sample rate)"
            )
        rows = ["\t".join(RAVEN_COLUMNS)]
        for number, e in enumerate(events, start=1):
            score = "" if e.score is None else f"{e.score:.6f}"
            rows.append(
                f"{number}\tSpectrogram 1\t1\t{e.onset_s:.6f}\t{e.offset_s:.6f}\t"
                f"{low_freq_hz:.1f}\t{high_freq_hz:.1f}\t{_one_line(e.label)}\t{score}"
            )
        text = "\n".join(rows) + "\n"
    return _write_atomically(Path(path), text)


def read_events(path, format: str | None = None, *, audio_path=None) -> list[Event]:
    """Read an event file written by :func:`write_events` (or by Audacity or Raven).

    Parameters
    ----------
    path : str or Path
    format : str, optional
        As for :func:`write_events`; a ``.txt`` file whose first line is a Raven header
        is read as ``raven``.
    audio_path : str or Path, optional
        The audio file the events belong to, for formats that do not name it
        (Audacity, Raven). A Raven table over many files (``Begin Path``,
        ``File Offset (s)``; see :mod:`~earmark.detection.combined`) names each
        selection's file, and its times are read as times within that file.

    Returns
    -------
    events : list of Event
        In file order.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if format is None and path.suffix.lower() == ".txt" and text.startswith("Selection\t"):
        format = "raven"
    format = format_for(path, format)
    audio_path = None if audio_path is None else str(audio_path)
    try:
        if format == "csv":
            return [
                Event(row["path"] or audio_path, row["label"], float(row["onset_s"]),
                      float(row["offset_s"]), _score(row["score"]))
                for row in csv.DictReader(io.StringIO(text))
            ]
        if format == "json":
            return [Event(**item) for item in json.loads(text)]
        if format == "audacity":
            events = []
            for line in text.splitlines():
                # Audacity adds "\t<low>\t<high>" lines under a label for spectral selections.
                if not line.strip() or line.startswith("\\"):
                    continue
                onset, offset, label = line.split("\t", 2)
                events.append(Event(audio_path, label, float(onset), float(offset)))
            return events
        lines = text.splitlines()
        header = lines[0].split("\t")
        rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
        events = []
        for row in rows:
            onset, offset = float(row["Begin Time (s)"]), float(row["End Time (s)"])
            if row.get("File Offset (s)"):
                # A table over many files: times run on across them; the offset and the
                # path place the selection in its own file.
                start = float(row["File Offset (s)"])
                onset, offset = start, start + offset - onset
            events.append(Event(row.get("Begin Path") or audio_path, row.get("Annotation", ""),
                                onset, offset, _score(row.get("Score", ""))))
        return events
    except (KeyError, ValueError, TypeError) as error:
        raise ParameterError(f"{path}: not a {format} event file ({error})") from None


def _score(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def _one_line(label) -> str:
    # A tab or newline in a label would break the line-based formats.
    return " ".join(str(label).split())


def _csv_text(events: list[Event]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for e in events:
        score = "" if e.score is None else f"{e.score:.6f}"
        writer.writerow([e.path or "", e.label, f"{e.onset_s:.6f}", f"{e.offset_s:.6f}", score])
    return buffer.getvalue()


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        # mkstemp makes the file private (0600); an event file is an ordinary document.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
