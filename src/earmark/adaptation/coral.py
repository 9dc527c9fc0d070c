"""CORAL: align the target's covariance with the source's (second-order alignment).

Sun, Feng and Saenko (2016), "Return of frustratingly easy domain adaptation", whiten
the source with its own covariance and re-colour it with the target's, then retrain.
Here the map goes the other way, target into source, so that a classifier already
trained on the source reads adapted target embeddings without retraining: each domain is
standardised with its own statistics, the target's correlations are mapped onto the
source's, and the result gets the source's mean and scale back.

One choice differs from the paper, because the classifier is not retrained, and one
detail of scale matters:

* the linear map is the symmetric one, ``A = Ct^-1/2 (Ct^1/2 Cs Ct^1/2)^1/2 Ct^-1/2``
  (the Gaussian optimal-transport, or Monge, map: ``A Ct A = Cs`` like the paper's
  ``Ct^-1/2 Cs^1/2``, but with the least displacement). The paper's whitening and
  re-colouring also rotates the target, which a classifier retrained on the mapped data
  absorbs and a fixed one does not: on FSDD speakers it cost 3 to 8 points more;
* after standardisation the paper's ``+ I`` is a fixed share of every dimension's
  variance, so ``regularization=1.0`` halves the weight of the measured correlations
  (with a few hundred items in 1024 dimensions the raw matrices are singular);
  ``"auto"`` shrinks by each domain's Ledoit-Wolf estimate instead.

On BirdNET embeddings of the shared datasets CORAL did worse than per-domain
standardisation alone, and worse the less it was regularised (Ledoit-Wolf shrinks FSDD's
matrices by only 2 to 8 %): 1024 correlations estimated from a few hundred items move the
target more by noise than by signal. See ``benchmarks/adaptation.py``.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .standardize import DomainStandardizer, _check_weights

__all__ = ["CoralAligner"]


class CoralAligner(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Map target embeddings onto the source's mean, scale and correlations.

    ``transform(X) = (X - target_mean_) @ matrix_ + source_mean_``

    Parameters
    ----------
    regularization : "auto" or float >= 0
        ``"auto"``: shrink each domain's correlation matrix towards the identity by its
        Ledoit-Wolf shrinkage. A number: add it times the identity (1.0 is the paper's
        ``+ I``; 0 trusts the measured correlations fully).

    Attributes
    ----------
    source_mean_, target_mean_ : np.ndarray [shape=(n_features,)]
    matrix_ : np.ndarray [shape=(n_features, n_features)]
        ``diag(1 / target_scale) A diag(source_scale)``, with ``A`` the map between the
        regularised correlation matrices. The identity when fitted without ``X_target``.
    shrinkage_ : tuple of float
        Weight of the identity in the source's and the target's matrix.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])
    >>> target = rng.normal(size=(400, 2)) * [2.0, 0.5] + 3
    >>> moved = CoralAligner(regularization=0.0).fit(source, X_target=target).transform(target)
    >>> np.allclose(np.cov(moved.T), np.cov(source.T), atol=0.01)
    True
    """

    _parameter_constraints = {
        "regularization": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")]
    }

    def __init__(self, *, regularization: float | str = 1.0):
        self.regularization = regularization

    def fit(self, X, y=None, *, X_target=None, sample_weight=None):
        """Learn the map from the target's statistics to the source's.

        Parameters
        ----------
        X : np.ndarray [shape=(n_source, n_features)]
            Source embeddings.
        y : ignored
        X_target : np.ndarray [shape=(n_target, n_features)], optional
            Unlabelled target embeddings.
        sample_weight : np.ndarray [shape=(n_source,)], optional
            Weights of the source items in its statistics (see
            :meth:`DomainStandardizer.fit`).

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        weights = _check_weights(sample_weight, len(X))
        standardizer = DomainStandardizer().fit(X, sample_weight=weights)
        self.source_mean_ = standardizer.source_mean_
        if X_target is None:
            self.target_mean_ = self.source_mean_
            self.matrix_ = np.eye(X.shape[1])
            self.shrinkage_ = (0.0, 0.0)
            return self
        Xt = validate_data(self, X_target, dtype=np.float64, reset=False, ensure_min_samples=2)
        target = DomainStandardizer().fit(Xt)
        self.target_mean_ = target.source_mean_
        source_scale, target_scale = standardizer.source_scale_, target.source_scale_
        Cs, source_shrinkage = self._correlation(X, self.source_mean_, source_scale, weights)
        Ct, target_shrinkage = self._correlation(Xt, self.target_mean_, target_scale)
        self.shrinkage_ = (source_shrinkage, target_shrinkage)
        root, inverse_root = _matrix_power(Ct, 0.5), _matrix_power(Ct, -0.5)
        align = inverse_root @ _matrix_power(root @ Cs @ root, 0.5) @ inverse_root
        self.matrix_ = (align / target_scale[:, None]) * source_scale[None, :]
        return self

    def _correlation(self, X, mean, scale, weights=None) -> tuple[np.ndarray, float]:
        """The regularised correlation matrix and the weight of the identity in it."""
        from sklearn.covariance import ledoit_wolf_shrinkage

        Z = (X - mean) / scale
        if weights is not None:
            # Rows scaled by sqrt(n w / sum w): Z.T Z is then the weighted scatter.
            Z = Z * np.sqrt(len(Z) * weights / weights.sum())[:, None]
        C = Z.T @ Z / max(len(Z) - 1, 1)
        identity = np.eye(C.shape[0]) * (np.trace(C) / C.shape[0])
        if self.regularization == "auto":
            weight = float(ledoit_wolf_shrinkage(Z, assume_centered=True))
        else:
            weight = float(self.regularization) / (1.0 + float(self.regularization))
        # (C + r I) / (1 + r) is the paper's C + r I rescaled; the map is scale-free.
        return (1 - weight) * C + weight * identity, weight

    def transform(self, X) -> np.ndarray:
        """Target embeddings with the source's second-order statistics.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]

        Returns
        -------
        np.ndarray [shape=(n, n_features)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.target_mean_) @ self.matrix_ + self.source_mean_


def _matrix_power(C: np.ndarray, power: float) -> np.ndarray:
    """``C ** power`` of a symmetric positive semi-definite matrix, tiny eigenvalues floored."""
    eigenvalues, vectors = np.linalg.eigh(C)
    floor = max(float(eigenvalues.max()), 1e-300) * 1e-10
    return (vectors * np.maximum(eigenvalues, floor) ** power) @ vectors.T
