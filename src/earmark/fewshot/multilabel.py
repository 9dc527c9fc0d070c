"""Multi-label few-shot: one positive and one negative prototype per label.

A clip may carry several labels at once (a dog barking in the rain, two instruments
playing together). :class:`MultiLabelPrototypeClassifier` treats each label as its own
yes/no question over the same support set: the label's *positive* prototype is the mean
of the support items that carry it, its *negative* prototype the mean of those that do
not, and a clip's score for the label is ``sigmoid((d_neg - d_pos) / temperature)``:
above 0.5 exactly when the clip is nearer the positive prototype.

Per-label thresholds are calibrated on the support set itself, from leave-one-out
scores (each support item scored against prototypes computed without it, or without its
whole group when ``groups`` are given to ``fit``), where a label has at least two
positive and two negative such scores; elsewhere the threshold stays at 0.5, the
nearer-prototype rule. With a :class:`~earmark.taxonomy.Taxonomy`, a child label
implies its parent: training label sets are closed under ancestors, a parent's score is
at least each child's, and every predicted set is closed under ancestors.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError
from .labelsets import binarize, hierarchy, resolve_taxonomy

__all__ = ["MultiLabelPrototypeClassifier"]

_METRICS = ("euclidean", "cosine")
_STANDARDIZE = (True, False, "center")
_CALIBRATED = "leave-one-out"


class MultiLabelPrototypeClassifier(ClassifierMixin, BaseEstimator):
    """One-vs-rest prototypes with calibrated per-label thresholds.

    Parameters
    ----------
    metric : {"euclidean", "cosine"}
        Distance between an embedding and a prototype (cosine: ``1 - cos``).
    standardize : {True, "center", False}
        Learned on the support set: subtract its mean and divide by its per-dimension
        standard deviation (``True``), only subtract the mean, or leave as is.
    temperature : float or "auto"
        Divides the distance margin inside the sigmoid. ``"auto"`` fits it by the
        likelihood of the leave-one-out margins of the support set (or, where no label
        has two items on each side, takes the median absolute margin). It shapes
        probabilities only: thresholds are calibrated on the same scores.
    threshold : "leave-one-out" or float in (0, 1)
        ``"leave-one-out"``: per label, the threshold with the best F1 over the support
        set's leave-one-out (or leave-one-group-out) scores, the one nearest 0.5 among
        ties, for labels with at least two positive and two negative such scores; 0.5
        for the others. A float: the same threshold for every label.
    taxonomy : Taxonomy, mapping, str or None
        A :class:`~earmark.taxonomy.Taxonomy`, a ``child -> parent`` mapping or tree,
        or a shipped taxonomy's name or a file (:func:`~earmark.taxonomy.load_taxonomy`).
        Ancestors of the training labels become labels too.
    classes : sequence of str, optional
        Label order, and the names of the columns when ``Y`` is an indicator matrix
        (default: sorted labels, or column numbers as str). Labels the taxonomy adds
        come after these, sorted.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_labels,)]
        Labels, the column order of every output.
    positive_prototypes_, negative_prototypes_ : np.ndarray [shape=(n_labels, n_features)]
        Means of the (preprocessed) support items with and without each label; zero
        where a label has no such item.
    positive_counts_, negative_counts_ : np.ndarray [shape=(n_labels,), dtype=int]
    thresholds_ : np.ndarray [shape=(n_labels,)]
    calibrated_ : np.ndarray [shape=(n_labels,), dtype=bool]
        Which thresholds came from leave-one-out scores (the rest are ``threshold`` or
        0.5).
    temperature_ : float
    temperature_source_ : str
        ``"set"``, ``"leave-one-out"`` or ``"median margin"``.
    parent_index_ : np.ndarray [shape=(n_labels,), dtype=int]
        Column of each label's parent, -1 for none (all -1 without a taxonomy).
    hierarchy_order_ : np.ndarray [shape=(n_with_parent,), dtype=int]
        Columns that have a parent, deepest first: the order in which scores and
        predictions are carried up to parents.
    mean_, scale_ : np.ndarray [shape=(n_features,)]
        Standardisation learned on the support set.
    n_features_in_ : int

    Notes
    -----
    A label that every support item carries always scores 1, one that no support item
    carries always scores 0: the support set cannot tell its presence from its absence.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centers = {"dog": np.eye(4)[0] * 4, "rain": np.eye(4)[1] * 4}
    >>> Y = [("dog",), ("rain",), ("dog", "rain"), ()] * 4
    >>> X = np.array([sum((centers[l] for l in labels), np.zeros(4)) for labels in Y])
    >>> X = X + rng.normal(0, 0.3, X.shape)
    >>> model = MultiLabelPrototypeClassifier().fit(X, Y)
    >>> model.classes_.tolist(), model.predict(X[:4]).tolist()
    (['dog', 'rain'], [[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> model.predict_labels(X[2:4])
    [('dog', 'rain'), ()]
    """

    def __init__(
        self,
        *,
        metric: str = "euclidean",
        standardize: bool | str = True,
        temperature: float | str = "auto",
        threshold: float | str = _CALIBRATED,
        taxonomy=None,
        classes=None,
    ):
        self.metric = metric
        self.standardize = standardize
        self.temperature = temperature
        self.threshold = threshold
        self.taxonomy = taxonomy
        self.classes = classes

    # ------------------------------------------------------------------- fitting
    def fit(self, X, Y, groups=None):
        """Learn per-label prototypes, temperature and thresholds from a support set.

        Parameters
        ----------
        X : array-like [shape=(n_support, n_features)]
        Y : sequence of label collections, or array-like [shape=(n_support, n_labels)]
            Each item's labels as a tuple, list or set of str (an empty one for an
            item with none); or one label per item (a 1-d array of names); or a 0/1
            indicator matrix (rows of 0/1 numbers of equal length are read as one),
            whose columns ``classes`` names (default: ``"0"``, ``"1"``, ...).
        groups : array-like [shape=(n_support,)], optional
            Recording, session or source of each item. Thresholds and temperature are
            then calibrated leaving out one whole group at a time: items cut from one
            recording resemble each other more than a new clip will, and scoring one
            with its siblings still in the prototypes would set the thresholds too
            high.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            On invalid parameters, labels outside ``classes``, an indicator matrix
            whose width differs from ``classes``, or ``X`` and ``Y`` of different
            lengths.
        """
        self._check_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        if groups.shape != (len(X),):
            raise ParameterError(f"expected groups of shape ({len(X)},) like X, got {groups.shape}")
        taxonomy = resolve_taxonomy(self.taxonomy)
        self.classes_, indicator = binarize(Y, self.classes, taxonomy, n_items=len(X))
        self.parent_index_, self.hierarchy_order_ = hierarchy(self.classes_, taxonomy)
        self._fit_preprocessing(X)
        Z = self._preprocess(X)

        positive = indicator.astype(bool)
        self.positive_counts_ = positive.sum(axis=0)
        self.negative_counts_ = len(X) - self.positive_counts_
        with np.errstate(invalid="ignore", divide="ignore"):
            self.positive_prototypes_ = np.nan_to_num(
                (positive.T @ Z) / self.positive_counts_[:, None]
            )
            self.negative_prototypes_ = np.nan_to_num(
                (~positive).T @ Z / self.negative_counts_[:, None]
            )

        margins = self._leave_one_out_margins(Z, positive, groups)
        self._fit_temperature(margins, positive, Z)
        loo_scores = self._consistent(self._scores_from_margins(margins))
        self._fit_thresholds(loo_scores, positive)
        return self

    def _check_params(self) -> None:
        if self.metric not in _METRICS:
            raise ParameterError(f"expected metric in {_METRICS}, got {self.metric!r}")
        if not (isinstance(self.standardize, (bool, np.bool_)) or self.standardize == "center"):
            raise ParameterError(
                f"expected standardize True, False or 'center', got {self.standardize!r}"
            )
        if not (self.temperature == "auto" or (
            isinstance(self.temperature, Real) and np.isfinite(self.temperature)
            and self.temperature > 0
        )):
            raise ParameterError(f"expected temperature > 0 or 'auto', got {self.temperature!r}")
        if not (self.threshold == _CALIBRATED or (
            isinstance(self.threshold, Real) and 0 < self.threshold < 1
        )):
            raise ParameterError(
                f"expected threshold {_CALIBRATED!r} or a number in (0, 1), "
                f"got {self.threshold!r}"
            )

    def _fit_preprocessing(self, X: np.ndarray) -> None:
        standardize = "center" if self.standardize == "center" else bool(self.standardize)
        self.mean_ = X.mean(axis=0) if standardize else np.zeros(X.shape[1])
        if standardize is True:
            scale = X.std(axis=0)
            # A dimension constant over the support tells nothing here; leave it unscaled.
            self.scale_ = np.where(scale > 1e-12 * max(scale.max(), 1.0), scale, 1.0)
        else:
            self.scale_ = np.ones(X.shape[1])

    def _preprocess(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _leave_one_out_margins(self, Z: np.ndarray, positive: np.ndarray, groups) -> np.ndarray:
        """``d_neg - d_pos`` of each support item for each label, both prototypes
        recomputed without the item's group (without the item itself when there are no
        groups); NaN where that leaves a side of the label empty."""
        n_pos = self.positive_counts_
        n_neg = self.negative_counts_
        positive_sums = positive.T.astype(float) @ Z
        negative_sums = Z.sum(axis=0) - positive_sums
        margins = np.full(positive.shape, np.nan)
        _, codes = np.unique(groups, return_inverse=True)
        order = np.argsort(codes, kind="stable")
        for rows in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
            mine = positive[rows].astype(float)
            left_pos = n_pos - mine.sum(axis=0)
            left_neg = n_neg - (1 - mine).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                pos = (positive_sums - mine.T @ Z[rows]) / left_pos[:, None]
                neg = (negative_sums - (1 - mine).T @ Z[rows]) / left_neg[:, None]
            usable = (left_pos > 0) & (left_neg > 0)
            block = self._distances(Z[rows], np.nan_to_num(neg)) - self._distances(
                Z[rows], np.nan_to_num(pos)
            )
            margins[rows] = np.where(usable[None, :], block, np.nan)
        return margins

    def _distances(self, Z: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
        if self.metric == "euclidean":
            squared = (
                (Z**2).sum(axis=1)[:, None] - 2 * Z @ prototypes.T + (prototypes**2).sum(axis=1)
            )
            return np.sqrt(np.maximum(squared, 0.0))
        norms = np.linalg.norm(Z, axis=1)[:, None] * np.linalg.norm(prototypes, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = np.where(norms > 0, (Z @ prototypes.T) / norms, 0.0)
        return 1.0 - cosine

    def _fit_temperature(self, margins: np.ndarray, positive: np.ndarray, Z) -> None:
        if self.temperature != "auto":
            self.temperature_, self.temperature_source_ = float(self.temperature), "set"
            return
        usable = np.isfinite(margins)
        if usable.any() and positive[usable].any() and (~positive[usable]).any():
            self.temperature_ = _fit_logistic_temperature(margins[usable], positive[usable])
            self.temperature_source_ = "leave-one-out"
            return
        full = self._distances(Z, self.negative_prototypes_) - self._distances(
            Z, self.positive_prototypes_
        )
        typical = float(np.median(np.abs(full))) if full.size else 0.0
        self.temperature_ = typical if typical > 0 else 1.0
        self.temperature_source_ = "median margin"

    def _fit_thresholds(self, scores: np.ndarray, positive: np.ndarray) -> None:
        n_labels = len(self.classes_)
        self.calibrated_ = np.zeros(n_labels, dtype=bool)
        if self.threshold != _CALIBRATED:
            self.thresholds_ = np.full(n_labels, float(self.threshold))
            return
        self.thresholds_ = np.full(n_labels, 0.5)
        for j in range(n_labels):
            usable = np.isfinite(scores[:, j])
            truth = positive[usable, j]
            if truth.sum() < 2 or (~truth).sum() < 2:
                continue
            self.thresholds_[j] = _best_f1_threshold(scores[usable, j], truth)
            self.calibrated_[j] = True

    # ---------------------------------------------------------------- predicting
    def _scores_from_margins(self, margins: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            scores = 1.0 / (1.0 + np.exp(-margins / self.temperature_))
        # Labels the support set cannot tell apart from their absence.
        scores[:, self.positive_counts_ == 0] = 0.0
        scores[:, self.negative_counts_ == 0] = 1.0
        return scores

    def _consistent(self, scores: np.ndarray) -> np.ndarray:
        """Raise each parent's score to its children's, deepest labels first."""
        scores = scores.copy()
        for j in self.hierarchy_order_:
            parent = self.parent_index_[j]
            scores[:, parent] = np.fmax(scores[:, parent], scores[:, j])
        return scores

    def predict_proba(self, X) -> np.ndarray:
        """Per-label scores in [0, 1], parents at least as high as their children.

        Parameters
        ----------
        X : array-like [shape=(n, n_features)]

        Returns
        -------
        np.ndarray [shape=(n, n_labels)]
            Columns in ``classes_`` order; rows need not sum to 1.
        """
        check_is_fitted(self, "thresholds_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z = self._preprocess(X)
        margins = self._distances(Z, self.negative_prototypes_) - self._distances(
            Z, self.positive_prototypes_
        )
        return self._consistent(self._scores_from_margins(margins))

    def predict(self, X) -> np.ndarray:
        """Labels whose score reaches their threshold, closed under ancestors.

        Parameters
        ----------
        X : array-like [shape=(n, n_features)]

        Returns
        -------
        np.ndarray [shape=(n, n_labels), dtype=int]
            0/1 indicator matrix, columns in ``classes_`` order.
        """
        predicted = self.predict_proba(X) >= self.thresholds_
        for j in self.hierarchy_order_:
            parent = self.parent_index_[j]
            predicted[:, parent] |= predicted[:, j]
        return predicted.astype(int)

    def predict_labels(self, X) -> list[tuple[str, ...]]:
        """Predicted label sets as tuples in ``classes_`` order.

        Returns
        -------
        list of tuple of str, one per row of ``X``
        """
        return [tuple(self.classes_[row.astype(bool)].tolist()) for row in self.predict(X)]

    def score(self, X, y, sample_weight=None) -> float:
        """Subset accuracy: the share of items whose whole label set is right.

        ``y`` may be label collections or an indicator matrix in ``classes_`` order.
        """
        from sklearn.metrics import accuracy_score

        predicted = self.predict(X)
        _, truth = binarize(
            y, self.classes_, resolve_taxonomy(self.taxonomy), n_items=len(predicted), fixed=True
        )
        return float(accuracy_score(truth, predicted, sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.target_tags.two_d_labels = True
        return tags


# ----------------------------------------------------------------------- helpers
def _fit_logistic_temperature(margins: np.ndarray, positive: np.ndarray) -> float:
    """The temperature maximising the likelihood of yes/no under sigmoid(margin / T)."""
    from scipy.optimize import minimize_scalar

    sign = np.where(positive, 1.0, -1.0)
    scale = float(np.median(np.abs(margins))) or 1.0

    def nll(log_t: float) -> float:
        return float(np.mean(np.logaddexp(0.0, -sign * margins / (scale * np.exp(log_t)))))

    best = minimize_scalar(nll, bounds=(-9.0, 5.0), method="bounded")
    return float(scale * np.exp(best.x))


def _best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The threshold with the best F1 over these scores; among equally good ones, the
    one nearest 0.5, so a tiny support set moves the default no further than it must."""
    values = np.unique(scores)
    # Midpoints between neighbouring scores, one beyond each end, and 0.5 itself.
    candidates = np.concatenate([
        (values[:-1] + values[1:]) / 2,
        [(values[0] + 0.0) / 2, (values[-1] + 1.0) / 2, 0.5],
    ])
    predicted = scores[None, :] >= candidates[:, None]
    tp = (predicted & truth).sum(axis=1)
    fp = (predicted & ~truth).sum(axis=1)
    fn = truth.sum() - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
