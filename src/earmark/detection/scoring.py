"""Detections against a reference, all the figures at once: what ``earmark
evaluate-events`` reports.

:func:`evaluate_events` gives, overall (micro) and per class: event-based F and error
rate with the DCASE collars (200 ms onset, offset within 20 % of the event's length),
onset-only F with a 1 s collar, segment-based F over 1 s, the numbers of detected and
true events, and PSDS (scenario 1) when file durations are known and the detections carry
scores. :func:`threshold_curves` gives each class's precision and recall (onset-only,
1 s) as the event-score threshold rises, and :func:`plot_threshold_curves` draws them,
one panel per class, so a user can pick an operating point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .metrics import event_based_scores, segment_based_scores

__all__ = ["align_paths", "evaluate_events", "threshold_curves", "plot_threshold_curves",
           "events_frame"]

_COLUMNS = ["path", "label", "onset_s", "offset_s", "score"]


def events_frame(events) -> pd.DataFrame:
    """Events (Event objects, dicts or a DataFrame) as one DataFrame with :data:`_COLUMNS`."""
    if isinstance(events, pd.DataFrame):
        frame = events.copy()
    else:
        frame = pd.DataFrame([e.to_dict() if hasattr(e, "to_dict") else dict(e) for e in events])
    for column in _COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan if column == "score" else None
    return frame[_COLUMNS].reset_index(drop=True)


def align_paths(reference, estimated, *, base=None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Make the recordings of a reference table and of detections comparable.

    A truth table usually names its recordings relative to its own folder (``earmark
    soundscapes`` writes ``test_000.wav``) while ``earmark detect`` writes the paths it
    was given; compared as strings, not one event would match and every figure would
    read 0 without saying why. Relative reference paths are read against ``base`` (the
    truth file's folder), both sides are resolved, and where they still share no
    recording, recordings are matched by file name when every name is unique on both
    sides.

    Parameters
    ----------
    reference, estimated : DataFrame or sequence of events
        As :func:`events_frame` takes them.
    base : path, optional
        Folder that relative reference paths are relative to.

    Returns
    -------
    reference, estimated : pd.DataFrame
        With comparable ``path`` values.
    how : str
        ``"paths"`` or ``"file names"``.

    Raises
    ------
    ParameterError
        When no detected recording is one of the reference's, naming an example of each.

    Examples
    --------
    >>> ref = [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0}]
    >>> est = [{"path": "/data/scapes/a.wav", "label": "dog", "onset_s": 1.1, "offset_s": 2.0}]
    >>> r, e, how = align_paths(ref, est, base="/elsewhere")
    >>> how, r["path"].tolist() == e["path"].tolist()
    ('file names', True)
    """
    from pathlib import Path

    from ..exceptions import ParameterError

    reference, estimated = events_frame(reference), events_frame(estimated)
    if estimated.empty or reference.empty:
        return reference, estimated, "paths"

    def resolved(path, folder=None) -> str:
        path = Path(str(path)).expanduser()
        if not path.is_absolute() and folder is not None:
            path = Path(folder) / path
        return str(path.resolve()) if path.is_absolute() else str(path)

    reference["path"] = [resolved(p, base) for p in reference["path"]]
    estimated["path"] = [resolved(p) for p in estimated["path"]]
    truth_paths, found_paths = set(reference["path"]), set(estimated["path"])
    if truth_paths & found_paths:
        return reference, estimated, "paths"
    names = {}
    for path in truth_paths:
        names.setdefault(Path(path).name, []).append(path)
    found_names = [Path(p).name for p in found_paths]
    unique = all(len(v) == 1 for v in names.values()) and len(set(found_names)) == len(found_names)
    if unique and set(found_names) & set(names):
        estimated["path"] = [names.get(Path(p).name, [p])[0] for p in estimated["path"]]
        return reference, estimated, "file names"
    raise ParameterError(
        "no detected recording is in the reference table: it names e.g. "
        f"{sorted(truth_paths)[0]!r}, the detections e.g. {sorted(found_paths)[0]!r}; "
        "give the truth table's paths relative to its folder or as the paths detect was given"
    )


def evaluate_events(reference, estimated, *, durations: Mapping[str, float] | None = None,
                    labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Every detection figure of ``estimated`` against ``reference``.

    Parameters
    ----------
    reference, estimated : iterable of events, or pandas.DataFrame
        Columns (or attributes) ``path``, ``label``, ``onset_s``, ``offset_s``;
        ``score`` optional on the estimate (needed for PSDS).
    durations : mapping of path to seconds, optional
        Every evaluated file's length, for PSDS.
    labels : sequence of str, optional
        Classes; default those of the reference.

    Returns
    -------
    dict
        ``overall`` and ``per_class`` rows (``event_f``, ``event_error_rate``,
        ``onset_f``, ``onset_precision``, ``onset_recall``, ``segment_f``,
        ``segment_error_rate``, ``detected``, ``true``), and ``psds`` (or None).

    Examples
    --------
    >>> truth = [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0}]
    >>> found = [{"path": "a.wav", "label": "dog", "onset_s": 1.1, "offset_s": 2.1, "score": .9}]
    >>> evaluate_events(truth, found)["overall"]["event_f"]
    1.0
    """
    reference, estimated = events_frame(reference), events_frame(estimated)
    labels = list(labels) if labels is not None else sorted(set(reference["label"].astype(str)))
    event = event_based_scores(reference, estimated, t_collar=0.2, percentage_of_length=0.2,
                               labels=labels)
    onset = event_based_scores(reference, estimated, t_collar=1.0, evaluate_offset=False,
                               labels=labels)
    segment = segment_based_scores(reference, estimated, segment_s=1.0, labels=labels)

    def row(e, o, s, detected, true):
        return {"event_f": e.f_measure, "event_error_rate": e.error_rate, "onset_f": o.f_measure,
                "onset_precision": o.precision, "onset_recall": o.recall,
                "segment_f": s.f_measure, "segment_error_rate": s.error_rate,
                "detected": int(detected), "true": int(true)}

    overall = row(event, onset, segment, (estimated["label"].astype(str).isin(labels)).sum(),
                  len(reference))
    per_class = {
        label: row(event.per_class[label], onset.per_class[label], segment.per_class[label],
                   (estimated["label"].astype(str) == label).sum(),
                   (reference["label"].astype(str) == label).sum())
        for label in labels
    }
    result = {"overall": overall, "per_class": per_class, "psds": None}
    scored = estimated["score"].notna().all() and len(estimated)
    if durations and scored:
        from .psd_score import psds

        thresholds = np.unique(np.quantile(estimated["score"].to_numpy(float),
                                           np.linspace(0, 1, 21)))
        points = {float(t): estimated[estimated["score"] >= t] for t in thresholds}
        try:
            result["psds"] = float(psds(reference, points, durations, labels=labels).value)
        except Exception as error:  # noqa: BLE001 - PSDS has preconditions; say which failed
            result["psds_note"] = str(error)
    return result


def threshold_curves(reference, estimated, *, labels: Sequence[str] | None = None,
                     n_thresholds: int = 20) -> dict[str, pd.DataFrame]:
    """Per class, onset-only (1 s) precision and recall as the event-score threshold rises.

    Returns
    -------
    dict of str to DataFrame
        Columns ``threshold``, ``precision``, ``recall``, ``f``, ``detected``.
    """
    reference, estimated = events_frame(reference), events_frame(estimated)
    labels = list(labels) if labels is not None else sorted(set(reference["label"].astype(str)))
    scores = estimated["score"].fillna(1.0).to_numpy(float)
    low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    thresholds = np.linspace(low, high, n_thresholds)
    rows: dict[str, list] = {label: [] for label in labels}
    for threshold in thresholds:
        kept = estimated[scores >= threshold]
        onset = event_based_scores(reference, kept, t_collar=1.0, evaluate_offset=False,
                                   labels=labels)
        for label in labels:
            scores_of = onset.per_class[label]
            rows[label].append({"threshold": float(threshold), "precision": scores_of.precision,
                                "recall": scores_of.recall, "f": scores_of.f_measure,
                                "detected": scores_of.n_estimated})
    return {label: pd.DataFrame(values) for label, values in rows.items()}


def plot_threshold_curves(curves: Mapping[str, pd.DataFrame], out_dir) -> list[Path]:
    """One PNG per class: precision, recall and F against the event-score threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, table in curves.items():
        figure, axes = plt.subplots(figsize=(5, 3.2), dpi=110)
        for column, style in (("precision", "-"), ("recall", "--"), ("f", ":")):
            axes.plot(table["threshold"], table[column], style, label=column)
        axes.set(xlabel="event score threshold", ylabel="onset-only (1 s)", ylim=(0, 1.02),
                 title=f"{label}")
        axes.legend(loc="best", fontsize=8)
        figure.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(label)) or "class"
        path = out_dir / f"{safe}.threshold.png"
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png")
        plt.close(figure)
        written.append(path)
    return written
