"""Polyphonic sound detection score (PSDS): detection quality over all thresholds.

Bilen, Ferroni, Tuveri, Azcarreta & Krstulovic, "A framework for the robust evaluation
of sound event detection", ICASSP 2020; the definitions below follow the
``psds_eval`` 0.5.3 reference implementation, which the tests check this module
against (see :mod:`earmark.detection.metrics` for why it is not a dependency).

For each operating point (one set of detections, typically one decision threshold)
and each class, with zero-length events left out:

- a detection satisfies the **detection tolerance criterion** (DTC) when at least
  ``dtc_threshold`` of its length lies on reference events of its class; the others
  are false positives;
- a reference event is detected (a true positive) when detections of its class that
  satisfy the DTC cover at least ``gtc_threshold`` of its length (**ground-truth
  intersection criterion**, GTC);
- a false positive that lies at least ``cttc_threshold`` of its length on reference
  events of another class is a **cross-trigger** on that class (CTTC).

The true positive ratio (TPR) is true positives over reference events; the false
positive rate (FPR) is false positives per hour of audio; the cross-trigger rate is
cross-triggers per hour of the other class's reference events. The effective FPR adds
``alpha_ct`` times the mean cross-trigger rate. Each class's ROC is a staircase of the
best TPR reached at or below each effective FPR (a point at the origin added); the PSD
ROC is the mean over classes minus ``alpha_st`` times their standard deviation
(floored at 0), and PSDS is its area up to ``max_efpr``, divided by ``max_efpr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..exceptions import ParameterError
from ._event_sets import EMPTY, FileEvents, by_file, file_key, json_safe, resolve_labels

__all__ = ["PSDSResult", "PSDS_SCENARIO_1", "PSDS_SCENARIO_2", "psds"]

#: DCASE 2021-2023 task 4 settings: scenario 1 rewards precise boundaries, scenario 2
#: tolerates loose ones but counts cross-triggers between classes.
PSDS_SCENARIO_1 = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None,
                   "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS_SCENARIO_2 = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3,
                   "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0}

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class PSDSResult:
    """PSDS and the curves it is the area of.

    Attributes
    ----------
    value : float
        PSDS in [0, 1].
    efpr : np.ndarray [shape=(n_points,)]
        Effective false positives per hour, increasing: the x axis of the PSD ROC.
    etpr : np.ndarray [shape=(n_points,)]
        Effective true positive ratio at each ``efpr``.
    class_tpr : dict of str to np.ndarray [shape=(n_points,)]
        Each class's staircase ROC at each ``efpr``.
    operating_points : list of dict
        Per operating point: its key, and per class ``tpr``, ``fpr`` (per hour) and
        ``efpr``.
    parameters : dict
    """

    value: float
    efpr: np.ndarray
    etpr: np.ndarray
    class_tpr: dict[str, np.ndarray] = field(default_factory=dict)
    operating_points: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (arrays as lists, NaN as ``None``)."""
        return json_safe({
            "value": self.value, "efpr": self.efpr, "etpr": self.etpr,
            "class_tpr": dict(self.class_tpr), "operating_points": self.operating_points,
            "parameters": self.parameters,
        })


def _check_no_overlap(side: dict[str, FileEvents], name: str) -> None:
    # psds_eval refuses these too: overlapping events of one class make the
    # coverage sums count the same stretch of time twice.
    for path, events in side.items():
        for label in set(events.labels):
            mine = events.subset(events.labels == label)
            order = np.argsort(mine.onset_s, kind="stable")
            if np.any(mine.onset_s[order][1:] < mine.offset_s[order][:-1]):
                raise ParameterError(
                    f"{name} events of class {label!r} overlap in file {path!r}; merge them "
                    "first (PSDS needs the events of one class to be disjoint)")


def _operating_point(reference, detections, durations, labels, thresholds):
    """True positives, false positives and cross-triggers per class at one point."""
    column = {label: i for i, label in enumerate(labels)}
    n_classes = len(labels)
    true_positives = np.zeros(n_classes)
    false_positives = np.zeros(n_classes)
    cross_triggers = np.zeros((n_classes, n_classes))
    dtc, gtc, cttc = thresholds
    for path, found in detections.items():
        found = found.subset(np.isin(found.labels, labels) & (found.offset_s > found.onset_s))
        truth = reference.get(path, EMPTY)
        start = np.maximum(found.onset_s[:, None], truth.onset_s[None, :])
        overlap = np.minimum(found.offset_s[:, None], truth.offset_s[None, :]) - start
        touches = overlap > 0
        overlap = np.where(touches, overlap, 0.0)
        of_detection = overlap / (found.offset_s - found.onset_s)[:, None]
        of_truth = overlap / (truth.offset_s - truth.onset_s)[None, :]
        same = found.labels[:, None] == truth.labels[None, :]
        passes_dtc = (touches & same).any(axis=1) & (
            (of_detection * same).sum(axis=1) >= dtc)
        counted = same & passes_dtc[:, None] & touches
        detected = counted.any(axis=0) & ((of_truth * counted).sum(axis=0) >= gtc)
        for label in truth.labels[detected]:
            true_positives[column[label]] += 1
        # Every detection inside the file overlaps the file-long "world" event.
        false = ~passes_dtc & (found.onset_s < durations[path])
        for label in found.labels[false]:
            false_positives[column[label]] += 1
        if cttc is None:
            continue
        for other in labels:
            on_other = touches & (truth.labels == other)[None, :]
            triggers = (~passes_dtc & (found.labels != other) & on_other.any(axis=1)
                        & ((of_detection * on_other).sum(axis=1) >= cttc))
            for label in found.labels[triggers]:
                cross_triggers[column[label], column[other]] += 1
    return true_positives, false_positives, cross_triggers


def _staircase(x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """Best ``yp`` reached at ``xp <= x``, for each ``x`` (0 below every ``xp``)."""
    order = np.lexsort((yp, xp))
    best = np.maximum.accumulate(yp[order])
    index = np.searchsorted(xp[order], x, side="right") - 1
    return np.where(index >= 0, best[np.maximum(index, 0)], 0.0)


def _area(x: np.ndarray, y: np.ndarray, max_x: float) -> float:
    """Area under the staircase ``(x, y)`` from 0 to ``max_x`` (rectangles, not trapezoids)."""
    if max_x not in x:
        at = int(np.searchsorted(x, max_x))
        x = np.insert(x, at, max_x)
        y = np.insert(y, at, y[at - 1])
    keep = x <= max_x
    return float(np.sum(np.diff(x[keep]) * y[keep][:-1]))


def psds(
    reference,
    operating_points,
    durations: Mapping[Any, float],
    *,
    dtc_threshold: float = 0.7,
    gtc_threshold: float = 0.7,
    cttc_threshold: float | None = None,
    alpha_ct: float = 0.0,
    alpha_st: float = 1.0,
    max_efpr: float | None = 100.0,
    labels: Sequence[str] | None = None,
) -> PSDSResult:
    """Polyphonic sound detection score over several operating points.

    The defaults are DCASE scenario 1 (:data:`PSDS_SCENARIO_1`); pass
    ``**PSDS_SCENARIO_2`` for scenario 2.

    Parameters
    ----------
    reference : iterable of events, or pandas.DataFrame
        Annotated events (see :mod:`earmark.detection.metrics`); events of one class
        must not overlap within a file.
    operating_points : mapping of key to events, or sequence of events collections
        One detection set per operating point, such as ``{threshold: events}``.
        Detections of classes outside ``labels`` are ignored, as in ``psds_eval``.
    durations : mapping of path to float
        Length in seconds of every evaluated file, those without events included:
        false positive rates are per hour of this audio.
    dtc_threshold, gtc_threshold : float
        Detection and ground-truth tolerance criteria, in [0, 1].
    cttc_threshold : float, optional
        Cross-trigger tolerance criterion; needed when ``alpha_ct > 0``.
    alpha_ct : float
        Weight of cross-triggers in the effective false positive rate, in [0, 1].
    alpha_st : float
        Cost of instability across classes, >= 0.
    max_efpr : float, optional
        Largest effective false positives per hour considered; None: the largest seen.
    labels : sequence of str, optional
        The classes; default every reference label. Each needs reference events.

    Returns
    -------
    result : PSDSResult

    Examples
    --------
    >>> ref = [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0},
    ...        {"path": "a.wav", "label": "dog", "onset_s": 5.0, "offset_s": 6.0}]
    >>> points = {0.5: [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0}],
    ...           0.2: [{"path": "a.wav", "label": "dog", "onset_s": 1.0, "offset_s": 2.0},
    ...                 {"path": "a.wav", "label": "dog", "onset_s": 5.1, "offset_s": 6.0}]}
    >>> psds(ref, points, {"a.wav": 3600.0}).value
    1.0
    """
    for name, value in (("dtc_threshold", dtc_threshold), ("gtc_threshold", gtc_threshold),
                        ("alpha_ct", alpha_ct)):
        if not 0 <= value <= 1:
            raise ParameterError(f"expected 0 <= {name} <= 1, got {value}")
    if cttc_threshold is not None and not 0 <= cttc_threshold <= 1:
        raise ParameterError(f"expected 0 <= cttc_threshold <= 1, got {cttc_threshold}")
    if alpha_ct > 0 and cttc_threshold is None:
        raise ParameterError("alpha_ct > 0 counts cross-triggers: give a cttc_threshold")
    if not alpha_st >= 0:
        raise ParameterError(f"expected alpha_st >= 0, got {alpha_st}")
    if max_efpr is not None and not max_efpr > 0:
        raise ParameterError(f"expected max_efpr > 0, got {max_efpr}")
    durations = {file_key(path): float(seconds) for path, seconds in durations.items()}
    if not durations:
        raise ParameterError("expected the duration of every evaluated file, got none")
    for path, seconds in durations.items():
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ParameterError(f"expected a positive duration, got {seconds} for {path!r}")
    points = (dict(operating_points) if isinstance(operating_points, Mapping)
              else dict(enumerate(operating_points)))
    if not points:
        raise ParameterError("expected at least one operating point, got none")

    truth = by_file(reference, "reference")
    truth = {path: e.subset(e.offset_s > e.onset_s) for path, e in truth.items()}
    _check_no_overlap(truth, "reference")
    labels = resolve_labels(labels, truth)
    found_points = {key: by_file(events, f"operating point {key!r}")
                    for key, events in points.items()}
    for key, found in found_points.items():
        _check_no_overlap(found, f"operating point {key!r}")
    for path in set(truth).union(*found_points.values()) - set(durations):
        raise ParameterError(f"no duration given for file {path!r}")

    all_labels = np.concatenate([e.labels for e in truth.values()] or [np.zeros(0)])
    n_truth = np.array([np.sum(all_labels == label) for label in labels], dtype=np.float64)
    if np.any(n_truth == 0):
        missing = [label for label, n in zip(labels, n_truth) if n == 0]
        raise ParameterError(f"classes {missing} have no reference events; PSDS needs some")
    truth_hours = np.array([
        sum(float(np.sum((e.offset_s - e.onset_s)[e.labels == label])) for e in truth.values())
        for label in labels]) / _SECONDS_PER_HOUR
    audio_hours = sum(durations.values()) / _SECONDS_PER_HOUR

    tpr, efpr, summary = [], [], []
    for key, found in found_points.items():
        tp, fp, ct = _operating_point(truth, found, durations, labels,
                                      (dtc_threshold, gtc_threshold, cttc_threshold))
        point_tpr, point_fpr = tp / n_truth, fp / audio_hours
        point_efpr = point_fpr.copy()
        if alpha_ct > 0 and len(labels) > 1:
            rates = ct / truth_hours[None, :]
            off_diagonal = ~np.eye(len(labels), dtype=bool)
            point_efpr += alpha_ct * rates[off_diagonal].reshape(len(labels), -1).mean(axis=1)
        tpr.append(point_tpr)
        efpr.append(point_efpr)
        summary.append({"key": key, **{label: {"tpr": float(point_tpr[i]),
                                               "fpr": float(point_fpr[i]),
                                               "efpr": float(point_efpr[i])}
                                       for i, label in enumerate(labels)}})
    tpr = np.vstack(tpr + [np.zeros(len(labels))])  # the origin is always reachable
    efpr = np.vstack(efpr + [np.zeros(len(labels))])
    x = np.unique(efpr)
    curves = np.vstack([_staircase(x, efpr[:, i], tpr[:, i]) for i in range(len(labels))])
    etpr = np.maximum(curves.mean(axis=0) - alpha_st * curves.std(axis=0), 0.0)
    limit = float(x.max()) if max_efpr is None else float(max_efpr)
    value = _area(x, etpr, limit) / limit if limit > 0 else 0.0
    parameters = {"dtc_threshold": dtc_threshold, "gtc_threshold": gtc_threshold,
                  "cttc_threshold": cttc_threshold, "alpha_ct": alpha_ct,
                  "alpha_st": alpha_st, "max_efpr": limit}
    return PSDSResult(value=value, efpr=x, etpr=etpr,
                      class_tpr={label: curves[i] for i, label in enumerate(labels)},
                      operating_points=summary, parameters=parameters)
