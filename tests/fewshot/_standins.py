"""Small stand-in classifiers for the episode tests: real scikit-learn estimators, so the
episodes clone and fit them like any other, with known behaviour to test against."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class MeanPrototypes(ClassifierMixin, BaseEstimator):
    """Nearest class mean of standardised embeddings; ``decision_function`` is minus the
    distance, and ``is_unknown`` flags items farther than any support item was from its
    own class mean (times ``margin``)."""

    def __init__(self, *, margin: float = 1.0):
        self.margin = margin

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        Z = (X - self.mean_) / self.scale_
        self.prototypes_ = np.stack([Z[codes == c].mean(axis=0) for c in range(len(self.classes_))])
        own = self._distances(Z)[np.arange(len(Z)), codes]
        self.threshold_ = float(own.max() * self.margin) if own.max() > 0 else np.inf
        return self

    def _distances(self, Z):
        squared = (Z**2).sum(1)[:, None] - 2 * Z @ self.prototypes_.T + (self.prototypes_**2).sum(1)
        return np.sqrt(np.maximum(squared, 0.0))

    def transform(self, X):
        check_is_fitted(self)
        return self._distances((np.asarray(X, dtype=float) - self.mean_) / self.scale_)

    def decision_function(self, X):
        return -self.transform(X)

    def predict(self, X):
        return self.classes_[self.transform(X).argmin(axis=1)]

    def is_unknown(self, X):
        return self.transform(X).min(axis=1) > self.threshold_


class RandomScores(ClassifierMixin, BaseEstimator):
    """Guesses labels and known-ness at random: the floor every figure is compared with."""

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        # Seeded by the support set too: each episode guesses anew, yet repeatably.
        fingerprint = int(np.abs(np.asarray(X, dtype=float)).sum() * 1000) % 2**32
        self.rng_ = np.random.default_rng([self.random_state, fingerprint])
        return self

    def decision_function(self, X):
        return self.rng_.random((len(X), len(self.classes_)))

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class ParityLevels(MeanPrototypes):
    """Mean prototypes that also answer at a coarse level, with a deliberately wrong
    coarse answer ("odd" for everything), so a test can tell which answer was scored."""

    def predict_levels(self, X):
        digits = self.predict(X)
        return {"digit": digits, "parity": np.full(len(digits), "odd", dtype=object)}
