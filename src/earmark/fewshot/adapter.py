"""A small learned projection of frozen embeddings, trained episodically for prototypes.

Longer than ~500 lines: the estimator and its episodic training loop (in NumPy, no
torch needed) are one algorithm, read from top to bottom.

:class:`PrototypicalAdapter` standardises the embeddings, maps them linearly to ``dim``
numbers (optionally plus a one-hidden-layer residual branch) and, optionally, onto the
unit sphere. It is trained on *base* classes with the prototypical loss of Snell et al.
(2017): in each N-way K-shot episode the class prototypes are the means of the support
items, and the loss is the cross-entropy of a softmax over negative squared euclidean
distances from each query to the prototypes. The point is to reshape the space so that
class means of classes it has never seen separate better.

Early stopping watches episodes on *validation* classes, held out from the base classes
(never the novel ones), and keeps the best epoch, which may be epoch 0: the untrained
projection (principal components of the base data by default), so an adapter that does
not help does not hurt much either. Whether it helps on new classes is an empirical
question; ``benchmarks/fewshot_adapter.py`` measures it.

torch is needed to fit only. The learned weights are numpy arrays and
:meth:`~PrototypicalAdapter.transform` is plain numpy, so a fitted adapter can be saved
with :mod:`skops.io` and used where torch is not installed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..exceptions import ParameterError
from .episodes import EpisodeSampler

__all__ = ["PrototypicalAdapter"]

# Candidate distance scales tried at initialisation (times 1 / mean squared distance).
_SCALE_GRID = np.geomspace(0.1, 100.0, 31)
# Improvement in validation loss that counts as one (not noise) for early stopping.
_MIN_IMPROVEMENT = 1e-4


class PrototypicalAdapter(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Learn a projection of embeddings under which class prototypes separate.

    Parameters
    ----------
    dim : int
        Output dimension.
    hidden_units : int
        Width of a residual branch ``relu(x W1 + b1) W2`` added to the linear map;
        0 (default) keeps the adapter linear. The branch starts at zero, so training
        starts from the linear map.
    normalize : bool
        Scale each output to unit length (then euclidean distances order pairs as
        cosine distances do). A learned scale multiplies the distances in the loss.
    n_way, n_shot, n_query : int
        Shape of the training episodes: classes, support items per class, query items
        per class (at most). ``n_way`` is lowered to the number of usable classes.
    episodes_per_epoch : int
        Episodes (one optimiser step each) between validation checks.
    max_epochs : int
    patience : int
        Epochs without improvement of the validation loss before stopping.
    learning_rate, weight_decay : float
        For AdamW; weight decay applies to the weight matrices only.
    validation_fraction : float
        Share of the base classes (at least 2) held out for early stopping; 0 trains
        for ``max_epochs`` without validation.
    validation_episodes : int
        Fixed validation episodes drawn once per fit.
    init : {"pca", "random"}
        Start from the principal components of the standardised training classes, or
        from a random Gaussian map.
    random_state : int, RandomState or None
        Seeds the initial weights and the episodes; with the same seed a fit repeats
        bit for bit.

    Attributes
    ----------
    mean_, scale_ : np.ndarray [shape=(n_features_in_,)]
        Standardisation learned on the training data.
    weight_ : np.ndarray [shape=(n_features_in_, dim)]
    bias_ : np.ndarray [shape=(dim,)]
    hidden_weight_ : np.ndarray [shape=(n_features_in_, hidden_units)] or None
    hidden_bias_ : np.ndarray [shape=(hidden_units,)] or None
    output_weight_ : np.ndarray [shape=(hidden_units, dim)] or None
    distance_scale_ : float
        Learned multiplier of squared distances in the loss (not used by transform).
    classes_ : np.ndarray
        Base classes seen in fit.
    train_classes_, validation_classes_ : np.ndarray
        How the base classes were split; classes too small for one episode are in
        neither (a warning names them).
    history_ : dict of str to list of float
        ``"train_loss"`` per epoch (from epoch 1), ``"validation_loss"`` and
        ``"validation_accuracy"`` per epoch from epoch 0 (before training).
    best_epoch_ : int
        Epoch whose weights were kept (0 = untrained projection).
    n_epochs_ : int
        Epochs run.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(rng.normal(size=(8, 16)), 6, axis=0) + rng.normal(size=(48, 16))
    >>> y = np.repeat(np.arange(8), 6)
    >>> adapter = PrototypicalAdapter(dim=4, n_way=3, n_shot=2, n_query=2, max_epochs=3)
    >>> adapter.fit(X, y).transform(X).shape
    (48, 4)
    """

    def __init__(
        self,
        *,
        dim: int = 128,
        hidden_units: int = 0,
        normalize: bool = True,
        n_way: int = 10,
        n_shot: int = 5,
        n_query: int = 5,
        episodes_per_epoch: int = 50,
        max_epochs: int = 100,
        patience: int = 10,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-2,
        validation_fraction: float = 0.2,
        validation_episodes: int = 100,
        init: str = "pca",
        random_state=0,
    ):
        self.dim = dim
        self.hidden_units = hidden_units
        self.normalize = normalize
        self.n_way = n_way
        self.n_shot = n_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.max_epochs = max_epochs
        self.patience = patience
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.validation_episodes = validation_episodes
        self.init = init
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, groups=None):
        """Train on the base classes in ``X``, ``y``.

        Parameters
        ----------
        X : array-like [shape=(n, n_features)]
            Frozen clip embeddings.
        y : array-like [shape=(n,)]
            Base classes.
        groups : array-like [shape=(n,)], optional
            Speakers, sessions or sites: in every episode a class's support and query
            items come from different groups.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            On an invalid parameter, or too few classes for the episodes and the
            validation split; the message says what was expected.
        EarmarkError
            If torch is not installed.
        """
        self._check_params()
        torch = _import_torch()
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        y = column_or_1d(y)
        if groups is not None:
            groups = column_or_1d(np.asarray(groups))
            if groups.shape != y.shape:
                raise ParameterError(f"expected groups of shape {y.shape}, got {groups.shape}")
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        rng = np.random.default_rng(seed)
        self.classes_ = np.unique(y)
        train, validation = self._split_classes(y, groups, rng)
        self.train_classes_, self.validation_classes_ = train, validation

        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        standardized = (X - self.mean_) / self.scale_
        in_train = np.isin(y, train)
        params = self._initial_params(standardized[in_train], rng)

        # Episodes are tens of rows: one thread is fastest, and the result must not
        # depend on how many cores the machine has.
        from ..training import single_thread

        with single_thread():
            params = self._train(torch, standardized, y, groups, params, rng)
        self._store(params)
        return self

    def _check_params(self) -> None:
        def positive_int(name, minimum=1):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
                raise ParameterError(f"{name} must be an int >= {minimum}, got {value!r}")

        for name in ("dim", "n_shot", "n_query", "episodes_per_epoch", "max_epochs"):
            positive_int(name)
        positive_int("n_way", 2)
        positive_int("validation_episodes")
        positive_int("patience")
        positive_int("hidden_units", 0)
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not np.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a non-negative number, got {value!r}")
        fraction = self.validation_fraction
        if not isinstance(fraction, Real) or not 0 <= fraction < 1:
            raise ParameterError(f"validation_fraction must be in [0, 1), got {fraction!r}")
        if self.init not in ("pca", "random"):
            raise ParameterError(f"init must be 'pca' or 'random', got {self.init!r}")
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise ParameterError(f"normalize must be True or False, got {self.normalize!r}")

    def _split_classes(self, y, groups, rng) -> tuple[np.ndarray, np.ndarray]:
        usable = np.array(
            EpisodeSampler(y, shots=self.n_shot, groups=groups, ways=2, queries=1).eligible,
            dtype=y.dtype,
        )
        if usable.size < 2:
            raise ParameterError(
                f"cannot train a prototypical adapter: {self.n_shot}-shot episodes need at "
                f"least 2 classes with {self.n_shot} items plus one in another group, "
                f"got {usable.size} of {self.classes_.size}"
            )
        unusable = np.setdiff1d(self.classes_, usable)
        if unusable.size:
            warnings.warn(
                f"{unusable.size} classes have too few items (or groups) for {self.n_shot}-shot "
                f"episodes and are not used: {', '.join(map(str, unusable[:8]))}"
                f"{' ...' if unusable.size > 8 else ''}",
                stacklevel=3,
            )
        if self.validation_fraction == 0:
            return usable, usable[:0]
        n_validation = max(2, int(round(self.validation_fraction * usable.size)))
        if usable.size - n_validation < 2:
            raise ParameterError(
                f"validation_fraction={self.validation_fraction} needs at least 4 usable "
                f"classes (2 to train, 2 to validate), got {usable.size}; "
                "set validation_fraction=0 to train without early stopping"
            )
        held_out = np.zeros(usable.size, dtype=bool)
        held_out[rng.choice(usable.size, n_validation, replace=False)] = True
        return usable[~held_out], usable[held_out]

    def _initial_params(self, standardized: np.ndarray, rng) -> dict[str, np.ndarray]:
        n_features = standardized.shape[1]
        weight = rng.normal(0.0, 1.0 / np.sqrt(n_features), size=(n_features, self.dim))
        if self.init == "pca":
            centered = standardized - standardized.mean(axis=0)
            _, _, components = np.linalg.svd(centered, full_matrices=False)
            k = min(self.dim, components.shape[0])
            # Directions beyond the data's rank start small, so the start is the PCA map.
            weight *= 1e-2
            weight[:, :k] = components[:k].T
        params = {
            "weight": weight.astype(np.float32),
            "bias": np.zeros(self.dim, dtype=np.float32),
        }
        if self.hidden_units:
            params["hidden_weight"] = rng.normal(
                0.0, np.sqrt(2.0 / n_features), size=(n_features, self.hidden_units)
            ).astype(np.float32)
            params["hidden_bias"] = np.zeros(self.hidden_units, dtype=np.float32)
            # Zero output: training starts from the linear map and grows the branch.
            params["output_weight"] = np.zeros((self.hidden_units, self.dim), dtype=np.float32)
        return params

    def _train(self, torch, standardized, y, groups, params, rng) -> dict:
        X_all = torch.from_numpy(np.ascontiguousarray(standardized, dtype=np.float32))
        codes = np.searchsorted(self.classes_, y)
        train_sampler = self._sampler(y, groups, self.train_classes_, rng)
        validation = []
        if self.validation_classes_.size:
            sampler = self._sampler(y, groups, self.validation_classes_, rng)
            validation = [
                _Task.of(sampler.episode(i), codes) for i in range(self.validation_episodes)
            ]

        tensors = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
        first = [_Task.of(train_sampler.episode(i), codes) for i in range(10)]
        log_scale = np.log(self._initial_scale(params, standardized, first))
        tensors["log_scale"] = torch.tensor(np.float32(log_scale), requires_grad=True)
        optimizer = _AdamW(
            torch,
            tensors,
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            decayed=[name for name in tensors if name.endswith("weight")],
        )

        def evaluate():
            with torch.no_grad():
                Z = _torch_forward(torch, tensors, X_all, self.normalize)
                results = [
                    _episode_loss(torch, Z[task.support], Z[task.query], task, tensors["log_scale"])
                    for task in validation
                ]
            return (
                float(np.mean([loss.item() for loss, _ in results])),
                float(np.mean([accuracy for _, accuracy in results])),
            )

        history = {"train_loss": [], "validation_loss": [], "validation_accuracy": []}
        best = {name: t.detach().clone() for name, t in tensors.items()}
        best_loss, best_epoch, epoch, step = np.inf, 0, 0, 0
        if validation:
            best_loss, accuracy = evaluate()
            history["validation_loss"].append(best_loss)
            history["validation_accuracy"].append(accuracy)
        for epoch in range(1, self.max_epochs + 1):
            losses = []
            for _ in range(self.episodes_per_epoch):
                task = _Task.of(train_sampler.episode(step), codes)
                step += 1
                # One forward pass over support and query together.
                rows = np.concatenate([task.support, task.query])
                Z = _torch_forward(torch, tensors, X_all[rows], self.normalize)
                n_support = len(task.support)
                loss, _ = _episode_loss(
                    torch, Z[:n_support], Z[n_support:], task, tensors["log_scale"]
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            history["train_loss"].append(float(np.mean(losses)))
            if not validation:
                best_epoch = epoch
                best = {name: t.detach().clone() for name, t in tensors.items()}
                continue
            loss, accuracy = evaluate()
            history["validation_loss"].append(loss)
            history["validation_accuracy"].append(accuracy)
            if loss < best_loss - _MIN_IMPROVEMENT:
                best_loss, best_epoch = loss, epoch
                best = {name: t.detach().clone() for name, t in tensors.items()}
            elif epoch - best_epoch >= self.patience:
                break
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.n_epochs_ = epoch
        return {name: t.numpy() for name, t in best.items()}

    def _sampler(self, y, groups, classes, rng) -> EpisodeSampler:
        sampler = EpisodeSampler(
            y,
            shots=self.n_shot,
            groups=groups,
            ways=min(self.n_way, len(classes)),
            queries=self.n_query,
            classes=classes,
            seed=int(rng.integers(2**31 - 1)),
        )
        if sampler.problem is not None:
            raise ParameterError(f"cannot train a prototypical adapter: {sampler.problem}")
        return sampler

    def _initial_scale(self, params, standardized, episodes) -> float:
        """The distance scale that minimises the loss of the untrained map on a few
        training episodes, so epoch 0 is a fair baseline for early stopping."""
        Z = _numpy_forward(params, standardized, self.normalize).astype(np.float64)
        squared = []
        for episode in episodes:
            onehot = episode.onehot.astype(np.float64)
            prototypes = (onehot.T @ Z[episode.support]) / onehot.sum(axis=0)[:, None]
            d = ((Z[episode.query][:, None, :] - prototypes[None]) ** 2).sum(axis=-1)
            squared.append((d, episode.query_y))
        typical = np.mean([d.mean() for d, _ in squared])
        candidates = _SCALE_GRID / (typical if typical > 0 else 1.0)
        from scipy.special import log_softmax

        losses = np.zeros(len(candidates))
        for d, target in squared:
            # All candidate scales at once: (n_candidates, n_query, ways).
            log_p = log_softmax(-candidates[:, None, None] * d[None], axis=2)
            losses -= log_p[:, np.arange(len(target)), target].mean(axis=1)
        return float(candidates[np.argmin(losses)])

    def _store(self, params: dict[str, np.ndarray]) -> None:
        self.weight_ = params["weight"]
        self.bias_ = params["bias"]
        self.hidden_weight_ = params.get("hidden_weight")
        self.hidden_bias_ = params.get("hidden_bias")
        self.output_weight_ = params.get("output_weight")
        self.distance_scale_ = float(np.exp(params["log_scale"]))

    # ------------------------------------------------------------------ using
    def transform(self, X):
        """Project embeddings (numpy only; torch is not needed).

        Parameters
        ----------
        X : array-like [shape=(n, n_features_in_)]

        Returns
        -------
        np.ndarray [shape=(n, dim), dtype=float32]
        """
        check_is_fitted(self, "weight_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        standardized = (X - self.mean_) / self.scale_
        return _numpy_forward(self._params(), standardized, self.normalize)

    def _params(self) -> dict[str, np.ndarray]:
        params = {"weight": self.weight_, "bias": self.bias_}
        if self.hidden_weight_ is not None:
            params["hidden_weight"] = self.hidden_weight_
            params["hidden_bias"] = self.hidden_bias_
            params["output_weight"] = self.output_weight_
        return params

    @property
    def _n_features_out(self) -> int:
        return self.weight_.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        # transform computes in float32 whatever comes in, as embeddings are stored.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _episode_loss(torch, support, query, task: "_Task", log_scale):
    """Prototypical loss (Snell et al., 2017) and accuracy of one episode.

    Prototypes are the support means; the logits are minus the squared euclidean
    distances from each query to them, times a learned scale.
    """
    onehot = torch.from_numpy(task.onehot)
    prototypes = (onehot.T @ support) / onehot.sum(dim=0)[:, None]
    squared = ((query[:, None, :] - prototypes[None, :, :]) ** 2).sum(dim=-1)
    logits = -torch.exp(log_scale) * squared
    target = torch.from_numpy(task.query_y)
    loss = torch.nn.functional.cross_entropy(logits, target)
    accuracy = float((logits.argmax(dim=1) == target).float().mean())
    return loss, accuracy


class _AdamW:
    """AdamW (Loshchilov and Hutter, 2019) in a few tensor operations.

    ``torch.optim`` imports ``torch._dynamo`` on first use, two seconds on every first
    fit in a process, for an update that takes eight lines.
    """

    def __init__(self, torch, tensors, *, learning_rate, weight_decay, decayed,
                 betas=(0.9, 0.999), eps=1e-8):
        self.torch = torch
        self.tensors = tensors
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.decayed = set(decayed)
        self.betas, self.eps = betas, eps
        self.moments = {
            name: (torch.zeros_like(t), torch.zeros_like(t)) for name, t in tensors.items()
        }
        self.steps = 0

    def zero_grad(self) -> None:
        for tensor in self.tensors.values():
            tensor.grad = None

    def step(self) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        correction1 = 1 - beta1**self.steps
        correction2 = 1 - beta2**self.steps
        with self.torch.no_grad():
            for name, tensor in self.tensors.items():
                if tensor.grad is None:
                    continue
                if name in self.decayed:
                    tensor.mul_(1 - self.learning_rate * self.weight_decay)
                first, second = self.moments[name]
                first.mul_(beta1).add_(tensor.grad, alpha=1 - beta1)
                second.mul_(beta2).addcmul_(tensor.grad, tensor.grad, value=1 - beta2)
                denominator = (second / correction2).sqrt_().add_(self.eps)
                tensor.addcdiv_(first, denominator, value=-self.learning_rate / correction1)


@dataclass(frozen=True)
class _Task:
    """An episode as the loss needs it: support and query rows with their class
    positions (0 .. ways - 1) in the episode."""

    support: np.ndarray
    onehot: np.ndarray  # (n_support, ways) float32
    query: np.ndarray
    query_y: np.ndarray
    ways: int

    @classmethod
    def of(cls, episode, codes: np.ndarray) -> "_Task":
        position = {code: k for k, code in enumerate(np.unique(codes[episode.support]))}
        support_y = np.array([position[c] for c in codes[episode.support]], dtype=np.int64)
        return cls(
            support=episode.support,
            onehot=np.eye(len(position), dtype=np.float32)[support_y],
            query=episode.query,
            query_y=np.array([position[c] for c in codes[episode.query]], dtype=np.int64),
            ways=len(position),
        )


def _numpy_forward(params: dict[str, np.ndarray], standardized, normalize: bool) -> np.ndarray:
    out = standardized @ params["weight"] + params["bias"]
    if "hidden_weight" in params:
        hidden = np.maximum(standardized @ params["hidden_weight"] + params["hidden_bias"], 0)
        out = out + hidden @ params["output_weight"]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return out.astype(np.float32, copy=False)


def _torch_forward(torch, tensors, standardized, normalize: bool):
    out = standardized @ tensors["weight"] + tensors["bias"]
    if "hidden_weight" in tensors:
        hidden = torch.relu(standardized @ tensors["hidden_weight"] + tensors["hidden_bias"])
        out = out + hidden @ tensors["output_weight"]
    if normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out


def _import_torch():
    from ..training import require_torch

    return require_torch("PrototypicalAdapter")
