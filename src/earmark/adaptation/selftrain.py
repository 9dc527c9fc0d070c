"""Prototype self-training: move class prototypes towards confident target predictions.

A prototype classifier (:class:`earmark.fewshot.PrototypeClassifier`) is fitted on the
labelled source; its prototypes then sit where the source's classes are. Under a domain
shift the target's classes sit a little elsewhere. Self-training labels the target with
the model's own predictions, keeps the most confident ones, and moves each prototype
towards the mean of the target items confidently predicted as its class; repeated a few
rounds, with more items each round (class-balanced self-training, Zou et al. 2018: the
same fraction of each predicted class is kept, so one dominant class cannot swallow the
rest).

Only the model's predictions on the target are used, never its labels.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["SelfTrainingPrototypes"]


class SelfTrainingPrototypes(ClassifierMixin, BaseEstimator):
    """Prototypes fitted on the source, re-estimated on confident target predictions.

    Parameters
    ----------
    base : PrototypeClassifier, optional
        Unfitted; cloned. Default ``PrototypeClassifier()``.
    n_rounds : int
        Rounds of pseudo-labelling.
    max_fraction : float in (0, 1]
        Share of the target items predicted as each class that round ``r`` of
        ``n_rounds`` keeps: ``max_fraction * r / n_rounds``, the most confident first.
    target_weight : float in [0, 1]
        Each prototype becomes ``(1 - target_weight) * source prototype +
        target_weight * mean of its kept target items`` (classes with no kept item
        keep the source prototype).

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    model_ : PrototypeClassifier
        The fitted classifier with the re-estimated prototypes.
    source_prototypes_ : np.ndarray [shape=(n_classes, n_features)]
        The prototypes before self-training.
    n_pseudo_labelled_ : np.ndarray [shape=(n_classes,), dtype=int]
        Target items kept per class in the last round.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> source = rng.normal(size=(40, 6)) + (y == "b")[:, None] * 3
    >>> target = rng.normal(size=(40, 6)) + (y == "b")[:, None] * 3 + 1
    >>> model = SelfTrainingPrototypes().fit(source, y, X_target=target)
    >>> model.n_pseudo_labelled_.sum() > 0
    np.True_
    """

    _parameter_constraints = {
        "base": [HasMethods(["fit", "predict_proba"]), None],
        "n_rounds": [Interval(Integral, 1, None, closed="left")],
        "max_fraction": [Interval(Real, 0, 1, closed="right")],
        "target_weight": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, *, base=None, n_rounds: int = 5, max_fraction: float = 0.6,
                 target_weight: float = 0.5):
        self.base = base
        self.n_rounds = n_rounds
        self.max_fraction = max_fraction
        self.target_weight = target_weight

    def fit(self, X, y, *, X_target=None):
        """Fit prototypes on the source, then self-train them on the target.

        Parameters
        ----------
        X : np.ndarray [shape=(n_source, n_features)]
        y : array-like [shape=(n_source,)]
        X_target : np.ndarray [shape=(n_target, n_features)], optional
            Unlabelled; without it the model is the plain source prototype classifier.

        Returns
        -------
        self
        """
        from ..fewshot.prototypes import PrototypeClassifier

        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        model = clone(self.base if self.base is not None else PrototypeClassifier()).fit(X, y)
        self.classes_ = model.classes_
        self.source_prototypes_ = model.prototypes_.copy()
        self.n_pseudo_labelled_ = np.zeros(len(self.classes_), dtype=np.int64)
        if X_target is not None:
            Xt = validate_data(self, X_target, dtype=np.float64, reset=False)
            # The prototype space (normalised, centred, whitened on the source support)
            # is the model's own; prototypes are means in it.
            Zt = model._preprocess(Xt)
            for round_ in range(1, self.n_rounds + 1):
                kept, codes = self._confident(model.predict_proba(Xt), round_)
                prototypes = self.source_prototypes_.copy()
                counts = np.bincount(codes, minlength=len(self.classes_))
                sums = np.zeros_like(prototypes)
                np.add.at(sums, codes, Zt[kept])
                present = counts > 0
                target_means = sums[present] / counts[present, None]
                prototypes[present] = (
                    (1 - self.target_weight) * prototypes[present]
                    + self.target_weight * target_means
                )
                model.prototypes_ = prototypes
                self.n_pseudo_labelled_ = counts
        self.model_ = model
        return self

    def _confident(self, P: np.ndarray, round_: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the kept target items and their predicted class codes."""
        fraction = self.max_fraction * round_ / self.n_rounds
        predicted = P.argmax(axis=1)
        confidence = P.max(axis=1)
        kept = []
        for code in np.unique(predicted):
            members = np.flatnonzero(predicted == code)
            n_keep = int(np.ceil(fraction * len(members)))
            kept.append(members[np.argsort(-confidence[members], kind="stable")[:n_keep]])
        kept = np.concatenate(kept)
        return kept, predicted[kept]

    def predict_proba(self, X) -> np.ndarray:
        """Softmax over negative squared distances to the adapted prototypes.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """The class of the nearest adapted prototype.

        Returns
        -------
        labels : np.ndarray [shape=(n,)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.predict(X)

    def decision_function(self, X) -> np.ndarray:
        """See :meth:`earmark.fewshot.PrototypeClassifier.decision_function`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.decision_function(X)

    def is_unknown(self, X) -> np.ndarray:
        """True where a query is far from every prototype (threshold from the source).

        Returns
        -------
        mask : np.ndarray [shape=(n,), dtype=bool]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.is_unknown(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = False
        return tags
