"""How well probabilities match frequencies: ECE, Brier score, reliability table.

Top-label measures over equal-width confidence bins (Guo et al. 2017), for
``earmark evaluate``'s report and reliability diagram
(:func:`earmark.plots.plot_reliability`); the calibrated learner that these measure
is :class:`earmark.calibration.CalibratedLearner`.
"""

from __future__ import annotations

import numpy as np

from .exceptions import ParameterError

__all__ = ["expected_calibration_error", "ece_sampling_floor", "brier_score", "reliability_table"]


def _top_label(y_true, proba, classes):
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    y_true = np.asarray(y_true)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ParameterError(
            f"expected proba of shape ({len(y_true)}, {len(classes)}), got {proba.shape}"
        )
    confidence = proba.max(axis=1)
    correct = classes[np.argmax(proba, axis=1)] == y_true
    return confidence, correct


def expected_calibration_error(y_true, proba, classes, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error over equal-width confidence bins.

    The gap between accuracy and mean confidence in each bin, weighted by the share of
    items in it (Guo et al. 2017; 15 bins as there).

    Parameters
    ----------
    y_true : array-like [shape=(n,)]
    proba : np.ndarray [shape=(n, n_classes)]
    classes : array-like [shape=(n_classes,)]
        Column labels of ``proba``.
    n_bins : int

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> expected_calibration_error(["a", "b"], [[0.9, 0.1], [0.2, 0.8]], ["a", "b"])
    0.15
    """
    confidence, correct = _top_label(y_true, proba, classes)
    if confidence.size == 0:
        return 0.0
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(total / confidence.size), 12)


def ece_sampling_floor(confidence, *, n_bins: int = 15, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these confidences shows by chance.

    Each item is drawn right with exactly the probability it states, ``draws`` times;
    the mean ECE of those draws is what sampling alone gives on this many items. An
    ECE near it says nothing more can be read from this test set: on Philharmonia
    mini's 480 notes (BirdNET + logistic regression, confidences about 0.78) it is
    about 0.044, so no learner can show the 0.03 a user might ask for there; on 3000
    spoken digits about 0.019.

    Parameters
    ----------
    confidence : array-like [shape=(n,)]
        Top-label probabilities (``proba.max(axis=1)``).
    n_bins, draws, seed
        Bins as :func:`expected_calibration_error`; draws of the outcomes and their seed
        (fixed, so a report repeats).

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> round(ece_sampling_floor([1.0, 1.0, 1.0]), 3)
    0.0
    >>> ece_sampling_floor([0.6] * 20) > ece_sampling_floor([0.6] * 2000)
    True
    """
    confidence = np.asarray(confidence, dtype=float).ravel()
    if confidence.size == 0:
        return 0.0
    if not np.all((confidence >= 0) & (confidence <= 1)):
        raise ParameterError("expected confidences in [0, 1]")
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    stated = np.bincount(bins, weights=confidence, minlength=n_bins)
    rng = np.random.default_rng(seed)
    # One draw at a time: memory stays that of one column of outcomes on large sets.
    gaps = [
        np.abs(np.bincount(bins, weights=rng.random(confidence.size) < confidence,
                           minlength=n_bins) - stated).sum()
        for _ in range(draws)
    ]
    return float(np.mean(gaps) / confidence.size)


def brier_score(y_true, proba, classes) -> float:
    """Mean squared distance between the probabilities and the one-hot truth.

    Parameters
    ----------
    y_true : array-like [shape=(n,)]
    proba : np.ndarray [shape=(n, n_classes)]
    classes : array-like [shape=(n_classes,)]

    Returns
    -------
    float in [0, 2]
    """
    proba = np.asarray(proba, dtype=float)
    _top_label(y_true, proba, classes)
    onehot = np.asarray(y_true)[:, None] == np.asarray(classes)[None, :]
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def reliability_table(y_true, proba, classes, *, n_bins: int = 15) -> list[dict]:
    """Accuracy against mean confidence per bin: the points of a reliability diagram.

    Returns
    -------
    list of dict
        ``low``, ``high``, ``count``, ``confidence``, ``accuracy`` per non-empty bin.
    """
    confidence, correct = _top_label(y_true, proba, classes)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in np.unique(bins):
        inside = bins == b
        rows.append({
            "low": b / n_bins,
            "high": (b + 1) / n_bins,
            "count": int(inside.sum()),
            "confidence": float(confidence[inside].mean()),
            "accuracy": float(correct[inside].mean()),
        })
    return rows
