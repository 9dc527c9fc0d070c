"""Multiple-instance learning: a frame detector trained from clip labels only.

Longer than ~500 lines: the estimator, its NumPy forward pass (four poolings, frame
context) and the checks of its inputs belong together; the torch side is _mil_torch.

A recording is a *bag* of frame embeddings, and only the bag has a label ("there is a
flute somewhere in here"). :class:`MILClassifier` scores every frame with a small
network (standardise, ``dim -> hidden -> n_classes``, one logit per frame and class),
pools the frame logits into one clip logit per class and learns from the clip labels
alone. After training, the frame scores are the detector: they say *where* the class
is, though no frame was ever labelled (Kumar, Khadkevich & Fugen, "Knowledge transfer
from weakly labeled audio using convolutional neural network for sound events and
scenes", ICASSP 2018).

Pooling (over the frames of one bag, per class, in logit space):

``"max"``
    the highest frame logit: the clip is as positive as its most positive frame. The
    gradient reaches one frame per class and bag.
``"mean"``
    the average frame logit: every frame takes part, which suits events that fill
    the recording and dilutes short ones.
``"attention"``
    a weighted average, with weights from a second linear head on the hidden layer
    (one attention logit per frame and class, softmax over the bag's frames), as in
    attention MIL (Ilse, Tomczak & Welling 2018) and Kong et al.'s attention pooling
    for weak audio labels (2018-2019).
``"linear-softmax"``
    in probability space, ``sum(p**2) / sum(p)`` over the frames: frames that score
    high weigh more, frames that score low pull the clip down little. Wang, Li & Metze
    (ICASSP 2019) found it the pooling whose frame scores localise events best.

Context: with ``context=k`` the first layer reads each frame together with its ``k``
neighbours on each side (edges repeat the first and last frame), which is a 1-D
convolution of width ``2k + 1`` over the frame sequence, as in the convolutional
front of CRNN detectors. A frame's score then depends on its neighbours, so a stream
must give the model ``k`` frames on each side (:meth:`MILClassifier.segment_proba`
with ``padded=True``).

Multi-label targets (label sets or an indicator matrix) get a sigmoid per class on the
pooled logit and binary cross-entropy; single-label targets a softmax over the pooled
logits and cross-entropy. Frame scores are always per-class sigmoids of the frame
logits (see :meth:`MILClassifier.segment_proba`).

Training uses PyTorch (imported inside :meth:`~MILClassifier.fit`, seeded, on
whatever number of threads torch is set to), on padded batches with masks. The
trained weights are then kept as plain NumPy arrays and every prediction runs in
NumPy, so a fitted model needs no torch and :mod:`skops.io` can save it without
pickle.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Iterable, Sequence

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..exceptions import ParameterError

__all__ = ["MILClassifier", "POOLINGS"]

#: Pooling names and what each does, in one line.
POOLINGS: dict[str, str] = {
    "max": "highest frame logit per class: one decisive frame",
    "mean": "average frame logit per class: events that fill the recording",
    "attention": "attention-weighted average, weights learned per frame and class",
    "linear-softmax": "sum(p^2)/sum(p) of frame probabilities: localises best (Wang 2019)",
}

_LABEL_SET_TYPES = (tuple, list, set, frozenset)


class MILClassifier(ClassifierMixin, BaseEstimator):
    """Clip classifier over bags of frame embeddings whose frame scores are a detector.

    Parameters
    ----------
    pooling : {"max", "mean", "attention", "linear-softmax"}
        How frame logits become a clip logit (see :data:`POOLINGS`).
    context : int
        Neighbouring frames on each side the frame network reads (0: each frame alone;
        ``k``: a 1-D convolution of width ``2k + 1`` over frames).
    hidden : int
        Width of the hidden layer.
    epochs : int
        Passes over the training bags (no early stopping: with weak labels there is
        no frame-level signal to stop on).
    learning_rate : float
        AdamW step size.
    weight_decay : float
        AdamW decoupled weight decay.
    batch_size : int
        Bags per step; shorter bags are padded and masked out.
    dropout : float
        Dropout on the hidden layer during training, in ``[0, 1)``.
    n_networks : int
        Networks trained from different seeds, whose frame logits are averaged. The
        average of networks with one hidden layer each is itself such a network,
        ``n_networks * hidden`` units wide, so it is stored and run as one (the same
        arrays, the same prediction code, ``n_networks`` times the training time). On
        the development soundscapes (aiSFX step grid, weak labels) frame average
        precision was 0.64 to 0.70 over five seeds alone, 0.71 for three averaged.
    random_state : int, RandomState or None
        Seeds the weights, dropout and batch order; an int gives the same model on
        every run with the same torch thread count. Torch's global random state is
        restored after fitting.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
        Class labels (for an indicator matrix, the column indices).
    multilabel_ : bool
        Whether ``y`` was multi-label (label sets or indicator matrix).
    n_features_in_ : int
        Frame embedding dimension.
    pooling_ : str
        The pooling the weights were trained with (predictions use it, whatever
        ``pooling`` is set to later).
    context_ : int
        The context the weights were trained with (0 for models saved before it).
    mean_, scale_ : np.ndarray [shape=(n_features_in_,)]
        Standardisation learned over all training frames.
    coefs_ : list of np.ndarray
        ``[shape=(n_features_in_, width), shape=(width, n_classes)]``: the frame
        network's weights (as in :class:`sklearn.neural_network.MLPClassifier`);
        ``width = n_networks * hidden``.
    intercepts_ : list of np.ndarray
        ``[shape=(width,), shape=(n_classes,)]``.
    attention_coef_ : np.ndarray [shape=(width, n_classes)] or None
        Attention head (``pooling="attention"`` only).
    attention_intercept_ : np.ndarray [shape=(n_classes,)] or None
    loss_curve_ : list of float
        Mean training loss per epoch (over the networks).
    n_iter_ : int
        Epochs run.

    Examples
    --------
    Each recording is six frames of noise; one frame, somewhere, holds the event (a
    high or a low first feature). Only the recording is labelled.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def recording(label):
    ...     X = rng.normal(size=(6, 4))
    ...     where = int(rng.integers(6))
    ...     X[where, 0] = 5.0 if label == "high" else -5.0
    ...     return X, where
    >>> labels = ["high", "low"] * 30
    >>> bags = [recording(label)[0] for label in labels]
    >>> model = MILClassifier(epochs=40, random_state=0).fit(bags, labels)
    >>> X, where = recording("low")
    >>> model.predict([X]).tolist()
    ['low']
    >>> model.segment_proba(X).shape
    (6, 2)
    >>> int(np.argmax(model.segment_proba(X)[:, 1])) == where
    True
    """

    #: Model files written before the parameter existed hold one network.
    n_networks = 1

    def __init__(
        self,
        *,
        pooling: str = "attention",
        context: int = 0,
        hidden: int = 128,
        epochs: int = 60,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        dropout: float = 0.1,
        n_networks: int = 1,
        random_state=0,
    ):
        self.pooling = pooling
        self.context = context
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.dropout = dropout
        self.n_networks = n_networks
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Input is a sequence of 2-D arrays of varying length, not one 2-D array.
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------------------------ fitting

    def fit(self, bags, y, frame_targets=None):
        """Learn from labelled bags (and, where a user has them, labelled frames).

        Parameters
        ----------
        bags : sequence of np.ndarray [shape=(n_frames_i, dim)]
            One array of frame embeddings per recording; ``n_frames_i >= 1`` may vary.
        y : array-like [shape=(n_bags,)] or np.ndarray [shape=(n_bags, n_classes)]
            One label per bag (single-label, at least 2 classes). Multi-label: one
            tuple, list or set of labels per bag (possibly empty), or a 0/1 indicator
            matrix given as a 2-D NumPy array (``classes_`` are then its column
            indices).
        frame_targets : sequence of (np.ndarray or None), optional
            Multi-label only: strong labels, per bag a 0/1 matrix ``[shape=(n_frames_i,
            n_classes)]`` (columns in ``classes_`` order: the sorted labels) saying which
            classes sound in each frame, or None for a bag known only by its label set.
            Those bags also learn frame by frame (the detector then localises better
            than from recording labels alone).

        Returns
        -------
        self
        """
        self._check_params()
        bags = _check_bags(bags)
        targets, classes, multilabel = _encode_targets(y, len(bags))
        frame_targets = _check_frame_targets(frame_targets, bags, len(classes), multilabel)
        train = _training()
        frames = np.concatenate(bags)
        mean = frames.mean(axis=0)
        scale = frames.std(axis=0)
        # A constant feature carries nothing; dividing by 1 keeps it at zero, as
        # StandardScaler does.
        scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
        context = int(self.context)
        standardised = [
            _stack(((bag - mean) / scale).astype(np.float32), context) for bag in bags
        ]

        seeds = check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max, size=int(self.n_networks))
        trained = [
            train(
                standardised,
                targets,
                multilabel=multilabel,
                n_classes=len(classes),
                pooling=self.pooling,
                hidden=int(self.hidden),
                epochs=int(self.epochs),
                learning_rate=float(self.learning_rate),
                weight_decay=float(self.weight_decay),
                batch_size=int(self.batch_size),
                dropout=float(self.dropout),
                seed=int(seed),
                frame_targets=frame_targets,
            )
            for seed in seeds
        ]
        weights = _averaged([w for w, _ in trained])
        losses = np.mean([curve for _, curve in trained], axis=0).tolist()
        self.classes_ = classes
        self.multilabel_ = multilabel
        self.n_features_in_ = int(frames.shape[1])
        self.pooling_ = self.pooling
        self.context_ = context
        self.mean_ = mean
        self.scale_ = scale
        self.coefs_ = [weights["hidden.weight"].T.copy(), weights["classes.weight"].T.copy()]
        self.intercepts_ = [weights["hidden.bias"], weights["classes.bias"]]
        if self.pooling == "attention":
            self.attention_coef_ = weights["attention.weight"].T.copy()
            self.attention_intercept_ = weights["attention.bias"]
        else:
            self.attention_coef_ = None
            self.attention_intercept_ = None
        self.loss_curve_ = losses
        self.n_iter_ = int(self.epochs)
        return self

    def _check_params(self) -> None:
        if self.pooling not in POOLINGS:
            raise ParameterError(
                f"expected pooling in {tuple(POOLINGS)}, got {self.pooling!r}"
            )
        for name in ("hidden", "epochs", "batch_size", "n_networks"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"expected {name} to be an integer >= 1, got {value!r}")
        context = self.context
        if not isinstance(context, Integral) or isinstance(context, bool) or not 0 <= context <= 32:
            raise ParameterError(f"expected context to be an integer in [0, 32], got {context!r}")
        if not (isinstance(self.learning_rate, Real) and self.learning_rate > 0):
            raise ParameterError(f"expected learning_rate > 0, got {self.learning_rate!r}")
        if not (isinstance(self.weight_decay, Real) and self.weight_decay >= 0):
            raise ParameterError(f"expected weight_decay >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.dropout, Real) and 0 <= self.dropout < 1):
            raise ParameterError(f"expected dropout in [0, 1), got {self.dropout!r}")

    # --------------------------------------------------------------- prediction

    def predict_proba(self, bags) -> np.ndarray:
        """Clip-level probabilities, one row per bag.

        Parameters
        ----------
        bags : sequence of np.ndarray [shape=(n_frames_i, n_features_in_)]

        Returns
        -------
        np.ndarray [shape=(n_bags, n_classes)]
            Softmax over classes (rows sum to 1) for a single-label model; an
            independent sigmoid per class for a multi-label one.
        """
        check_is_fitted(self)
        bags = _check_bags(bags, n_features=self.n_features_in_)
        logits = self._pooled_logits(bags)
        return softmax(logits, axis=1) if not self.multilabel_ else expit(logits)

    def predict(self, bags) -> np.ndarray:
        """Clip-level labels.

        Returns
        -------
        np.ndarray [shape=(n_bags,)] or [shape=(n_bags, n_classes)]
            The most probable class (single-label), or a 0/1 indicator matrix of the
            classes whose probability is at least 0.5 (multi-label).
        """
        proba = self.predict_proba(bags)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def context_frames(self) -> int:
        """Frames on each side a frame's score depends on (``context_``; 0 before fitting)."""
        return int(getattr(self, "context_", 0))

    def segment_proba(self, X, *, padded: bool = False) -> np.ndarray:
        """Per-frame, per-class scores of one recording: the detector.

        Each score is the sigmoid of the frame's logit for that class, independent of
        the other classes and of the other frames, so a frame that holds none of the
        classes can score low for all of them. For a multi-label model it is exactly
        the clip probability the model would give a one-frame recording (and, with
        ``pooling="max"``, a recording's clip probability is its best frame's). For a
        single-label model (trained through a softmax over classes) it is on the
        same scale but not a distribution over classes and not calibrated: use it to
        rank frames or with a threshold chosen on data, not as "probability 0.5". (A
        softmax over each frame's logits would force every frame to pick a class; on
        the Philharmonia task in the tests it ranked frames no better.)

        Parameters
        ----------
        X : np.ndarray [shape=(n_frames, n_features_in_)]
            Frame embeddings of one recording (e.g. ``embed_file(...).X``; the
            frames' times are in its ``start_s`` / ``end_s``).
        padded : bool
            ``X`` already holds :attr:`context_frames` frames of context on each side
            (a stretch of a longer stream); only the frames between are scored. By
            default the recording's edges repeat its first and last frame.

        Returns
        -------
        np.ndarray [shape=(n_frames, n_classes)]
            Scores in ``[0, 1]``, columns in the order of ``classes_`` (``n_frames``
            less twice the context when ``padded``).
        """
        check_is_fitted(self)
        (X,) = _check_bags([X], n_features=self.n_features_in_, what="X")
        logits, _ = self._frame_logits(X, padded=padded)
        return expit(logits)

    # The NumPy forward pass; _mil_torch.MILNetwork is its torch twin, used for training.

    def _frame_logits(self, frames: np.ndarray, *, padded: bool = False):
        standardised = _stack((frames - self.mean_) / self.scale_, self.context_frames,
                              padded=padded)
        hidden = np.maximum(standardised @ self.coefs_[0] + self.intercepts_[0], 0.0)
        logits = hidden @ self.coefs_[1] + self.intercepts_[1]
        attention = None
        if self.attention_coef_ is not None:
            attention = hidden @ self.attention_coef_ + self.attention_intercept_
        return logits, attention

    def _pooled_logits(self, bags: list[np.ndarray]) -> np.ndarray:
        lengths = np.array([len(bag) for bag in bags])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # One matrix product for all frames of all bags, then per-bag reductions.
        if self.context_frames:
            pairs = [self._frame_logits(bag) for bag in bags]
            logits = np.concatenate([pair[0] for pair in pairs])
            attention = None if pairs[0][1] is None else np.concatenate([p[1] for p in pairs])
        else:
            logits, attention = self._frame_logits(np.concatenate(bags))
        if self.pooling_ == "linear-softmax":
            p = expit(logits)
            pooled = np.add.reduceat(p * p, starts, axis=0) / np.maximum(
                np.add.reduceat(p, starts, axis=0), _TINY)
            pooled = np.clip(pooled, _TINY, 1 - _TINY)
            return np.log(pooled) - np.log1p(-pooled)
        if self.pooling_ == "max":
            return np.maximum.reduceat(logits, starts, axis=0)
        if self.pooling_ == "mean":
            return np.add.reduceat(logits, starts, axis=0) / lengths[:, None]
        peak = np.repeat(np.maximum.reduceat(attention, starts, axis=0), lengths, axis=0)
        weights = np.exp(attention - peak)
        total = np.repeat(np.add.reduceat(weights, starts, axis=0), lengths, axis=0)
        return np.add.reduceat(weights / total * logits, starts, axis=0)


def _averaged(networks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One network whose logits are the mean of ``networks``' (torch state dicts of
    :class:`~earmark.detection._mil_torch.MILNetwork`, weights ``(out, in)``): their
    hidden units side by side, each output layer divided by their number."""
    if len(networks) == 1:
        return networks[0]
    k = len(networks)
    merged = {"hidden.weight": np.concatenate([n["hidden.weight"] for n in networks]),
              "hidden.bias": np.concatenate([n["hidden.bias"] for n in networks])}
    for head in ("classes", "attention"):
        if f"{head}.weight" in networks[0]:
            merged[f"{head}.weight"] = np.concatenate([n[f"{head}.weight"] for n in networks],
                                                      axis=1) / k
            merged[f"{head}.bias"] = np.mean([n[f"{head}.bias"] for n in networks], axis=0)
    return merged


# ---------------------------------------------------------------------- inputs

#: Floor of pooled probabilities, so that their logits stay finite.
_TINY = 1e-6


def _stack(frames: np.ndarray, context: int, *, padded: bool = False) -> np.ndarray:
    """Each frame beside its ``context`` neighbours on each side, as one row.

    ``(n, dim) -> (n, (2 * context + 1) * dim)``, oldest neighbour first; edges repeat
    the first and last frame, unless ``padded`` (the context is already there, and
    ``n - 2 * context`` rows come back).
    """
    if context == 0:
        return frames
    if not padded:
        frames = np.concatenate([np.repeat(frames[:1], context, axis=0), frames,
                                 np.repeat(frames[-1:], context, axis=0)])
    n = frames.shape[0] - 2 * context
    if n < 1:
        raise ParameterError(
            f"expected more than {2 * context} frames with padded=True, got {frames.shape[0]}"
        )
    return np.concatenate([frames[offset : offset + n] for offset in range(2 * context + 1)],
                          axis=1)


def _check_frame_targets(frame_targets, bags, n_classes: int, multilabel: bool):
    """Per-bag frame label matrices (or None), checked against the bags; None if absent."""
    if frame_targets is None:
        return None
    if not multilabel:
        raise ParameterError("frame_targets need multi-label targets (label sets per bag)")
    frame_targets = list(frame_targets)
    if len(frame_targets) != len(bags):
        raise ParameterError(
            f"expected one frame_targets entry per bag ({len(bags)}), got {len(frame_targets)}"
        )
    checked = []
    for index, (target, bag) in enumerate(zip(frame_targets, bags)):
        if target is None:
            checked.append(None)
            continue
        target = np.asarray(target, dtype=np.float32)
        if target.shape != (len(bag), n_classes) or not np.isin(target, (0.0, 1.0)).all():
            raise ParameterError(
                f"frame_targets[{index}]: expected a 0/1 matrix of shape "
                f"({len(bag)}, {n_classes}), got shape {target.shape}"
            )
        checked.append(target)
    return checked


def _check_bags(bags, *, n_features: int | None = None, what: str = "bag") -> list[np.ndarray]:
    """Bags as float64 arrays, each checked; errors name the bag by index."""
    if isinstance(bags, np.ndarray) and bags.ndim == 2:
        raise ParameterError(
            f"expected a sequence of bags, each of shape (n_frames, dim), got one array of "
            f"shape {bags.shape}; wrap a single recording as [X]"
        )
    try:
        bags = list(bags)
    except TypeError:
        raise ParameterError(
            f"expected a sequence of bags, got {type(bags).__name__}"
        ) from None
    if not bags:
        raise ParameterError("expected at least one bag, got none")
    checked: list[np.ndarray] = []
    for index, bag in enumerate(bags):
        name = what if what == "X" else f"bag {index}"
        try:
            bag = np.asarray(bag, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ParameterError(f"{name}: expected an array of numbers, got {error}") from None
        if bag.ndim != 2:
            raise ParameterError(
                f"{name}: expected an array of shape (n_frames, dim), got shape {bag.shape}"
            )
        if bag.shape[0] == 0:
            raise ParameterError(f"{name}: expected at least 1 frame, got 0")
        # Frames must match the fitted model, or else the first bag.
        expected = n_features if n_features is not None or not checked else checked[0].shape[1]
        if expected is not None and bag.shape[1] != expected:
            raise ParameterError(
                f"{name}: expected {expected} features per frame, got {bag.shape[1]}"
            )
        finite = np.isfinite(bag)
        if not finite.all():
            raise ParameterError(
                f"{name}: expected finite values, got {int((~finite).sum())} NaN or "
                f"infinite of {bag.size}"
            )
        checked.append(bag)
    return checked


def _encode_targets(y, n_bags: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(targets, classes, multilabel)``: class indices, or a float 0/1 matrix."""
    if isinstance(y, np.ndarray) and y.ndim == 2:
        if y.shape[0] != n_bags:
            raise ParameterError(
                f"expected one indicator row per bag ({n_bags} bags), got {y.shape[0]} rows"
            )
        if y.shape[1] == 0 or not np.isin(y, (0, 1)).all():
            raise ParameterError(
                f"expected a 0/1 indicator matrix with at least one column, got values "
                f"{np.unique(y)[:5].tolist()} in shape {y.shape}"
            )
        return y.astype(np.float32), np.arange(y.shape[1]), True
    if isinstance(y, str) or not isinstance(y, Iterable):
        raise ParameterError(f"expected one label per bag, got {type(y).__name__}")
    y = list(y)
    if len(y) != n_bags:
        raise ParameterError(f"expected one label per bag ({n_bags} bags), got {len(y)} labels")
    is_set = [isinstance(label, _LABEL_SET_TYPES) for label in y]
    if any(is_set):
        if not all(is_set):
            first = is_set.index(False)
            raise ParameterError(
                f"expected every label to be a set of labels (multi-label) or none, got "
                f"{y[first]!r} for bag {first}"
            )
        return _encode_label_sets(y)
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ParameterError(f"expected one label per bag, got an array of shape {labels.shape}")
    classes, targets = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ParameterError(
            f"expected at least 2 classes for single-label training, got {classes.tolist()}; "
            f"for one class, give label sets (with empty ones for recordings without it)"
        )
    return targets.astype(np.int64), classes, False


def _encode_label_sets(y: Sequence) -> tuple[np.ndarray, np.ndarray, bool]:
    union = set().union(*(set(labels) for labels in y))
    if not union:
        raise ParameterError("expected at least one label among the bags' label sets, got none")
    try:
        classes = np.array(sorted(union))
    except TypeError:
        raise ParameterError(
            f"expected labels of one comparable type, got {sorted(map(repr, union))}"
        ) from None
    column = {label: index for index, label in enumerate(classes.tolist())}
    targets = np.zeros((len(y), len(classes)), dtype=np.float32)
    for row, labels in enumerate(y):
        targets[row, [column[label] for label in labels]] = 1.0
    return targets, classes, True


def _training():
    """``_mil_torch.train``, or a clear error where torch is not installed."""
    from ..training import import_trainer

    return import_trainer(f"{__package__}._mil_torch", "MILClassifier").train


