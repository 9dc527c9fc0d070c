"""Post-processing learned, not guessed: how a detector's frame scores become events.

A frame model gives every frame a score per class; events come from those scores
through a threshold, a median filter, a minimum duration and a merge gap
(:func:`~earmark.detection.events.frames_to_events`), and, for a backend whose window is
longer than its hop, a choice of scoring whole windows or the cells between their edges
(:func:`~earmark.detection.events.window_cells`). :func:`tune_postprocessing` chooses
all of them on validation recordings that carry **weak labels only** (which classes
sound in each, never when), so that it needs nothing a user of weak labels does not
have:

- for each class and recording, the class is *found* when at least one event of it is
  left after post-processing;
- the score of a setting for one class is an F-measure over recordings in which every
  event beyond the first in a recording counts as one more false positive:
  ``2 TP / (2 TP + FP + FN + extra)``. It rewards finding each labelled class once and
  nothing in recordings without it, and penalises breaking one sound into pieces, which
  is what a weakly labelled recording of a few seconds usually holds (one event per
  class); it is a prior, said here, not a fact the labels give;
- median filter, minimum duration, merge gap and cells are shared by all classes (chosen
  by the sum over classes of each class's best score); the threshold is chosen per class.

The result is a plain mapping (stored in the model file's ``model.json`` under
``postprocessing``, checked by :func:`check_postprocessing` when read back).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from ..exceptions import ParameterError
from .events import _TIME_TOLERANCE_S, median_filter_scores, median_frames_for, window_cells

__all__ = ["POSTPROCESSING_KEYS", "check_postprocessing", "resolve_postprocessing",
           "tune_postprocessing"]

#: Keys of a post-processing mapping.
POSTPROCESSING_KEYS = ("thresholds", "median_s", "min_duration_s", "merge_gap_s", "cells")

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
MEDIANS_S = (0.0, 1.0, 2.0)
MIN_DURATIONS_S = (0.0, 0.5, 1.0)
MERGE_GAPS_S = (0.0, 0.5, 1.0, 2.0)
_LONGEST_S = 3600.0


def check_postprocessing(value, classes: Sequence[str]) -> dict[str, Any]:
    """A post-processing mapping checked for ``classes``; ParameterError if it is wrong.

    Parameters
    ----------
    value : dict
        Keys :data:`POSTPROCESSING_KEYS`; ``thresholds`` maps every class to a number
        in ``[0, 1]``; the three durations are seconds in ``[0, 3600]``; ``cells`` is
        ``None``, ``"mean"``, ``"min"`` or ``"max"``. ``calibration``, where present, is a
        frame calibration (:func:`~earmark.detection.frame_calibration.check_frame_calibration`).
        Other keys (``validation``) are kept as they are.
    classes : sequence of str

    Returns
    -------
    dict

    Examples
    --------
    >>> check_postprocessing({"thresholds": {"a": 0.4}, "median_s": 1.0,
    ...                       "min_duration_s": 0.0, "merge_gap_s": 0.5, "cells": None},
    ...                      ["a"])["thresholds"]
    {'a': 0.4}
    """
    if not isinstance(value, dict):
        raise ParameterError(f"expected post-processing as a mapping, got {type(value).__name__}")
    missing = [key for key in POSTPROCESSING_KEYS if key not in value]
    if missing:
        raise ParameterError(f"post-processing lacks {missing}")
    thresholds = value["thresholds"]
    if not isinstance(thresholds, dict) or sorted(thresholds) != sorted(classes):
        raise ParameterError(
            f"expected post-processing thresholds for classes {list(classes)}, got "
            f"{list(thresholds) if isinstance(thresholds, dict) else thresholds!r}"
        )
    for label, number in thresholds.items():
        if not _number(number) or not 0 <= number <= 1:
            raise ParameterError(f"expected threshold of {label!r} in [0, 1], got {number!r}")
    for key in ("median_s", "min_duration_s", "merge_gap_s"):
        if not _number(value[key]) or not 0 <= value[key] <= _LONGEST_S:
            raise ParameterError(f"expected post-processing {key} in [0, {_LONGEST_S:g}] s, "
                                 f"got {value[key]!r}")
    if value["cells"] not in (None, "mean", "min", "max"):
        raise ParameterError(f"expected post-processing cells None, mean, min or max, "
                             f"got {value['cells']!r}")
    value = dict(value)
    if value.get("calibration") is not None:
        from .frame_calibration import check_frame_calibration

        value["calibration"] = check_frame_calibration(value["calibration"], classes)
    return value


def resolve_postprocessing(learned, *, threshold=None, median_s=None, min_duration_s=None,
                           merge_gap_s=None, cells=None, boundaries=None) -> dict[str, Any]:
    """Detection settings: what the user gave, else what the model learned, else defaults.

    Parameters
    ----------
    learned : dict or None
        A model's ``postprocessing`` (:func:`check_postprocessing`), or None.
    threshold, median_s, min_duration_s, merge_gap_s, cells, boundaries
        The user's values; ``None`` for "not given" (``boundaries`` then ``"level"``:
        onsets and offsets refined on the recording's level,
        :mod:`earmark.detection.boundaries`). ``cells="none"`` asks for whole
        windows even where the model learned cells. A threshold mapping with ``"*"``
        replaces the learned thresholds; one that names classes only overrides those.

    Returns
    -------
    dict
        Keyword arguments of :func:`~earmark.detection.batch.detect_files`.

    Examples
    --------
    >>> resolve_postprocessing(None)
    {'threshold': 0.5, 'median_s': 0.0, 'min_duration_s': 0.0, 'merge_gap_s': 0.0, 'cells': None, 'boundaries': 'level'}
    >>> learned = {"thresholds": {"a": 0.3, "b": 0.7}, "median_s": 1.0,
    ...            "min_duration_s": 0.5, "merge_gap_s": 0.0, "cells": "min"}
    >>> resolve_postprocessing(learned, threshold={"b": 0.9}, cells="none")["threshold"]
    {'a': 0.3, 'b': 0.9}
    """
    learned = learned or {}
    if threshold is None:
        threshold = dict(learned["thresholds"]) if learned else 0.5
    elif isinstance(threshold, dict) and learned and "*" not in threshold:
        threshold = {**learned["thresholds"], **threshold}

    def pick(given, key):
        return float(given) if given is not None else float(learned.get(key, 0.0))

    if cells is None:
        cells = learned.get("cells")
    elif cells == "none":
        cells = None
    return {"threshold": threshold, "median_s": pick(median_s, "median_s"),
            "min_duration_s": pick(min_duration_s, "min_duration_s"),
            "merge_gap_s": pick(merge_gap_s, "merge_gap_s"), "cells": cells,
            "boundaries": boundaries or learned.get("boundaries", "level")}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tune_postprocessing(rows, label_sets, classes, *, hop_s: float, overlapping: bool,
                        event_counts=None, cells_options=None):
    """Choose post-processing on weakly labelled validation recordings.

    Parameters
    ----------
    rows : sequence of (scores, start_s, end_s)
        Frame scores ``[shape=(n_frames, n_classes)]`` of each validation recording and
        the frames' spans in seconds.
    label_sets : sequence of sets
        Classes sounding in each recording (empty for a negative).
    classes : sequence of str
    hop_s : float
        Frame hop, for the median filter's length in frames.
    overlapping : bool
        Whether frames overlap (window longer than hop): cells are then tried too.
    cells_options : sequence, optional
        The cells settings to try where frames overlap (default: None, "mean", "min").
    event_counts : sequence of (dict or None), optional
        Per recording, how many events of each class it holds, where strong labels say
        so; None where only its label set is known (then one event per labelled class
        is expected). Each setting is scored by an F over event counts: detections up to
        the true count are hits, beyond it false alarms, missing ones misses.

    Returns
    -------
    dict
        A post-processing mapping (:func:`check_postprocessing`) with ``validation``:
        per-class and overall figures at the chosen setting (recording-level
        precision, recall and F, events found per labelled recording).
    """
    classes = [str(c) for c in classes]
    truth = np.array([[c in set(map(str, labels)) for c in classes] for labels in label_sets],
                     dtype=bool)
    expected = truth.astype(np.int64)  # [recording, class]: events to find
    for index, known in enumerate(event_counts or []):
        if known is not None:
            expected[index] = [int(known.get(c, 0)) for c in classes]
    if cells_options is None:
        cells_options = (None, "mean", "min") if overlapping else (None,)
    elif not overlapping:
        cells_options = (None,)
    best: tuple | None = None
    for cells, median_s in itertools.product(cells_options, MEDIANS_S):
        median_frames = median_frames_for(median_s, hop_s)
        joined = _join(rows, cells, median_frames)
        # counts[setting][threshold, recording, class]: events left after post-processing
        counts = {setting: np.zeros((len(THRESHOLDS), len(rows), len(classes)), dtype=np.int64)
                  for setting in itertools.product(MIN_DURATIONS_S, MERGE_GAPS_S)}
        for t, threshold in enumerate(THRESHOLDS):
            for column in range(len(classes)):
                onset, offset, recording = _spans(joined, column, threshold)
                for (min_duration_s, merge_gap_s), count in counts.items():
                    kept = _merge_and_drop(onset, offset, recording, min_duration_s, merge_gap_s)
                    count[t, :, column] = np.bincount(kept, minlength=len(rows))
        for (min_duration_s, merge_gap_s), count in counts.items():
            f = _count_f(count, expected)  # [threshold, class]
            chosen = np.argmax(f, axis=0)
            total = float(f[chosen, np.arange(len(classes))].sum())
            # Ties go to the setting tried first (no cells, shorter filter, no rules).
            if best is None or total > best[0] + 1e-9:
                best = (total, cells, median_s, min_duration_s, merge_gap_s, chosen, count)
    _, cells, median_s, min_duration_s, merge_gap_s, chosen, counts = best
    thresholds = {label: float(THRESHOLDS[t]) for label, t in zip(classes, chosen)}
    picked = counts[chosen, :, np.arange(len(classes))].T  # [recording, class]
    return {
        "thresholds": thresholds,
        "median_s": float(median_s),
        "min_duration_s": float(min_duration_s),
        "merge_gap_s": float(merge_gap_s),
        "cells": cells,
        "validation": _summary(picked, truth, classes),
    }


def _join(rows, cells, median_frames):
    """All recordings' filtered scores end to end, each followed by a row below every
    threshold, so that no run crosses from one recording into the next."""
    scores, starts, ends, recording = [], [], [], []
    for index, (score, start_s, end_s) in enumerate(rows):
        if cells is not None:
            score, start_s, end_s = window_cells(score, start_s, end_s, reduce=cells)
        score = median_filter_scores(np.asarray(score, dtype=np.float64), median_frames)
        scores += [score, np.full((1, score.shape[1]), -np.inf)]
        starts += [np.asarray(start_s, dtype=np.float64), [np.inf]]
        ends += [np.asarray(end_s, dtype=np.float64), [np.inf]]
        recording += [np.full(len(score) + 1, index)]
    return (np.concatenate(scores), np.concatenate(starts), np.concatenate(ends),
            np.concatenate(recording))


def _spans(joined, column: int, threshold: float):
    """Onsets, offsets and recordings of the runs of frames at or above ``threshold``."""
    scores, start_s, end_s, recording = joined
    active = np.concatenate([[False], scores[:, column] >= threshold, [False]])
    edges = np.diff(active.astype(np.int8))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1) - 1
    return start_s[first], end_s[last], recording[first]


def _merge_and_drop(onset, offset, recording, min_duration_s: float, merge_gap_s: float):
    """Recording of each event left after merging and the minimum duration, as in
    :func:`~earmark.detection.events.frames_to_events`."""
    if len(onset) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(len(onset), dtype=bool)
    new[1:] = ((onset[1:] - offset[:-1] > merge_gap_s + _TIME_TOLERANCE_S)
               | (recording[1:] != recording[:-1]))
    heads = np.flatnonzero(new)
    merged_offset = np.maximum.reduceat(offset, heads)
    keep = merged_offset - onset[heads] + _TIME_TOLERANCE_S >= min_duration_s
    return recording[heads][keep]


def _count_f(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """F over event counts, ``[threshold, class]``: per recording, detections up to the
    expected count are hits, the rest false alarms, and missing ones misses.

    With weak labels only (one event expected per labelled class, none otherwise) this
    is the recording-level F with every extra event a false positive."""
    tp = np.minimum(counts, expected).sum(axis=1)
    fp = np.maximum(counts - expected, 0).sum(axis=1)
    fn = np.maximum(expected - counts, 0).sum(axis=1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _summary(counts: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Recording-level figures at the chosen setting, per class and overall."""
    def figures(c, t):
        found = c > 0
        tp, fp, fn = int((found & t).sum()), int((found & ~t).sum()), int((~found & t).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f": round(f, 4),
                "events": int(c.sum()), "labelled": int(t.sum())}

    return {
        "n_recordings": int(truth.shape[0]),
        "overall": figures(counts, truth),
        "per_class": {label: figures(counts[:, i], truth[:, i]) for i, label in enumerate(classes)},
    }
