"""Sound event detection scores as in the DCASE protocols: event-based and segment-based
F-score and error rate; the polyphonic sound detection score (PSDS) lives in
:mod:`earmark.detection.psd_score` and is re-exported here.

Events are compared file by file (their ``path``); a file that appears on one side only
counts as a file with no events on the other. An event is any object with ``label``,
``onset_s`` and ``offset_s`` attributes (such as
:class:`earmark.detection.events.Event`), a mapping with those keys (``event_label``,
``onset``, ``offset`` and ``filename`` or ``file`` are accepted too, as in DCASE
files), or a row of a pandas DataFrame with those columns.

Definitions (Mesaros, Heittola & Virtanen, "Metrics for polyphonic sound event
detection", Applied Sciences 2016; the ``sed_eval`` toolbox):

- **event-based**: an estimated event matches a reference event of the same class when
  its onset is within ``t_collar`` of the reference onset and its offset within
  ``max(t_collar, percentage_of_length * reference length)`` of the reference offset.
  Each event matches at most one other (a maximum bipartite matching). Left-over
  reference and estimated events that match in time but not in class are
  substitutions; the other left-overs are deletions and insertions.
- **segment-based**: each file is cut into ``segment_s`` segments; a class is active
  in a segment if any of its events overlaps it. Counts are over (segment, class)
  pairs; in each segment ``S = min(N_ref, N_sys) - N_tp``, ``D = max(0, N_ref -
  N_sys)``, ``I = max(0, N_sys - N_ref)``.
- ``error_rate = (S + D + I) / N_ref``; per class there are no substitutions, so
  ``(FN + FP) / N_ref``. Macro averages are plain means over the classes where the
  figure is defined.

Why our own code rather than ``sed_eval``/``psds_eval``/``sed_scores_eval``: in a
Python 3.11 environment matching ours (numpy 2.4, pandas 3.1), ``psds_eval`` 0.5.3
fails (``fillna(method=...)``, removed in pandas 3; ``int()`` of a 1-element array,
an error in numpy 2.4) and lists pytest as a run-time dependency; ``sed_eval`` 0.2.1
installs and runs but only as a source distribution pulling ``dcase_util`` and its
``future``, ``pydot-ng``, ``python-magic`` (needs the system libmagic), ``validators``
and ``requests``, seven packages for a few hundred lines of counting;
``sed_scores_eval`` 0.0.4 adds the 2014 ``pathlib`` backport, Cython, ``lazy_dataset``
and ``einops`` on top of ``sed_eval``. The tests compare this module with numbers
computed by ``sed_eval`` 0.2.1 and ``psds_eval`` 0.5.3 (in environments where they
run) on random cases. Deliberate differences:

- rates whose denominator is zero are NaN (``sed_eval`` divides by ``N_ref + eps``);
  precision is 0 when nothing was estimated (``sed_eval``'s ``zero_score`` option);
- among the maximum matchings, the one with the most substitutions is chosen
  (``sed_eval`` counts substitutions greedily among its matching's left-overs; the
  two agree unless events of several classes crowd within one collar);
- segment boundaries tolerate 1e-9 segment of floating-point error, so an event
  starting at 0.3 s is not put in the segment before it when ``segment_s=0.1``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..exceptions import ParameterError
from ._event_sets import EMPTY, FileEvents, by_file, json_safe, resolve_labels, warn_if_disjoint
from .psd_score import PSDS_SCENARIO_1, PSDS_SCENARIO_2, PSDSResult, psds

__all__ = [
    "ClassScores",
    "DetectionScores",
    "PSDSResult",
    "PSDS_SCENARIO_1",
    "PSDS_SCENARIO_2",
    "event_based_scores",
    "segment_based_scores",
    "psds",
]

#: Slack, in segments, for event times that are a whole number of segments.
_SEGMENT_TOLERANCE = 1e-9


# ----------------------------------------------------------------------- results
def _prepare(reference, estimated, labels):
    """Pairs of (reference, estimated) events per file, and the class list."""
    ref, est = by_file(reference, "reference"), by_file(estimated, "estimated")
    warn_if_disjoint(ref, est)
    labels = resolve_labels(labels, ref, est)
    files = sorted(set(ref) | set(est))
    return [(ref.get(f, EMPTY), est.get(f, EMPTY)) for f in files], labels


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else math.nan


def _f_measure(precision: float, recall: float) -> float:
    if precision == 0 and recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)  # NaN if either is NaN


@dataclass(frozen=True)
class ClassScores:
    """Scores of one class. Counts are events (event-based) or active segments.

    ``precision`` is 0 when the class was never estimated; ``recall`` and the rates
    are NaN when it has no reference.
    """

    f_measure: float
    precision: float
    recall: float
    error_rate: float
    deletion_rate: float
    insertion_rate: float
    n_reference: int
    n_estimated: int
    n_true_positive: int

    @classmethod
    def from_counts(cls, n_reference: int, n_estimated: int, n_true_positive: int):
        precision = _ratio(n_true_positive, n_estimated) if n_estimated else 0.0
        recall = _ratio(n_true_positive, n_reference)
        deletions, insertions = n_reference - n_true_positive, n_estimated - n_true_positive
        return cls(
            f_measure=_f_measure(precision, recall), precision=precision, recall=recall,
            error_rate=_ratio(deletions + insertions, n_reference),
            deletion_rate=_ratio(deletions, n_reference),
            insertion_rate=_ratio(insertions, n_reference),
            n_reference=int(n_reference), n_estimated=int(n_estimated),
            n_true_positive=int(n_true_positive),
        )


@dataclass(frozen=True)
class DetectionScores:
    """Event-based or segment-based scores over a set of files.

    Attributes
    ----------
    method : str
        ``"event-based"`` or ``"segment-based"``.
    f_measure, precision, recall : float
        Micro averages: counts pooled over classes and files.
    error_rate, substitution_rate, deletion_rate, insertion_rate : float
        ``error_rate`` is the sum of the other three, each relative to ``n_reference``.
    macro_f_measure, macro_error_rate : float
        Means of the per-class figures over the classes where they are defined.
    n_reference, n_estimated, n_true_positive, n_substitutions, n_deletions, n_insertions : int
        Events (event-based) or (segment, class) pairs (segment-based).
    n_files : int
        Files seen on either side.
    per_class : dict of str to ClassScores
        In label order.
    parameters : dict
        The collars or the segment length used.
    """

    method: str
    f_measure: float
    precision: float
    recall: float
    error_rate: float
    substitution_rate: float
    deletion_rate: float
    insertion_rate: float
    macro_f_measure: float
    macro_error_rate: float
    n_reference: int
    n_estimated: int
    n_true_positive: int
    n_substitutions: int
    n_deletions: int
    n_insertions: int
    n_files: int
    per_class: dict[str, ClassScores] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; undefined figures (NaN) become ``None``."""
        return json_safe(asdict(self))


def _scores(method, parameters, labels, class_counts, n_files, subs, dels, ins):
    per_class = {label: ClassScores.from_counts(*class_counts[label]) for label in labels}
    n_ref, n_est, n_tp = (sum(c[i] for c in class_counts.values()) for i in range(3))
    precision = _ratio(n_tp, n_est) if n_est else 0.0
    recall = _ratio(n_tp, n_ref)

    def mean(values):
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    return DetectionScores(
        method=method, f_measure=_f_measure(precision, recall), precision=precision,
        recall=recall, error_rate=_ratio(subs + dels + ins, n_ref),
        substitution_rate=_ratio(subs, n_ref), deletion_rate=_ratio(dels, n_ref),
        insertion_rate=_ratio(ins, n_ref),
        macro_f_measure=mean(s.f_measure for s in per_class.values()),
        macro_error_rate=mean(s.error_rate for s in per_class.values()),
        n_reference=int(n_ref), n_estimated=int(n_est), n_true_positive=int(n_tp),
        n_substitutions=int(subs), n_deletions=int(dels), n_insertions=int(ins),
        n_files=n_files, per_class=per_class, parameters=parameters,
    )


# ------------------------------------------------------------------- event-based
def _match_events(ref: FileEvents, est: FileEvents, t_collar, percentage_of_length,
                  evaluate_offset: bool = True):
    """Correct pairs per reference label, and the number of substitutions, in one file.

    Weights make one assignment maximise the correct pairs first and the substitutions
    second: a correct pair is worth more than all possible substitutions together.
    Events interact only within a collar, so the assignment is solved per connected
    group of candidate pairs, which keeps long files cheap.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    correct: dict[str, int] = {}
    if not len(ref) or not len(est):
        return correct, 0
    order = np.argsort(est.onset_s, kind="stable")
    low = np.searchsorted(est.onset_s[order], ref.onset_s - t_collar, side="left")
    high = np.searchsorted(est.onset_s[order], ref.onset_s + t_collar, side="right")
    ref_index = np.repeat(np.arange(len(ref)), high - low)
    est_index = order[np.concatenate([np.arange(a, b) for a, b in zip(low, high)])]
    # The collar is tested exactly as written; searchsorted only narrows the candidates.
    onset_ok = np.abs(ref.onset_s[ref_index] - est.onset_s[est_index]) <= t_collar
    offset_collar = np.maximum(
        t_collar, percentage_of_length * (ref.offset_s - ref.onset_s))[ref_index]
    offset_ok = np.abs(ref.offset_s[ref_index] - est.offset_s[est_index]) <= offset_collar
    keep = onset_ok & offset_ok if evaluate_offset else onset_ok
    ref_index, est_index = ref_index[keep], est_index[keep]
    if not ref_index.size:
        return correct, 0
    same = ref.labels[ref_index] == est.labels[est_index]
    n_ref = len(ref)
    graph = coo_matrix((np.ones(ref_index.size), (ref_index, n_ref + est_index)),
                       shape=(n_ref + len(est),) * 2)
    _, component = connected_components(graph, directed=False)
    substitutions = 0
    by_component = np.argsort(component[ref_index], kind="stable")
    bounds = np.flatnonzero(np.diff(component[ref_index][by_component])) + 1
    for pairs in np.split(by_component, bounds):
        if pairs.size == 1 or len(set(ref_index[pairs])) == 1 or len(set(est_index[pairs])) == 1:
            # The usual case, and one pair at most: a correct one if there is one.
            hits = pairs[same[pairs]]
            if hits.size:
                label = ref.labels[ref_index[hits[0]]]
                correct[label] = correct.get(label, 0) + 1
            else:
                substitutions += 1
            continue
        from scipy.optimize import linear_sum_assignment  # slow to import; rarely needed

        rows, row_of = np.unique(ref_index[pairs], return_inverse=True)
        cols, col_of = np.unique(est_index[pairs], return_inverse=True)
        weight = np.zeros((rows.size, cols.size))
        weight[row_of, col_of] = np.where(same[pairs], rows.size + 1, 1)
        chosen_rows, chosen_cols = linear_sum_assignment(weight, maximize=True)
        for r, c in zip(chosen_rows, chosen_cols):
            if weight[r, c] > 1:
                label = ref.labels[rows[r]]
                correct[label] = correct.get(label, 0) + 1
            elif weight[r, c] == 1:
                substitutions += 1
    return correct, substitutions


def event_based_scores(
    reference,
    estimated,
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    labels: Sequence[str] | None = None,
    evaluate_offset: bool = True,
) -> DetectionScores:
    """Event-based F-score and error rate (DCASE, ``sed_eval`` definitions).

    Parameters
    ----------
    reference, estimated : iterable of events, or pandas.DataFrame
        See the module docstring for what counts as an event; ``path`` (or ``file``)
        groups them by file.
    t_collar : float
        Onset collar in seconds; also the smallest offset collar.
    percentage_of_length : float
        Offset collar as a fraction of the reference event's length, when larger
        than ``t_collar``.
    labels : sequence of str, optional
        The classes to report; default: every label seen on either side.
    evaluate_offset : bool
        ``False`` matches on the onset alone (``sed_eval``'s ``evaluate_offset``), for
        uses where finding where an event starts is what counts.

    Returns
    -------
    scores : DetectionScores
        Counts are events.

    Examples
    --------
    >>> ref = [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0}]
    >>> est = [{"path": "a.wav", "label": "dog", "onset_s": 1.15, "offset_s": 2.1},
    ...        {"path": "b.wav", "label": "dog", "onset_s": 0.0, "offset_s": 1.0}]
    >>> s = event_based_scores(ref, est)
    >>> s.f_measure, s.precision, s.recall, s.error_rate
    (0.6666666666666666, 0.5, 1.0, 1.0)
    """
    if not (t_collar >= 0 and percentage_of_length >= 0):
        raise ParameterError(
            f"expected t_collar >= 0 and percentage_of_length >= 0, got {t_collar}, "
            f"{percentage_of_length}")
    files, labels = _prepare(reference, estimated, labels)
    counts = {label: [0, 0, 0] for label in labels}  # n_reference, n_estimated, correct
    subs = dels = ins = 0
    for ref, est in files:
        for label in ref.labels:
            counts[label][0] += 1
        for label in est.labels:
            counts[label][1] += 1
        correct, substituted = _match_events(ref, est, t_collar, percentage_of_length,
                                             evaluate_offset)
        for label, n in correct.items():
            counts[label][2] += n
        n_correct = sum(correct.values())
        subs += substituted
        dels += len(ref) - n_correct - substituted
        ins += len(est) - n_correct - substituted
    parameters = {"t_collar": t_collar, "percentage_of_length": percentage_of_length,
                  "evaluate_offset": evaluate_offset}
    return _scores("event-based", parameters, labels, counts, len(files), subs, dels, ins)


# ----------------------------------------------------------------- segment-based
def _activity(events: FileEvents, labels: dict[str, int], n_segments: int, segment_s):
    roll = np.zeros((n_segments, len(labels)), dtype=bool)
    first = np.floor(events.onset_s / segment_s + _SEGMENT_TOLERANCE).astype(np.int64)
    stop = np.ceil(events.offset_s / segment_s - _SEGMENT_TOLERANCE).astype(np.int64)
    for label, a, b in zip(events.labels, first, stop):
        roll[a:b, labels[label]] = True
    return roll


def segment_based_scores(
    reference,
    estimated,
    *,
    segment_s: float = 1.0,
    labels: Sequence[str] | None = None,
) -> DetectionScores:
    """Segment-based F-score and error rate (DCASE, ``sed_eval`` definitions).

    Each file is scored up to the last offset on either side; segments after it hold
    no activity and change neither score.

    Parameters
    ----------
    reference, estimated : iterable of events, or pandas.DataFrame
        See :func:`event_based_scores`.
    segment_s : float
        Segment length in seconds.
    labels : sequence of str, optional
        The classes to report; default: every label seen on either side.

    Returns
    -------
    scores : DetectionScores
        Counts are (segment, class) pairs.

    Examples
    --------
    >>> ref = [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 3.0}]
    >>> est = [{"path": "a.wav", "label": "dog", "onset_s": 1.5, "offset_s": 3.5}]
    >>> s = segment_based_scores(ref, est)
    >>> s.n_reference, s.n_estimated, s.n_true_positive, s.f_measure
    (2, 3, 2, 0.8)
    """
    if not segment_s > 0:
        raise ParameterError(f"expected segment_s > 0, got {segment_s}")
    files, labels = _prepare(reference, estimated, labels)
    column = {label: index for index, label in enumerate(labels)}
    n_ref = np.zeros(len(labels), dtype=np.int64)
    n_est, n_tp = n_ref.copy(), n_ref.copy()
    subs = dels = ins = 0
    for ref, est in files:
        last = max(np.max(ref.offset_s, initial=0.0), np.max(est.offset_s, initial=0.0))
        n_segments = int(math.ceil(last / segment_s - _SEGMENT_TOLERANCE))
        ref_roll = _activity(ref, column, n_segments, segment_s)
        est_roll = _activity(est, column, n_segments, segment_s)
        n_ref += ref_roll.sum(axis=0)
        n_est += est_roll.sum(axis=0)
        n_tp += (ref_roll & est_roll).sum(axis=0)
        ref_active, est_active = ref_roll.sum(axis=1), est_roll.sum(axis=1)
        both = (ref_roll & est_roll).sum(axis=1)
        subs += int((np.minimum(ref_active, est_active) - both).sum())
        dels += int(np.maximum(0, ref_active - est_active).sum())
        ins += int(np.maximum(0, est_active - ref_active).sum())
    counts = {label: (n_ref[i], n_est[i], n_tp[i]) for label, i in column.items()}
    parameters = {"segment_s": segment_s}
    return _scores("segment-based", parameters, labels, counts, len(files), subs, dels, ins)
