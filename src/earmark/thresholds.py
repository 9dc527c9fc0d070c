"""Per-class operating points: a threshold per class for a precision (or recall) a user asks.

One cut-off of 0.5 for every class promises nothing: a common class reaches 95 %
precision there, a rare one 60 %. :func:`choose_thresholds` reads held-out probabilities
(cross-validated, never the test items) and gives each class the lowest threshold at
which its one-vs-rest precision reaches the target (the most recall that keeps the
promise; with groups such as speakers, within each group too), or the highest at which
recall still does. A class with too few items to judge gets no threshold (NaN: answered
whenever it is on top, promising nothing) and a note saying so. A class whose precision
target no threshold reaches gets an infinite one: it is never answered, since any
answer would break the promise the user asked for (FSDD, BirdNET: digit 1 of one fold
answered freely at 0.80 precision before).

:func:`apply_thresholds` turns probabilities into answers: the top class where its
probability clears that class's threshold, else ``unknown_label``.
:func:`operating_curves` gives precision and recall against threshold per class, the
table and picture a user chooses from (:func:`earmark.plots.plot_operating_points`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import ParameterError

__all__ = [
    "ClassThresholds",
    "choose_thresholds",
    "apply_thresholds",
    "operating_curves",
    "MIN_ITEMS",
    "MIN_GROUP_CLAIMS",
]

#: A class needs this many held-out items for a threshold to be trusted with a target.
MIN_ITEMS = 20
#: A group's precision counts once it has this many claims at a threshold.
MIN_GROUP_CLAIMS = 5


@dataclass
class ClassThresholds:
    """Per-class thresholds and why some classes have none.

    Attributes
    ----------
    classes : np.ndarray [shape=(n_classes,)]
    thresholds : np.ndarray [shape=(n_classes,)]
        NaN where too few items promise anything (answered whenever on top); +inf where
        no threshold reaches a precision target (never answered).
    target : str
        ``"precision"`` or ``"recall"``.
    value : float
        The asked precision or recall.
    expected : np.ndarray [shape=(n_classes, 2)]
        Held-out precision and recall at each threshold (NaN where none).
    notes : dict
        Class label -> reason it has no threshold.
    """

    classes: np.ndarray
    thresholds: np.ndarray
    target: str
    value: float
    expected: np.ndarray
    notes: dict = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per class: ``label``, ``threshold``, ``precision``, ``recall``, ``note``."""
        rows = []
        for k, label in enumerate(self.classes.tolist()):
            finite = np.isfinite(self.thresholds[k])
            rows.append({
                "label": label,
                "threshold": float(self.thresholds[k]) if finite else None,
                "precision": float(self.expected[k, 0]) if finite else None,
                "recall": float(self.expected[k, 1]) if finite else None,
                "note": self.notes.get(label),
            })
        return rows


def operating_curves(y_true, proba, classes) -> list[dict[str, Any]]:
    """Precision and recall against threshold, one-vs-rest, for every class.

    Parameters
    ----------
    y_true : array-like [shape=(n,)]
    proba : np.ndarray [shape=(n, n_classes)]
        Held-out probabilities, columns in the order of ``classes``.
    classes : array-like [shape=(n_classes,)]

    Returns
    -------
    list of dict
        ``label``, ``support``, ``thresholds``, ``precision``, ``recall`` (arrays of one
        length: precision and recall of "this class" for items scoring at least that
        threshold).
    """
    from sklearn.metrics import precision_recall_curve

    y_true, proba, classes = _check(y_true, proba, classes)
    curves = []
    for k, label in enumerate(classes.tolist()):
        positive = y_true == label
        if not positive.any():
            curves.append({"label": label, "support": 0, "thresholds": np.zeros(0),
                           "precision": np.zeros(0), "recall": np.zeros(0)})
            continue
        precision, recall, thresholds = precision_recall_curve(positive, proba[:, k])
        # precision_recall_curve adds a last point (precision 1, recall 0) with no
        # threshold; drop it so the three arrays line up.
        curves.append({"label": label, "support": int(positive.sum()),
                       "thresholds": thresholds, "precision": precision[:-1],
                       "recall": recall[:-1]})
    return curves


def choose_thresholds(
    y_true,
    proba,
    classes,
    *,
    target_precision: float | None = None,
    target_recall: float | None = None,
    min_items: int = MIN_ITEMS,
    groups=None,
    min_group_claims: int = MIN_GROUP_CLAIMS,
) -> ClassThresholds:
    """Per-class thresholds for a target precision (or recall) on held-out probabilities.

    Parameters
    ----------
    y_true : array-like [shape=(n,)]
    proba : np.ndarray [shape=(n, n_classes)]
        Held-out (cross-validated) probabilities; thresholds chosen on the items they
        will be judged on promise nothing.
    classes : array-like [shape=(n_classes,)]
    target_precision, target_recall : float in (0, 1]
        Exactly one.
    min_items : int
        Classes with fewer held-out items get no threshold (and a note).
    groups : array-like [shape=(n,)], optional
        Speaker, site or recording of each item. A precision target must then also hold
        within every group that holds several classes and at least ``min_group_claims``
        of the class's claims at that threshold (and at every higher one): a threshold
        for "90 % precision" is meant for the next speaker, not for the pool, and one
        chosen on the pool promised too much on a new speaker (FSDD, BirdNET: digit 3
        reached 0.62). Groups holding one class only (an instrument's dynamic) say
        nothing about false alarms and are not used.
    min_group_claims : int
        Claims a group needs at a threshold before its precision counts.

    Returns
    -------
    ClassThresholds

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array(["a"] * 30 + ["b"] * 30)
    >>> p = np.r_[np.linspace(0.4, 1.0, 30), np.linspace(0.0, 0.6, 30)]
    >>> chosen = choose_thresholds(y, np.c_[p, 1 - p], ["a", "b"], target_precision=0.9)
    >>> bool(0.4 < chosen.thresholds[0] < 0.6)
    True
    """
    if (target_precision is None) == (target_recall is None):
        raise ParameterError("expected exactly one of target_precision and target_recall")
    target, value = (
        ("precision", target_precision) if target_precision is not None
        else ("recall", target_recall)
    )
    if not (0 < value <= 1):
        raise ParameterError(f"expected target_{target} in (0, 1], got {value!r}")
    y_true, proba, classes = _check(y_true, proba, classes)
    mixed = _mixed_groups(y_true, groups)
    thresholds = np.full(len(classes), np.nan)
    expected = np.full((len(classes), 2), np.nan)
    notes = {}
    for k, curve in enumerate(operating_curves(y_true, proba, classes)):
        label = curve["label"]
        if curve["support"] < min_items:
            notes[label] = (
                f"{curve['support']} held-out items, fewer than {min_items}: too few to "
                f"honour {target} {value:.2f}"
            )
            continue
        if target == "precision":
            # Lowest threshold at which precision, and at every higher threshold too,
            # reaches the target: a lucky dip in the curve is not a promise.
            holds = curve["precision"] >= value
            if mixed is not None:
                holds &= _holds_in_groups(curve["thresholds"], proba[:, k], y_true == label,
                                          mixed, value, min_group_claims)
            from_top = np.minimum.accumulate(holds[::-1])[::-1]
            good = np.flatnonzero(from_top)
            index = good[0] if good.size else None
        else:
            good = np.flatnonzero(curve["recall"] >= value)
            index = good[-1] if good.size else None
        if index is None:
            notes[label] = f"no threshold reaches {target} {value:.2f} on held-out items"
            if target == "precision":
                thresholds[k] = np.inf
                notes[label] += ": never answered"
            continue
        thresholds[k] = curve["thresholds"][index]
        expected[k] = curve["precision"][index], curve["recall"][index]
    return ClassThresholds(classes, thresholds, target, float(value), expected, notes)


def apply_thresholds(proba, classes, thresholds, *, unknown_label="unknown") -> np.ndarray:
    """Answers under per-class thresholds.

    Parameters
    ----------
    proba : np.ndarray [shape=(n, n_classes)]
    classes : array-like [shape=(n_classes,)]
    thresholds : np.ndarray [shape=(n_classes,)] or ClassThresholds
        NaN: the class keeps no promise and is answered whenever it is on top; +inf: the
        class is never answered.
    unknown_label : str
        The answer where the top class is below its threshold.

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=object]

    Examples
    --------
    >>> apply_thresholds([[0.7, 0.3], [0.55, 0.45]], ["a", "b"], [0.6, 0.5]).tolist()
    ['a', 'unknown']
    >>> apply_thresholds([[0.7, 0.3], [0.2, 0.8]], ["a", "b"], [np.nan, np.inf]).tolist()
    ['a', 'unknown']
    """
    if isinstance(thresholds, ClassThresholds):
        thresholds = thresholds.thresholds
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes, dtype=object)
    thresholds = np.asarray(thresholds, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(classes) or thresholds.shape != (len(classes),):
        raise ParameterError(
            f"expected proba (n, {len(classes)}) and {len(classes)} thresholds, got "
            f"{proba.shape} and {thresholds.shape}"
        )
    top = np.argmax(proba, axis=1)
    limit = np.where(np.isnan(thresholds), -np.inf, thresholds)[top]
    labels = classes[top].copy()
    labels[proba[np.arange(len(top)), top] < limit] = unknown_label
    return labels


def _mixed_groups(y_true, groups):
    """Group of each item where it holds several classes, else -1; None when fewer than
    two groups do (then the pooled precision is all there is)."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != y_true.shape:
        raise ParameterError(f"expected one group per item ({len(y_true)}), got {groups.shape}")
    names, codes = np.unique(groups, return_inverse=True)
    kinds = np.array([len(np.unique(y_true[codes == g])) for g in range(len(names))])
    if (kinds > 1).sum() < 2:
        return None
    return np.where(kinds[codes] > 1, codes, -1)


def _holds_in_groups(thresholds, scores, positive, groups, value, min_claims) -> np.ndarray:
    """Whether precision reaches ``value`` in every group with ``min_claims`` claims or more,
    at each threshold (items scoring at or above it are claims)."""
    holds = np.ones(len(thresholds), dtype=bool)
    for g in np.unique(groups[groups >= 0]):
        inside = groups == g
        ranked = np.sort(scores[inside])
        hits = np.sort(scores[inside & positive])
        claims = inside.sum() - np.searchsorted(ranked, thresholds, side="left")
        true = positive[inside].sum() - np.searchsorted(hits, thresholds, side="left")
        counted = claims >= min_claims
        holds &= ~counted | (true >= value * np.maximum(claims, 1))
    return holds


def _check(y_true, proba, classes):
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    if proba.shape != (len(y_true), len(classes)):
        raise ParameterError(
            f"expected proba of shape ({len(y_true)}, {len(classes)}), got {proba.shape}"
        )
    return y_true, proba, classes
