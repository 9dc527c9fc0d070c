"""Per-domain standardisation: give target embeddings the source's mean and scale.

The simplest unsupervised adaptation, and often a strong one on frozen embeddings: a
new microphone or a softer dynamic moves the mean embedding and stretches some
dimensions; standardising each domain with its own statistics undoes first-order shifts
(Li et al. 2016, "AdaBN", applied to embeddings instead of batch-norm layers).

The adapters of this package share one shape: ``fit(X, y=None, *, X_target)`` learns
from source embeddings ``X`` and unlabelled target embeddings ``X_target``, and
``transform`` maps **target** embeddings into the source's statistics, so a classifier
trained on the source reads them unchanged (:func:`earmark.adaptation.adapt_model`
places the adapter first in a model's pipeline). Target labels never enter.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError

__all__ = ["DomainStandardizer"]


class DomainStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Map target embeddings onto the source's per-dimension mean and scale.

    ``transform(X) = (X - target_mean_) / target_scale_ * source_scale_ + source_mean_``

    Parameters
    ----------
    with_scale : bool
        Also match per-dimension standard deviations (else only means).

    Attributes
    ----------
    source_mean_, source_scale_ : np.ndarray [shape=(n_features,)]
    target_mean_, target_scale_ : np.ndarray [shape=(n_features,)]
        Without ``X_target`` in :meth:`fit`, the source's own: the map is the identity.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> source, target = rng.normal(0, 1, (100, 3)), rng.normal(5, 3, (80, 3))
    >>> adapter = DomainStandardizer().fit(source, X_target=target)
    >>> moved = adapter.transform(target)
    >>> np.allclose(moved.mean(0), source.mean(0)), np.allclose(moved.std(0), source.std(0))
    (True, True)
    """

    def __init__(self, *, with_scale: bool = True):
        self.with_scale = with_scale

    def fit(self, X, y=None, *, X_target=None, sample_weight=None):
        """Learn the source's and the target's statistics.

        Parameters
        ----------
        X : np.ndarray [shape=(n_source, n_features)]
            Source embeddings (what the classifier was trained on).
        y : ignored
            Present for the scikit-learn API; labels are not needed.
        X_target : np.ndarray [shape=(n_target, n_features)], optional
            Unlabelled target embeddings.
        sample_weight : np.ndarray [shape=(n_source,)], optional
            Weights of the source items in its statistics. Under label shift, weighting
            each source item by ``target prior / source prior`` of its class gives the
            statistics the source would have with the target's class proportions
            (:class:`~earmark.adaptation.LabelShiftAdapter`), so aligning the means no
            longer moves one class onto another.

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        weights = _check_weights(sample_weight, len(X))
        self.source_mean_, self.source_scale_ = self._statistics(X, weights)
        if X_target is None:
            self.target_mean_, self.target_scale_ = self.source_mean_, self.source_scale_
        else:
            Xt = validate_data(self, X_target, dtype=np.float64, reset=False, ensure_min_samples=2)
            self.target_mean_, self.target_scale_ = self._statistics(Xt)
        return self

    @classmethod
    def from_source_statistics(cls, mean, scale, X_target, *, with_scale: bool = True):
        """Fit from recorded source statistics, when the source items are gone.

        A model's first step is often a ``StandardScaler`` fitted on the training set:
        its ``mean_`` and ``scale_`` are the source statistics this adapter needs.

        Parameters
        ----------
        mean, scale : np.ndarray [shape=(n_features,)]
        X_target : np.ndarray [shape=(n_target, n_features)]

        Returns
        -------
        DomainStandardizer
            Fitted.
        """
        adapter = cls(with_scale=with_scale)
        mean = np.asarray(mean, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64) if scale is not None else np.ones_like(mean)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise ParameterError(
                f"expected mean and scale of one shape (n_features,), got {mean.shape} "
                f"and {scale.shape}"
            )
        Xt = validate_data(adapter, X_target, dtype=np.float64, ensure_min_samples=2)
        if Xt.shape[1] != mean.shape[0]:
            raise ParameterError(
                f"expected target embeddings of dimension {mean.shape[0]}, got {Xt.shape[1]}"
            )
        adapter.source_mean_ = mean
        adapter.source_scale_ = scale if with_scale else np.ones_like(mean)
        adapter.target_mean_, adapter.target_scale_ = adapter._statistics(Xt)
        return adapter

    def _statistics(self, X: np.ndarray, weights=None) -> tuple[np.ndarray, np.ndarray]:
        mean = np.average(X, axis=0, weights=weights)
        if not self.with_scale:
            return mean, np.ones_like(mean)
        scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weights))
        # A dimension constant in one domain carries nothing to match; leave it unscaled.
        return mean, np.where(scale > 1e-12 * max(float(scale.max()), 1.0), scale, 1.0)

    def transform(self, X) -> np.ndarray:
        """Target embeddings in the source's statistics.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]

        Returns
        -------
        np.ndarray [shape=(n, n_features)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.target_mean_) / self.target_scale_ * self.source_scale_ + self.source_mean_


def _check_weights(sample_weight, n: int):
    """None, or non-negative weights of n items with a positive sum."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,) or not np.isfinite(weights).all() or (weights < 0).any() \
            or weights.sum() <= 0:
        raise ParameterError(
            f"expected {n} finite, non-negative sample weights, not all zero; got shape "
            f"{weights.shape}, sum {float(np.nansum(weights)) if weights.size else 0.0:g}"
        )
    return weights
