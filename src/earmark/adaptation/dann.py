"""Domain-adversarial training (DANN) on frozen embeddings.

Ganin et al. (2016), "Domain-adversarial training of neural networks": a small network
maps embeddings to features from which a label head predicts the class (trained on the
labelled source) while a domain head, behind a gradient-reversal layer, tries to tell
source from target features (trained on both, without target labels). The reversed
gradient pushes the features to carry the class and not the domain.

Here the backbone stays frozen: the network is one hidden layer over standardised clip
embeddings, so a fit takes seconds on a CPU. torch is needed to fit only; the fitted
weights are numpy arrays and prediction is plain numpy, so the model saves with
:mod:`skops.io` and runs where torch is not installed.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError

__all__ = ["DANNClassifier"]


class DANNClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer classifier whose features are trained not to reveal the domain.

    Parameters
    ----------
    hidden_units : int
        Width of the shared feature layer.
    domain_units : int
        Width of the domain head's hidden layer.
    domain_weight : float >= 0
        Final weight of the reversed domain gradient; it ramps up from 0 with the
        schedule of the paper. 0 trains a plain network (the no-adaptation control).
    dropout : float in [0, 1)
        On the features, before the label head.
    epochs : int
        Passes over the source items.
    batch_size : int
        Source items per step (and as many target items, drawn with replacement).
    learning_rate, weight_decay : float
        Adam's.
    random_state : int or None

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    mean_, scale_ : np.ndarray [shape=(n_features,)]
        Standardisation, from source and target items pooled (no labels involved).
    weights_ : dict
        ``W1`` [shape=(n_features, hidden_units)], ``b1``, ``W2``
        [shape=(hidden_units, n_classes)], ``b2``.
    history_ : dict
        Mean label and domain loss per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 30)
    >>> source = rng.normal(size=(60, 4)) + (y == "b")[:, None] * 2
    >>> target = rng.normal(size=(60, 4)) + (y == "b")[:, None] * 2 + 1
    >>> model = DANNClassifier(hidden_units=8, epochs=20).fit(source, y, X_target=target)
    >>> model.predict_proba(target).shape
    (60, 2)
    """

    _parameter_constraints = {
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "domain_units": [Interval(Integral, 1, None, closed="left")],
        "domain_weight": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        hidden_units: int = 256,
        domain_units: int = 64,
        domain_weight: float = 1.0,
        dropout: float = 0.2,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        random_state: int | None = 0,
    ):
        self.hidden_units = hidden_units
        self.domain_units = domain_units
        self.domain_weight = domain_weight
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    def fit(self, X, y, *, X_target=None):
        """Train on labelled source items and unlabelled target items.

        Parameters
        ----------
        X : np.ndarray [shape=(n_source, n_features)]
        y : array-like [shape=(n_source,)]
        X_target : np.ndarray [shape=(n_target, n_features)], optional
            Without it, no domain head is trained.

        Returns
        -------
        self
        """
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ParameterError(
                f"expected examples of at least 2 classes, got 1 class ({self.classes_[0]!r})"
            )
        Xt = None
        if X_target is not None:
            Xt = validate_data(self, X_target, dtype=np.float64, reset=False, ensure_min_samples=2)
        pooled = X if Xt is None else np.concatenate([X, Xt])
        self.mean_ = pooled.mean(axis=0)
        scale = pooled.std(axis=0)
        self.scale_ = np.where(scale > 1e-12 * max(float(scale.max()), 1.0), scale, 1.0)
        from ..training import import_trainer

        _dann_torch = import_trainer(f"{__package__}._dann_torch", "a DANN model")
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        result = _dann_torch.train(
            self._standardise(X),
            codes,
            None if Xt is None or self.domain_weight == 0 else self._standardise(Xt),
            n_classes=len(self.classes_),
            hidden_units=self.hidden_units,
            domain_units=self.domain_units,
            domain_weight=float(self.domain_weight),
            dropout=float(self.dropout),
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            seed=seed,
        )
        self.weights_ = {key: result[key] for key in ("W1", "b1", "W2", "b2")}
        self.history_ = {key: list(result[key]) for key in ("label_loss", "domain_loss")}
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def features(self, X) -> np.ndarray:
        """The learned domain-invariant features.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]

        Returns
        -------
        np.ndarray [shape=(n, hidden_units)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.maximum(self._standardise(X) @ self.weights_["W1"] + self.weights_["b1"], 0.0)

    def decision_function(self, X) -> np.ndarray:
        """Label-head logits.

        Returns
        -------
        np.ndarray [shape=(n, n_classes)], or (n,) for two classes (second minus first).
        """
        logits = self.features(X) @ self.weights_["W2"] + self.weights_["b2"]
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X) -> np.ndarray:
        """Softmax of the label head.

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
        """
        logits = self.features(X) @ self.weights_["W2"] + self.weights_["b2"]
        return softmax(logits, axis=1)

    def predict(self, X) -> np.ndarray:
        """Most probable class.

        Returns
        -------
        labels : np.ndarray [shape=(n,)]
        """
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]
