"""A network trained on the user's clips, as a scikit-learn estimator and a model kind.

:class:`NetworkClassifier` fits one of :data:`earmark.networks.ARCHITECTURES` on front-end
inputs (:mod:`earmark.networks.frontends`), given flattened as a 2-d matrix with
``input_shape`` (so :func:`earmark.evaluation.cross_validate` and
:func:`earmark.curve.learning_curve` run it on the same splits as any learner) or as
``(n, channels, time, frequency)``. Its own early-stopping validation split is drawn by
group from the rows it is given, hence from the training part of a split only: a test
group can never be used to decide when to stop, and no group is on both sides of the
validation split. The rows used are kept in :attr:`~NetworkClassifier.training`.

:func:`fit_manifest` fits from audio files and records the front end, which makes the
estimator a model of kind ``"network"`` (:meth:`~NetworkClassifier.score_files`,
:meth:`~NetworkClassifier.save`): its learned weights are stored as plain arrays in the
one model file (:mod:`earmark.models`), no pickle; a fine-tuned aiSFX model stores the
tuned last block and head, and reads its frozen lower blocks from the aisfx wheel.
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..exceptions import EarmarkError, NoUsableItemsError, ParameterError, TooFewExamplesError
from .architectures import check_architecture
from .frontends import Frontend, clip_inputs, durations, frontend_for

__all__ = ["NetworkClassifier", "fit_manifest", "validation_split", "check_state", "MIN_PER_CLASS"]

#: Training items each class needs: one to train on, one to stop early by.
MIN_PER_CLASS = 2
#: Gain augmentation of log-mel inputs, in decibels either way.
_GAIN_DB = 6.0


class NetworkClassifier(ClassifierMixin, BaseEstimator):
    """A small network from scratch, or aiSFX fine-tuned, trained with strong regularisation.

    Parameters
    ----------
    architecture : str
        One of :data:`earmark.networks.ARCHITECTURES` (``timbre``, ``vgg-small``,
        ``sbcnn``, ``aisfx-finetune``, ``aisfx-head``).
    input_shape : tuple of int, optional
        ``(channels, time, frequency)`` of one input when ``X`` is given flattened.
    epochs : int, optional
        At most this many epochs (default: the architecture's).
    batch_size : int
    learning_rate, weight_decay : float, optional
        AdamW's (default: the architecture's).
    mixup : float, optional
        Beta parameter of mixup (0: none; default: the architecture's, none for the
        networks from scratch).
    masks : int, optional
        SpecAugment-style time and frequency masks per clip (default: the
        architecture's, none for the networks from scratch).
    crop : float, optional
        Fraction of the clip's length each training crop keeps (default: the
        architecture's).
    patience : int, optional
        Epochs without a better validation accuracy (or, at equal accuracy, loss) before
        stopping, counted after the first quarter of the epochs (default: the
        architecture's).
    validation_size : float
        Share of the training items (whole groups) held out for early stopping.
    n_threads : int
        Torch threads (CPU).
    random_state : int, RandomState or None

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    params_ : dict of np.ndarray
        The module's state (weights and batch-norm statistics), by name.
    mean_, scale_ : float
        Standardisation of the inputs (log-mel; 0 and 1 for aiSFX maps).
    input_shape_ : tuple of int
    history_ : dict
        Losses and validation accuracy per epoch, the epoch kept, seconds, device.
    fit_rows_, validation_rows_ : np.ndarray [dtype=int64]
        Rows of the ``X`` given to :meth:`fit` trained on and held out to stop by.
    frontend_ : dict or None
        The front end (set by :func:`fit_manifest`; needed to classify files).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(24, 1, 16, 16)).astype(np.float32)
    >>> X[12:, :, :, :8] += 2  # class "b" is loud in the low bands
    >>> y = ["a"] * 12 + ["b"] * 12
    >>> net = NetworkClassifier(architecture="vgg-small", epochs=3).fit(X, y)
    >>> net.predict_proba(X[:2]).shape, len(net.validation_rows_) > 0
    ((2, 2), True)
    """

    def __init__(self, architecture: str = "vgg-small", *, input_shape=None, epochs=None,
                 batch_size: int = 32, learning_rate=None, weight_decay=None, mixup=None,
                 masks=None, crop=None, patience=None, validation_size: float = 0.2,
                 n_threads: int = 2, random_state=0):  # fmt: skip
        self.architecture = architecture
        self.input_shape = input_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.mixup = mixup
        self.masks = masks
        self.crop = crop
        self.patience = patience
        self.validation_size = validation_size
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, groups=None):
        """Train on labelled inputs, stopping early on held-out groups of them.

        Parameters
        ----------
        X : np.ndarray [shape=(n, channels, time, frequency)] or [shape=(n, d)]
            Front-end inputs, or the same flattened (with ``input_shape``).
        y : array-like [shape=(n,)]
        groups : array-like [shape=(n,)], optional
            Speaker, session or site of each item: the validation split takes whole
            groups. Without, each item is its own group.

        Returns
        -------
        self

        Raises
        ------
        TooFewExamplesError
            When some class has fewer than 2 items.
        """
        from ..training import import_trainer, torch_threads

        spec = self._check_params()
        X = self._shaped(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ParameterError(f"expected {X.shape[0]} labels, got shape {y.shape}")
        classes, targets, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ParameterError(f"expected at least 2 classes, got {classes.tolist()}")
        if counts.min() < MIN_PER_CLASS:
            raise TooFewExamplesError(
                f"network {self.architecture!r} needs at least {MIN_PER_CLASS} training items per "
                f"class (one to train on, one to decide when to stop); class "
                f"{_plain(classes[counts.argmin()])!r} has {int(counts.min())}"
            )
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if groups.shape != y.shape:
            raise ParameterError(f"expected {len(y)} groups, got shape {groups.shape}")
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        fit_rows, validation_rows = validation_split(targets, groups, size=float(self.validation_size), seed=seed)
        torch_side = import_trainer(f"{__package__}._train_torch", f"network {self.architecture!r}")
        self.classes_ = classes
        self.input_shape_ = tuple(int(v) for v in X.shape[1:])
        if spec.frontend == "log-mel":
            sample = X[fit_rows]
            self.mean_, self.scale_ = float(sample.mean()), float(sample.std()) or 1.0
        else:
            self.mean_, self.scale_ = 0.0, 1.0
        with torch_threads(self.n_threads):
            module = torch_side.build(self.architecture, n_classes=len(classes), n_mels=X.shape[3])
            if spec.pretrained and hasattr(module, "start_from_checkpoint"):
                module.start_from_checkpoint()
            history = torch_side.train(
                module, self._standardised(X), targets, fit_rows=fit_rows,
                validation_rows=validation_rows,
                epochs=int(self.epochs or spec.epochs), batch_size=int(self.batch_size),
                learning_rate=float(self.learning_rate or spec.learning_rate),
                weight_decay=float(spec.weight_decay if self.weight_decay is None else self.weight_decay),
                mixup=float(spec.mixup if self.mixup is None else self.mixup),
                masks=int(spec.masks if self.masks is None else self.masks),
                crop=float(self.crop or spec.crop),
                gain=_GAIN_DB / self.scale_ if spec.frontend == "log-mel" else 0.0,
                patience=int(self.patience or spec.patience), seed=seed,
            )  # fmt: skip
        self.params_ = {name: value.detach().cpu().numpy().copy() for name, value in module.state_dict().items()}
        self._module = module
        self.history_ = history
        self.fit_rows_, self.validation_rows_ = fit_rows, validation_rows
        self.validation_groups_ = sorted({_plain(g) for g in groups[validation_rows]}, key=str)
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.frontend_ = None
        return self

    def _check_params(self):
        spec = check_architecture(self.architecture)
        for name in ("batch_size", "patience", "n_threads"):
            value = getattr(self, name)
            if name == "patience" and value is None:
                continue
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"expected {name} to be an integer >= 1, got {value!r}")
        if self.epochs is not None and (not isinstance(self.epochs, Integral) or self.epochs < 1):
            raise ParameterError(f"expected epochs >= 1 or None, got {self.epochs!r}")
        if self.masks is not None and (not isinstance(self.masks, Integral) or self.masks < 0):
            raise ParameterError(f"expected masks >= 0, got {self.masks!r}")
        for name, low, high in (("mixup", 0.0, 10.0), ("crop", 0.05, 1.0), ("validation_size", 0.0, 0.5)):
            value = getattr(self, name)
            if name in ("crop", "mixup") and value is None:
                continue
            if not isinstance(value, Real) or not low <= value <= high:
                raise ParameterError(f"expected {name} in {low}..{high}, got {value!r}")
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Real) or value < 0 or
                                      (name == "learning_rate" and value == 0)):  # fmt: skip
                raise ParameterError(f"expected {name} > 0 (or None), got {value!r}")
        return spec

    def _shaped(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        shape = getattr(self, "input_shape_", None) or (tuple(self.input_shape) if self.input_shape else None)
        if X.ndim == 2:
            if shape is None or int(np.prod(shape)) != X.shape[1]:
                raise ParameterError(f"flattened inputs of width {X.shape[1]} need input_shape "
                                     f"(channels, time, frequency) of that size, got {shape}")  # fmt: skip
            X = X.reshape(len(X), *shape)
        if X.ndim != 4 or X.shape[0] == 0:
            raise ParameterError(f"expected inputs of shape (n, channels, time, frequency), got {X.shape}")
        if shape is not None and tuple(X.shape[1:]) != tuple(shape):
            raise ParameterError(f"expected inputs of shape (n, {', '.join(map(str, shape))}), got {X.shape}")
        if not np.isfinite(X).all():
            raise ParameterError("inputs hold NaN or infinite values")
        return X

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        if self.mean_ == 0.0 and self.scale_ == 1.0:
            return X
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    # --------------------------------------------------------------- prediction
    def _torch_module(self):
        module = getattr(self, "_module", None)
        if module is None:
            import torch

            from ..training import import_trainer

            torch_side = import_trainer(f"{__package__}._train_torch", f"network {self.architecture!r}")
            module = torch_side.build(self.architecture, n_classes=len(self.classes_), n_mels=self.input_shape_[2])
            module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.params_.items()})
            module.eval()
            self._module = module
        return module

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of whole clips' inputs.

        Parameters
        ----------
        X : np.ndarray [shape=(n, channels, time, frequency)] or [shape=(n, d)]

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
        """
        check_is_fitted(self, "params_")
        from ..training import import_trainer, torch_threads

        X = self._standardised(self._shaped(X))
        torch_side = import_trainer(f"{__package__}._train_torch", f"network {self.architecture!r}")
        with torch_threads(self.n_threads):
            logits = torch_side.predict_logits(self._torch_module(), X).numpy()
        return softmax(logits.astype(np.float64), axis=1)

    def predict(self, X) -> np.ndarray:
        """Labels, [shape=(n,)]."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def n_parameters_(self) -> int:
        """Learned numbers (batch-norm statistics excluded), trained and frozen-in-block."""
        check_is_fitted(self, "params_")
        return int(sum(v.size for k, v in self.params_.items()
                       if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))))  # fmt: skip

    # ------------------------------------------------------------- model kind
    #: The model kind (:data:`earmark.models.KINDS`).
    kind = "network"
    #: A network reads its own front end, not a backend's embeddings.
    backend_identity = None

    @property
    def training(self) -> dict[str, Any]:
        """What was trained and how: rows trained on and held out, epochs, time, device."""
        check_is_fitted(self, "params_")
        history = self.history_
        return {
            "architecture": self.architecture,
            "n_parameters": self.n_parameters_,
            "n_items": int(len(self.fit_rows_) + len(self.validation_rows_)),
            "fit_rows": [int(i) for i in self.fit_rows_],
            "validation_rows": [int(i) for i in self.validation_rows_],
            "validation_groups": list(self.validation_groups_),
            "epochs_run": history.get("epochs_run"),
            "best_epoch": history.get("best_epoch"),
            "validation_accuracy": _kept_accuracy(history),
            "seconds": history.get("seconds"),
            "device": history.get("device"),
        }

    def score_files(self, paths, *, store=None, backend=None, progress: bool = False):
        """Class probabilities of audio files (see :func:`earmark.models.predict_files`);
        ``store`` and ``backend`` are unused: the network reads its own front end.

        Returns
        -------
        FileScores
        """
        import pandas as pd

        from ..manifest import Manifest
        from ..models import FileScores

        check_is_fitted(self, "params_")
        if self.frontend_ is None:
            raise EarmarkError("this network was fitted on arrays, not audio files: fit it with "
                               "earmark.networks.fit_manifest to classify files")  # fmt: skip
        frontend = Frontend(**self.frontend_)
        given = [str(p) for p in paths]
        resolved = [str(Path(p).resolve()) for p in given]
        manifest = Manifest(pd.DataFrame({"path": resolved, "labels": ["?"] * len(given)}))
        try:
            X, ok, failures = clip_inputs(manifest, frontend, progress=progress)
            P = self.predict_proba(X)
        except NoUsableItemsError as error:
            failures, ok = error.failures, np.zeros(len(given), dtype=bool)
            P = np.zeros((0, len(self.classes_)))
        failed = dict(failures)
        errors = [None if good else f"{name}: {failed.get(path, 'could not be read')}"
                  for name, path, good in zip(given, resolved, ok)]  # fmt: skip
        return FileScores(P, ok, errors)

    def save(self, path) -> Path:
        """Write the network to one model file (kind ``"network"``)."""
        from ..models import save_trained_network

        check_is_fitted(self, "params_")
        return save_trained_network(self, path)


def validation_split(targets: np.ndarray, groups: np.ndarray, *, size: float, seed: int):
    """Hold out whole groups, about ``size`` of the items, keeping every class trained on.

    Groups are taken in a random order, each only if every class keeps at least one
    item outside the validation part and the part stays under 1.5 ``size`` of the items
    (2 ``size`` for its first group), until it reaches ``size``.

    Parameters
    ----------
    targets : np.ndarray [shape=(n,)]
    groups : np.ndarray [shape=(n,)]
    size : float
    seed : int

    Returns
    -------
    fit_rows, validation_rows : np.ndarray [dtype=int64]
        Disjoint, no group on both sides; ``validation_rows`` may be empty (a single
        group, or ``size`` 0), and training then runs every epoch.

    Examples
    --------
    >>> fit, held = validation_split(np.array([0, 0, 1, 1]), np.array([1, 2, 1, 2]), size=0.5, seed=0)
    >>> sorted(fit.tolist() + held.tolist()), len(held)
    ([0, 1, 2, 3], 2)
    """
    rng = np.random.default_rng(seed)
    n = len(targets)
    names, group_index = np.unique(groups.astype(str), return_inverse=True)
    remaining = np.bincount(targets, minlength=targets.max() + 1)
    held = np.zeros(n, dtype=bool)
    wanted = size * n
    for g in rng.permutation(len(names)):
        if held.sum() >= wanted:
            break
        rows = group_index == g
        # Some slack, more for the first group: with few groups (speakers) the nearest
        # size may be one whole group a little over ``size``.
        if held.sum() + rows.sum() > max(wanted * (1.5 if held.any() else 2.0), 1):
            continue
        taken = np.bincount(targets[rows], minlength=len(remaining))
        if (remaining - taken < 1).any():
            continue
        remaining = remaining - taken
        held |= rows
    return np.flatnonzero(~held), np.flatnonzero(held)


def fit_manifest(manifest, architecture: str = "aisfx-finetune", *, max_seconds: float = 5.0,
                 progress: bool = False, **params) -> NetworkClassifier:  # fmt: skip
    """Fit a :class:`NetworkClassifier` on every readable item of a manifest.

    Parameters
    ----------
    manifest : Manifest
        Single-label items; their groups (else folds) shape the validation split.
    architecture : str
    max_seconds : float
        Clips are padded or cut to the longest one, at most this long.
    progress : bool
    **params
        Passed to :class:`NetworkClassifier`.

    Returns
    -------
    NetworkClassifier
        With ``frontend_`` set (so it classifies files and saves as a model) and
        ``failures_``: ``(path, reason)`` of the items skipped.
    """
    spec = check_architecture(architecture)
    frontend = frontend_for(spec.frontend, durations(manifest), max_seconds=max_seconds)
    X, ok, failures = clip_inputs(manifest, frontend, progress=progress)
    groups = manifest.groups if manifest.has_groups else (manifest.folds if manifest.has_folds else None)
    network = NetworkClassifier(architecture, **params).fit(
        X, manifest.y[ok], groups=None if groups is None else np.asarray(groups)[ok])
    network.frontend_ = frontend.to_dict()
    network.failures_ = failures
    return network


def check_state(architecture: str, state: dict[str, np.ndarray], *, n_classes: int, n_mels: int) -> None:
    """Check learned arrays against a freshly built module (a file's come from a stranger).

    Raises
    ------
    ParameterError
        Naming the array that is missing, extra, of another shape or not finite.
    """
    from ..training import import_trainer

    torch_side = import_trainer(f"{__package__}._train_torch", f"network {architecture!r}")
    expected = torch_side.build(architecture, n_classes=n_classes, n_mels=n_mels).state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise ParameterError(f"network {architecture!r}: arrays missing {missing}, unexpected {extra}")
    for name, tensor in expected.items():
        value = state[name]
        if tuple(value.shape) != tuple(tensor.shape):
            raise ParameterError(f"array {name} has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}")
        if value.dtype.kind not in "fiu" or (value.dtype.kind == "f") != tensor.is_floating_point():
            raise ParameterError(f"array {name} has dtype {value.dtype}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ParameterError(f"array {name} holds NaN or infinite values")


def _kept_accuracy(history: dict):
    """Validation accuracy of the weights kept (epoch 0: the linear probe's)."""
    if not history.get("validation_accuracy"):
        return None
    if history.get("best_epoch") == 0:
        return (history.get("linear_probe") or {}).get("validation_accuracy")
    return history["validation_accuracy"][history["best_epoch"] - 1]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
