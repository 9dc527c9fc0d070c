"""Classifiers that learn from clip embeddings, by name.

Every learner is a plain scikit-learn :class:`~sklearn.pipeline.Pipeline`, so ``clone``,
``GridSearchCV`` and ``cross_val_score`` work on it unchanged, and :mod:`skops.io` can
save it without pickle. Scaling sits inside the pipeline, so it is learned on the
training part of each split only.

With few examples per class some learners cannot be used as configured (five nearest
neighbours of two examples; probability calibration by cross-validation with one example
per class). :func:`fit_learner` fits a copy adapted to the training set at hand and says
what it changed, so evaluation code never has to special-case a learner.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .exceptions import ParameterError

__all__ = [
    "LEARNERS", "BlockScaler", "PartsClassifier", "make_learner", "resolve_learner", "fit_learner",
    "fit_takes_groups", "fit_with_groups",
]

#: Learner names and what each one is, in one line.
LEARNERS: dict[str, str] = {
    "logreg": "standardise, then logistic regression (C=1): the default, robust with few examples",
    "svm-linear": "standardise, then a linear SVM (C=1)",
    "svm-rbf": "standardise, then an RBF-kernel SVM (C=10)",
    "knn": "standardise, then 5 nearest neighbours (cosine distance, weighted by distance)",
    "mlp": "standardise, then a one-hidden-layer (256) neural network with L2 penalty",
    "random-forest": "300 randomised trees on the raw features (the classic MFCC baseline)",
    "prototype": "class means in a whitened cosine space (few-shot); answers 'unknown' far "
    "from every class",
    "prototype-hierarchical": "prototypes at every level of a label taxonomy (needs taxonomy=)",
}

#: Learners fitted block by block on a fused embedding (late fusion: PartsClassifier).
_LATE_FUSION = ("logreg",)

#: Learners that do their own preprocessing, fitted on the training set, so no scaler.
_SELF_SCALING = ("random-forest", "prototype", "prototype-hierarchical")

# Folds of held-out training scores that calibration is fitted on (lowered to the
# smallest class count, or to the number of groups, inside CalibratedLearner).
_CALIBRATION_FOLDS = 5

# Parameters of the calibration wrapper rather than of the classifier: per-class
# thresholds for a target precision or recall (earmark.thresholds).
_TARGETS = ("target_precision", "target_recall")


def make_learner(
    name: str = "logreg",
    *,
    random_state: int | None = 0,
    calibrate: bool = True,
    blocks=None,
    **params: Any,
):
    """Build an unfitted learner by name.

    Every learner's probabilities are calibrated on cross-fitted held-out scores of the
    training data (:class:`earmark.calibration.CalibratedLearner`: temperature, Platt or
    isotonic, chosen by held-out log-loss), which also gives every learner an
    ``is_unknown`` answer.

    Parameters
    ----------
    name : str
        One of :data:`LEARNERS`.
    random_state : int or None
        Seed for learners with randomness (MLP, forest, calibration splits), so results
        repeat.
    calibrate : bool
        Wrap the classifier in :class:`~earmark.calibration.CalibratedLearner`. Off for
        thousands of few-shot episodes that read labels and raw scores only.
    blocks : sequence of int, optional
        Widths of the column blocks of a fused embedding (``FusedBackend.blocks``).
        ``logreg`` then fits one logistic regression per block and averages their
        log-probabilities (:class:`PartsClassifier`, late fusion); the other learners
        see every block at once, each standardised and weighed by its width
        (:class:`BlockScaler`, early fusion). Ignored by learners that scale for
        themselves. Measured on the shared sets (see the README), late fusion beat
        early fusion for logistic regression on all three.
    **params
        ``target_precision=P`` or ``target_recall=R`` store per-class thresholds
        (:meth:`~earmark.calibration.CalibratedLearner.predict_thresholded`). Others
        override the classifier's own, e.g. ``C=0.1`` for ``logreg``, ``n_neighbors=3``
        for ``knn``; they go to the classifier inside the calibration wrapper. Unknown
        names raise :class:`ParameterError`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; its last step is named ``"classifier"``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((3, 2)), np.ones((3, 2))]
    >>> model = make_learner("logreg").fit(X, ["a"] * 3 + ["b"] * 3)
    >>> model.predict([[0.9, 0.9]]).tolist()
    ['b']
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if name not in LEARNERS:
        raise ParameterError(
            f"unknown learner {name!r}; expected one of: {', '.join(LEARNERS)}"
        )
    targets = {key: params.pop(key) for key in _TARGETS if params.get(key) is not None}
    classifier = _classifier(name, random_state, params)
    late_fusion = bool(blocks) and name in _LATE_FUSION
    if late_fusion:
        classifier = PartsClassifier(classifier, blocks=tuple(int(b) for b in blocks))
    if calibrate and name != "prototype-hierarchical":
        from .calibration import CalibratedLearner

        classifier = CalibratedLearner(
            classifier, cv=_CALIBRATION_FOLDS, random_state=random_state, **targets
        )
    elif targets:
        raise ParameterError(
            f"per-class thresholds ({', '.join(targets)}) need calibrated probabilities; "
            f"learner {name!r} has none here"
        )
    scaler = StandardScaler() if not blocks or late_fusion else BlockScaler(
        blocks=tuple(int(b) for b in blocks))
    steps = [] if name in _SELF_SCALING else [("scale", scaler)]
    return Pipeline([*steps, ("classifier", classifier)])


class BlockScaler(TransformerMixin, BaseEstimator):
    """Standardise every column, then weigh each block of columns by its width.

    A fused embedding joins parts of very different widths (BirdNET 1024, aiSFX 512,
    musicnn 753 or 8448 columns). Standardised column by column, a part's share of
    every squared distance and of an L2 penalty grows with its width; here block ``b``
    of width ``d_b`` is multiplied by ``sqrt(D / (B * d_b))`` (``D`` columns, ``B``
    blocks), so each block holds the same total variance and the whole the same as
    plain standardisation. With equal widths it *is* plain standardisation.

    Parameters
    ----------
    blocks : tuple of int, optional
        Widths of consecutive column blocks, summing to the number of columns; ``None``
        is one block.

    Attributes
    ----------
    mean_, scale_ : np.ndarray [shape=(n_features,)]
    weights_ : np.ndarray [shape=(n_features,)]
        Each column's block weight.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> Xt = BlockScaler(blocks=(1, 3)).fit_transform(X)
    >>> np.round(Xt.var(axis=0), 2).tolist()
    [2.0, 0.67, 0.67, 0.67]
    """

    def __init__(self, blocks=None):
        self.blocks = blocks

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        n_features = X.shape[1]
        blocks = [s.stop - s.start for s in _block_slices(self.blocks, n_features)]
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        widths = np.repeat(np.asarray(blocks, dtype=np.float64), blocks)
        self.weights_ = np.sqrt(n_features / (len(blocks) * widths))
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) / self.scale_ * self.weights_


def _block_slices(blocks, n_features: int) -> list[slice]:
    """Column slices of ``blocks`` (``None``: one block), checked against the columns."""
    blocks = (n_features,) if blocks is None else tuple(blocks)
    if not blocks or any(not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1
                         for b in blocks) or sum(blocks) != n_features:
        raise ParameterError(
            f"blocks: expected positive widths summing to {n_features} columns, got {blocks!r}"
        )
    edges = np.cumsum([0, *blocks])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class PartsClassifier(ClassifierMixin, BaseEstimator):
    """Late fusion: one classifier per block of columns, log-probabilities averaged.

    Each part of a fused embedding gets its own copy of ``estimator``, fitted on its
    columns only; a clip's score for a class is the mean of the parts' log-probabilities
    (a product of experts, renormalised). A part that is sure and right is not
    outvoted by the width of another, and no part's scale or width sets another's
    regularisation.

    Parameters
    ----------
    estimator : classifier with ``predict_log_proba``, optional
        Default: ``LogisticRegression(max_iter=5000)``.
    blocks : tuple of int, optional
        Widths of consecutive column blocks; ``None`` is one block.

    Attributes
    ----------
    estimators_ : list of classifiers
        One per block, fitted.
    classes_ : np.ndarray [shape=(n_classes,)]

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> X = np.c_[y + rng.normal(size=40), rng.normal(size=(40, 3))]  # only block 1 knows
    >>> model = PartsClassifier(blocks=(1, 3)).fit(X, y)
    >>> len(model.estimators_), model.predict_proba(X[:2]).shape
    (2, (2, 2))
    """

    def __init__(self, estimator=None, blocks=None):
        self.estimator = estimator
        self.blocks = blocks

    def fit(self, X, y):
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression
        from sklearn.utils.multiclass import check_classification_targets

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        slices = _block_slices(self.blocks, X.shape[1])
        template = self.estimator if self.estimator is not None else LogisticRegression(max_iter=5000)
        self.estimators_ = [clone(template).fit(X[:, columns], y) for columns in slices]
        return self

    def _mean_log_proba(self, X) -> np.ndarray:
        """Mean of the parts' log-probabilities, [shape=(n, n_classes)]."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        slices = _block_slices(self.blocks, X.shape[1])
        return np.mean([np.asarray(model.predict_log_proba(X[:, columns]), dtype=float)
                        for model, columns in zip(self.estimators_, slices)], axis=0)

    def decision_function(self, X):
        """Mean of the parts' log-probabilities, [shape=(n, n_classes)]; with two
        classes, the second's minus the first's, [shape=(n,)], as scikit-learn's own."""
        scores = self._mean_log_proba(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_proba(self, X):
        from scipy.special import softmax

        return softmax(self._mean_log_proba(X), axis=1)

    def predict(self, X):
        scores = self._mean_log_proba(X)
        return self.classes_[np.argmax(scores, axis=1)]


def _classifier(name: str, random_state: int | None, params: dict[str, Any]):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    if name == "logreg":
        base = LogisticRegression(C=1.0, max_iter=5000, random_state=random_state)
    elif name in ("svm-linear", "svm-rbf"):
        kernel = "linear" if name == "svm-linear" else "rbf"
        # One-vs-one margins give calibration a continuous score per class
        # (earmark.calibration._scores); labels are the SVM's votes either way.
        base = SVC(kernel=kernel, C=1.0 if kernel == "linear" else 10.0,
                   decision_function_shape="ovo", random_state=random_state)
    elif name == "knn":
        # Cosine suits embeddings whose scale varies from clip to clip.
        base = KNeighborsClassifier(n_neighbors=5, weights="distance", metric="cosine")
    elif name == "prototype":
        from .fewshot.prototypes import PrototypeClassifier

        base = PrototypeClassifier()
    elif name == "prototype-hierarchical":
        from .fewshot.hierarchical import HierarchicalPrototypeClassifier

        if params.get("taxonomy") is None:
            raise ParameterError("learner 'prototype-hierarchical' needs taxonomy=...")
        base = HierarchicalPrototypeClassifier()
    elif name == "mlp":
        base = MLPClassifier(
            hidden_layer_sizes=(256,), alpha=1e-3, max_iter=1000, random_state=random_state
        )
    else:
        # Trees grow on every core; the forest is the same whatever the count.
        base = RandomForestClassifier(n_estimators=300, random_state=random_state, n_jobs=-1)
    valid = base.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ParameterError(
            f"learner {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"expected some of: {', '.join(sorted(valid))}"
        )
    base.set_params(**params)
    return base


def resolve_learner(learner, *, random_state: int | None = 0, **params: Any):
    """A learner from its name, or a copy of a scikit-learn classifier given as is.

    Returns
    -------
    template : sklearn estimator
        Unfitted.
    name : str
        ``learner`` itself, or the class names of the estimator given (a pipeline's
        steps joined by ``+``).
    """
    if isinstance(learner, str):
        return make_learner(learner, random_state=random_state, **params), learner
    from sklearn.base import clone, is_classifier

    if not (hasattr(learner, "get_params") and is_classifier(learner)):
        raise ParameterError(
            f"expected a learner name ({', '.join(LEARNERS)}) or a scikit-learn "
            f"classifier, got {type(learner).__name__}"
        )
    steps = getattr(learner, "steps", None)
    name = "+".join(type(step).__name__ for _, step in steps) if steps else type(learner).__name__
    return clone(learner).set_params(**params), name


def fit_learner(learner, X, y, *, groups=None) -> tuple[Any, list[str]]:
    """Fit a copy of ``learner``, adapted to what a small training set allows.

    Adaptations, all reported: ``n_neighbors`` is lowered to the number of training
    examples; calibration folds to what the classes and groups allow. With a single
    example in some class, a :class:`~earmark.calibration.CalibratedLearner` calibrates
    on the other classes' held-out scores (or keeps the learner's own scores when fewer
    than two classes have two examples), and a scikit-learn ``CalibratedClassifierCV``
    is replaced by its bare estimator.

    Parameters
    ----------
    learner : sklearn estimator
        Not modified.
    X : np.ndarray [shape=(n, dimension)]
    y : np.ndarray [shape=(n,)]
    groups : np.ndarray [shape=(n,)], optional
        Speaker, recording or site of each item. Calibration then learns from scores of
        held-out groups, as new recordings will be scored.

    Returns
    -------
    fitted : sklearn estimator
    notes : list of str
        What was changed, in words (empty if nothing).
    """
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.exceptions import ConvergenceWarning

    from .calibration import CalibratedLearner

    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise ParameterError(
            f"a classifier needs at least 2 classes to learn from, got {np.unique(y).tolist()}"
        )
    fitted = clone(learner)
    notes: list[str] = []
    _, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min())
    for key, value in fitted.get_params(deep=True).items():
        if key.endswith("n_neighbors") and isinstance(value, int) and value > len(y):
            fitted.set_params(**{key: len(y)})
            notes.append(f"n_neighbors lowered from {value} to {len(y)} (training examples)")
    steps = getattr(fitted, "steps", None)
    if steps and isinstance(steps[-1][1], CalibratedClassifierCV):
        calibrated = steps[-1][1]
        folds = calibrated.cv
        if smallest < 2:
            steps[-1] = (steps[-1][0], calibrated.estimator)
            notes.append(
                "a class has 1 training example: SVM fitted without probability calibration"
            )
        elif isinstance(folds, int) and folds > smallest:
            calibrated.set_params(cv=smallest)
            notes.append(f"calibration folds lowered from {folds} to {smallest} (smallest class)")
    fit_params = {}
    last = steps[-1][1] if steps else fitted
    if groups is not None and fit_takes_groups(last):
        # CalibratedLearner holds its calibration folds out by group; networks
        # (earmark.networks) draw their early-stopping split by group; uncalibrated
        # prototypes hold their support out by group.
        groups = np.asarray(groups)
        fit_params = {f"{steps[-1][0]}__groups": groups} if steps else {"groups": groups}
    # Embedding matrices are small (hundreds to thousands of rows): a second BLAS thread
    # costs more in hand-offs than it gives. Measured on 2 cores, FSDD demo, BirdNET
    # 250 x 1024 logistic regression: 0.10 s per fit with one thread, 2.5 s with two
    # while another process was busy. Parallelism belongs across splits, not inside a fit.
    with warnings.catch_warnings(record=True) as caught, _blas_threads().limit(limits=1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        fitted.fit(X, y, **fit_params)
    if isinstance(last, CalibratedLearner):
        # What the calibration did with few examples, read from the fitted learner.
        if smallest < 2 and last.method != "none":
            singles = int((counts < 2).sum())
            notes.append(
                f"{singles} class{'es' if singles > 1 else ''} with 1 training example: "
                + ("probabilities not calibrated" if last.method_ == "none" else
                   "probabilities calibrated by one temperature on the other classes' "
                   "held-out scores")
            )
        if last.folds_note_:
            notes.append(last.folds_note_)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            notes.append(f"did not converge: {str(warning.message).splitlines()[0]}")
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return fitted, notes


def fit_with_groups(estimator, X, y, groups=None):
    """``estimator.fit(X, y)``, with ``groups=`` where its fit takes them
    (:func:`fit_takes_groups`); returns the fitted estimator."""
    if groups is not None and fit_takes_groups(estimator):
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


def fit_takes_groups(estimator) -> bool:
    """Whether ``estimator.fit`` takes ``groups=`` (networks draw their early-stopping
    split by group; prototype classifiers hold support items out by group).

    >>> from earmark.fewshot.prototypes import PrototypeClassifier
    >>> fit_takes_groups(PrototypeClassifier()), fit_takes_groups(make_learner("logreg"))
    (True, False)
    """
    import inspect

    try:
        return "groups" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


@lru_cache(maxsize=1)
def _blas_threads():
    """The loaded BLAS libraries, scanned once: a scan costs ~8 ms, more than a small
    fit, and few-shot evaluation fits thousands of support sets. By the first fit
    numpy, scipy and scikit-learn (whose BLAS this limits) are all loaded."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
