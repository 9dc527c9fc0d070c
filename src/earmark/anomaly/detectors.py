"""One-class detectors: learn the normal set, score how far new embeddings lie from it.

Each detector is a scikit-learn estimator fitted on normal embeddings only (clip
embeddings, or the frame embeddings of normal recordings stacked into one matrix) and
answers :meth:`score_samples` with an **anomaly score per row, higher = more anomalous**.
Every detector first standardises each dimension by the normal set's mean and spread,
so that no single large-valued dimension of a backend decides the distance.

* :class:`KNNDetector`: distance to the k-th nearest normal embedding (the embedding
  baseline of recent DCASE anomaly tasks).
* :class:`GaussianDetector`: Mahalanobis distance to the normal set, with a
  Ledoit-Wolf shrunk covariance (few normal items, many dimensions).
* :class:`MixtureDetector`: negative log-likelihood under a diagonal Gaussian mixture.
* :class:`PCADetector`: reconstruction error after projecting on the normal set's
  principal subspace (a linear autoencoder).

Fitted state is plain arrays (:meth:`get_state` / :meth:`from_state`), which is how an
anomaly model stores them in the one model file (no pickle, no skops).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError

__all__ = ["KNNDetector", "GaussianDetector", "MixtureDetector", "PCADetector", "DETECTORS",
           "make_detector"]


class _Standardised(OutlierMixin):
    """Shared (a mixin; each detector also derives from BaseEstimator): per-dimension standardisation on the normal set and the state round trip."""

    #: Learned arrays saved in a model file, besides ``mean_`` and ``scale_``.
    _state: tuple[str, ...] = ()

    def _standardise_fit(self, X) -> np.ndarray:
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if not np.isfinite(X).all():
            raise ParameterError("the normal set holds NaN or infinite values")
        self.mean_ = X.mean(axis=0)
        spread = X.std(axis=0)
        # A dimension constant over the normal set would divide by zero; a floor relative
        # to the typical spread keeps a change in it visible without letting it dominate.
        floor = max(float(np.median(spread)) * 1e-2, 1e-8)
        self.scale_ = np.maximum(spread, floor)
        return (X - self.mean_) / self.scale_

    def _standardise(self, X) -> np.ndarray:
        check_is_fitted(self, "mean_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) / self.scale_

    def decision_function(self, X) -> np.ndarray:
        """scikit-learn's outlier convention: negative for outliers (``-score_samples``)."""
        return -self.score_samples(X)

    def predict(self, X) -> np.ndarray:
        """+1 for rows scored below the 99th percentile of the normal set, -1 above."""
        check_is_fitted(self, "train_quantile_")
        return np.where(self.score_samples(X) > self.train_quantile_, -1, 1)

    def _finish_fit(self, Z) -> None:
        self.train_quantile_ = float(np.quantile(self._score_standardised(Z), 0.99))

    def get_state(self) -> dict[str, np.ndarray]:
        """Every fitted array, by name (what a model file stores)."""
        check_is_fitted(self, "mean_")
        names = ("mean_", "scale_", *self._state)
        state = {name: np.asarray(getattr(self, name)) for name in names}
        state["train_quantile_"] = np.asarray(self.train_quantile_)
        return state

    @classmethod
    def from_state(cls, params: dict, state: dict[str, np.ndarray]):
        """A fitted detector from its parameters and :meth:`get_state` arrays.

        Raises
        ------
        ParameterError
            Missing, non-finite or inconsistent arrays.
        """
        detector = cls(**params)
        names = ("mean_", "scale_", *cls._state, "train_quantile_")
        for name in names:
            if name not in state:
                raise ParameterError(f"{cls.__name__} state lacks {name}")
            value = np.asarray(state[name])
            if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
                raise ParameterError(f"{cls.__name__} state {name} is not finite numbers")
            setattr(detector, name, value.astype(np.float64))
        detector.train_quantile_ = float(detector.train_quantile_)
        d = detector.mean_.shape
        if len(d) != 1 or detector.scale_.shape != d or not (detector.scale_ > 0).all():
            raise ParameterError(f"{cls.__name__} state: mean and scale do not match")
        detector.n_features_in_ = d[0]
        detector._check_state()
        return detector

    def _check_state(self) -> None:  # pragma: no cover - overridden
        pass

    def score_samples(self, X) -> np.ndarray:
        """Anomaly score of each row, higher = further from the normal set.

        Parameters
        ----------
        X : np.ndarray [shape=(n, dimension)]

        Returns
        -------
        np.ndarray [shape=(n,)]
        """
        return self._score_standardised(self._standardise(X))


class KNNDetector(_Standardised, BaseEstimator):
    """Distance to the k-th nearest normal embedding, after standardisation.

    Parameters
    ----------
    n_neighbors : int
        Which neighbour's distance is the score (1: the nearest). Training rows are
        never their own neighbour when the training set is scored.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> detector = KNNDetector().fit(rng.normal(size=(200, 8)))
    >>> near, far = detector.score_samples(np.r_[np.zeros((1, 8)), np.full((1, 8), 5.0)])
    >>> bool(far > near)
    True
    """

    _state = ("normal_",)

    def __init__(self, *, n_neighbors: int = 1):
        self.n_neighbors = n_neighbors

    def fit(self, X, y=None):
        if not isinstance(self.n_neighbors, (int, np.integer)) or self.n_neighbors < 1:
            raise ParameterError(f"expected n_neighbors >= 1, got {self.n_neighbors!r}")
        Z = self._standardise_fit(X)
        self.normal_ = Z
        self.train_quantile_ = float(np.quantile(self._distances(Z, exclude_self=True), 0.99))
        return self

    def _distances(self, Z, *, exclude_self: bool = False) -> np.ndarray:
        from sklearn.metrics import pairwise_distances_chunked

        k = min(self.n_neighbors + int(exclude_self), len(self.normal_)) - 1
        out = []
        for chunk in pairwise_distances_chunked(Z, self.normal_, metric="sqeuclidean"):
            out.append(np.partition(chunk, k, axis=1)[:, k])
        return np.sqrt(np.maximum(np.concatenate(out), 0.0))

    def _score_standardised(self, Z) -> np.ndarray:
        return self._distances(Z)

    def _check_state(self) -> None:
        if self.normal_.ndim != 2 or self.normal_.shape[1] != self.n_features_in_ or not len(self.normal_):
            raise ParameterError("KNNDetector state: normal set does not match its dimension")


class GaussianDetector(_Standardised, BaseEstimator):
    """Mahalanobis distance to the normal set (Ledoit-Wolf shrunk covariance).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> detector = GaussianDetector().fit(rng.normal(size=(200, 8)))
    >>> bool(detector.score_samples(np.full((1, 8), 4.0))[0] > 5)
    True
    """

    _state = ("location_", "precision_")

    def __init__(self):
        pass

    def fit(self, X, y=None):
        from sklearn.covariance import LedoitWolf

        Z = self._standardise_fit(X)
        estimate = LedoitWolf().fit(Z)
        self.location_ = estimate.location_
        self.precision_ = estimate.precision_
        self._finish_fit(Z)
        return self

    def _score_standardised(self, Z) -> np.ndarray:
        centred = Z - self.location_
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision_, centred), 0.0))

    def _check_state(self) -> None:
        d = self.n_features_in_
        if self.location_.shape != (d,) or self.precision_.shape != (d, d):
            raise ParameterError("GaussianDetector state: shapes do not match the dimension")


class MixtureDetector(_Standardised, BaseEstimator):
    """Negative log-likelihood under a diagonal Gaussian mixture of the normal set.

    Parameters
    ----------
    n_components : int
        At most; fewer when the normal set is small (one per 10 rows).
    random_state : int or None

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> detector = MixtureDetector(n_components=2).fit(rng.normal(size=(200, 4)))
    >>> scores = detector.score_samples(np.r_[np.zeros((1, 4)), np.full((1, 4), 6.0)])
    >>> bool(scores[1] > scores[0])
    True
    """

    _state = ("weights_", "means_", "variances_")

    def __init__(self, *, n_components: int = 4, random_state: int | None = 0):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.mixture import GaussianMixture

        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ParameterError(f"expected n_components >= 1, got {self.n_components!r}")
        Z = self._standardise_fit(X)
        n = max(1, min(int(self.n_components), len(Z) // 10))
        mixture = GaussianMixture(n, covariance_type="diag", reg_covar=1e-3,
                                  random_state=self.random_state).fit(Z)
        self.weights_, self.means_, self.variances_ = mixture.weights_, mixture.means_, mixture.covariances_
        self._finish_fit(Z)
        return self

    def _score_standardised(self, Z) -> np.ndarray:
        from scipy.special import logsumexp

        diff = Z[:, None, :] - self.means_[None]
        log_density = -0.5 * ((diff ** 2 / self.variances_[None]).sum(-1)
                              + np.log(2 * np.pi * self.variances_).sum(-1)[None])
        return -logsumexp(log_density + np.log(self.weights_)[None], axis=1)

    def _check_state(self) -> None:
        d, k = self.n_features_in_, len(self.weights_)
        if self.means_.shape != (k, d) or self.variances_.shape != (k, d) or k < 1 \
                or not (self.variances_ > 0).all() or not (self.weights_ > 0).all():
            raise ParameterError("MixtureDetector state: shapes or variances are invalid")


class PCADetector(_Standardised, BaseEstimator):
    """Reconstruction error after projection on the normal set's principal subspace.

    A linear autoencoder: what the normal set's main directions cannot reconstruct is
    what is new.

    Parameters
    ----------
    variance : float
        Fraction of the normal set's variance the subspace keeps.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 6))
    >>> detector = PCADetector().fit(X)
    >>> off = rng.normal(size=(1, 6))
    >>> bool(detector.score_samples(off)[0] > detector.score_samples(X[:1])[0])
    True
    """

    _state = ("components_",)

    def __init__(self, *, variance: float = 0.9):
        self.variance = variance

    def fit(self, X, y=None):
        if not 0 < self.variance < 1:
            raise ParameterError(f"expected variance in (0, 1), got {self.variance!r}")
        Z = self._standardise_fit(X)
        centred = Z - Z.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        explained = np.cumsum(singular ** 2) / max(float((singular ** 2).sum()), 1e-12)
        keep = int(np.searchsorted(explained, self.variance) + 1)
        self.components_ = vt[:min(keep, len(vt))]
        self._finish_fit(Z)
        return self

    def _score_standardised(self, Z) -> np.ndarray:
        # Z is already centred on the normal mean by the standardisation.
        residual = Z - (Z @ self.components_.T) @ self.components_
        return np.sqrt((residual ** 2).mean(axis=1))

    def _check_state(self) -> None:
        if self.components_.ndim != 2 or self.components_.shape[1] != self.n_features_in_:
            raise ParameterError("PCADetector state: components do not match the dimension")


#: Detector names accepted by :func:`make_detector` and ``earmark anomaly fit --detector``.
DETECTORS = {"knn": KNNDetector, "gaussian": GaussianDetector, "mixture": MixtureDetector,
             "pca": PCADetector}


def make_detector(name: str, **params):
    """A new detector by name (see :data:`DETECTORS`).

    Examples
    --------
    >>> make_detector("knn", n_neighbors=3)
    KNNDetector(n_neighbors=3)
    """
    if name not in DETECTORS:
        raise ParameterError(f"expected a detector in {sorted(DETECTORS)}, got {name!r}")
    return DETECTORS[name](**params)
