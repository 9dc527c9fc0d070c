"""Active learning for one target: train on the labels, then ask about the clips the
classifier is least sure of (margin sampling).

A person labels a few clips positive or negative; :func:`train_target` fits a
standardised logistic regression (the ``logreg`` learner, classes weighted by their
counts, since a search by example brings far more of one than the other) on their
clip vectors, and ranks every clip not yet labelled by its *margin*: the difference
between the two most probable classes' probabilities. A margin near 0 is a clip on the
decision boundary, whose label teaches the classifier most (Settles, *Active Learning
Literature Survey*, 2009, sec. 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ParameterError
from .collection import Collection
from .labels import Label

__all__ = ["margins", "margin_sampling", "TrainedTarget", "train_target"]

POSITIVE, NEGATIVE = "positive", "negative"


def margins(proba) -> np.ndarray:
    """Margin of each row of class probabilities: top probability minus the second.

    Parameters
    ----------
    proba : array-like [shape=(n, n_classes)]
        ``predict_proba`` output, ``n_classes >= 2``.

    Returns
    -------
    margin : np.ndarray [shape=(n,)]
        In [0, 1]; 0 where the two most probable classes tie.

    Examples
    --------
    >>> margins([[0.5, 0.5], [0.9, 0.1], [0.25, 0.05]]).round(2).tolist()
    [0.0, 0.8, 0.2]
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ParameterError(
            f"expected probabilities of shape (n, n_classes >= 2), got {proba.shape}"
        )
    top_two = np.sort(proba, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def margin_sampling(estimator, X, n: int = 10, *, exclude=None) -> np.ndarray:
    """Rows of ``X`` the classifier is least sure of, most uncertain first.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
    X : np.ndarray [shape=(n_clips, dimension)]
    n : int
        How many rows to return (fewer if fewer are left).
    exclude : array-like of bool [shape=(n_clips,)], optional
        Rows never to return (clips already labelled).

    Returns
    -------
    rows : np.ndarray [shape=(min(n, n_left),), dtype=int]
        Sorted by margin, smallest first; ties keep row order.
    """
    if int(n) < 0:
        raise ParameterError(f"expected n >= 0, got {n}")
    X = np.asarray(X)
    candidates = np.arange(X.shape[0])
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != (X.shape[0],):
            raise ParameterError(f"expected exclude of shape ({X.shape[0]},), got {exclude.shape}")
        candidates = candidates[~exclude]
    if candidates.size == 0 or int(n) == 0:
        return np.zeros(0, dtype=int)
    margin = margins(estimator.predict_proba(X[candidates]))
    order = np.argsort(margin, kind="stable")[: int(n)]
    return candidates[order]


@dataclass
class TrainedTarget:
    """A classifier for one target and the clips to label next.

    Attributes
    ----------
    target : str
    estimator : sklearn Pipeline
        Fitted on the positive and negative labels; classes ``["negative", "positive"]``.
    n_positive, n_negative, n_skipped : int
        Labels used (skipped ones are not trained on, nor asked about again).
    uncertain : list of dict
        The next clips to label, most uncertain first: the clip's fields
        (:meth:`Collection.clip`) plus ``probability`` (of positive) and ``margin``.
    notes : list of str
        What :func:`~earmark.learners.fit_learner` changed or warned about.
    """

    target: str
    estimator: object = field(repr=False)
    n_positive: int
    n_negative: int
    n_skipped: int
    uncertain: list[dict]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready summary (without the estimator)."""
        return {
            "target": self.target,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "n_skipped": self.n_skipped,
            "uncertain": self.uncertain,
            "notes": self.notes,
        }


def train_target(
    collection: Collection,
    labels: list[Label],
    *,
    target: str,
    n_uncertain: int = 10,
    random_state: int | None = 0,
) -> TrainedTarget:
    """Fit a classifier on one target's labels and rank the unlabelled clips.

    Parameters
    ----------
    collection : Collection
        The clips of one backend configuration (:func:`load_collection`).
    labels : list of Label
        Labels of ``target`` (others are ignored). Labels whose key the collection
        does not hold (another backend's) are ignored too.
    target : str
    n_uncertain : int
        How many clips to propose next.
    random_state : int or None

    Returns
    -------
    TrainedTarget

    Raises
    ------
    ParameterError
        If the labels hold no positive or no negative clip of the collection.

    Examples
    --------
    >>> trained = train_target(collection, labels.labels("dog"), target="dog")  # doctest: +SKIP
    >>> [clip["name"] for clip in trained.uncertain[:3]]  # doctest: +SKIP
    ['a.wav', 'q.wav', 'c.wav']
    """
    from ..learners import fit_learner, make_learner

    rows, y, labelled = [], [], np.zeros(len(collection), dtype=bool)
    n_skipped = 0
    for label in labels:
        row = collection.index_of(label.key)
        if label.target != target or row is None:
            continue
        labelled[row] = True
        if label.value == "skip":
            n_skipped += 1
        else:
            rows.append(row)
            y.append(label.value)
    n_positive, n_negative = y.count(POSITIVE), y.count(NEGATIVE)
    if n_positive == 0 or n_negative == 0:
        raise ParameterError(
            f"target {target!r}: training needs at least one positive and one negative "
            f"clip, got {n_positive} positive and {n_negative} negative"
        )
    template = make_learner("logreg", random_state=random_state, class_weight="balanced")
    estimator, notes = fit_learner(template, collection.X[rows], np.asarray(y))
    chosen = margin_sampling(estimator, collection.X, n_uncertain, exclude=labelled)
    uncertain = []
    if chosen.size:
        proba = estimator.predict_proba(collection.X[chosen])
        positive = list(estimator.classes_).index(POSITIVE)
        for row, p in zip(chosen, proba):
            clip = collection.clip(int(row))
            clip["probability"] = float(p[positive])
            clip["margin"] = float(abs(p[positive] - (1.0 - p[positive])))
            uncertain.append(clip)
    return TrainedTarget(
        target=target,
        estimator=estimator,
        n_positive=n_positive,
        n_negative=n_negative,
        n_skipped=n_skipped,
        uncertain=uncertain,
        notes=notes,
    )
