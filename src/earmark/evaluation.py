"""Honest evaluation of a learner on clip embeddings.

The split decides whether a figure means anything. Recordings of one speaker, site or
session resemble each other more than any two recordings of a class do, so a random
split scores the memory of those conditions, not the class. Hence, in this order:

1. ``folds`` given (a dataset's official folds): each fold is the test set once, or a
   single split when the folds are named ``train`` / ``validation`` / ``test``;
2. ``groups`` given (speaker, site, session): no group is ever on both sides; leave one
   group out when there are at most ``n_splits`` groups, stratified group k-fold beyond;
3. neither: stratified k-fold at random, and the result carries a warning saying so.

Every learner trains on everything outside the test part of a split, so each split is
recorded by its test indices alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .exceptions import ParameterError

__all__ = [
    "Split",
    "SplitPlan",
    "EvaluationResult",
    "make_splits",
    "cross_validate",
    "evaluate_split",
]

# Fold names that mean "always train" / "the test set" in an official single split.
_TRAIN_ONLY = {"train", "training", "-1"}
_VALIDATION = {"validation", "valid", "val", "dev"}
_TEST = {"test", "testing", "eval", "evaluation"}


@dataclass(frozen=True)
class Split:
    """One train/test split.

    Attributes
    ----------
    name : str
        What is held out, in words (``"group george"``, ``"fold 3"``).
    train, test : np.ndarray [shape=(n_train,), (n_test,), dtype=int64]
        Row indices; disjoint.
    """

    name: str
    train: np.ndarray
    test: np.ndarray


@dataclass
class SplitPlan:
    """The splits of a dataset, how they were made, and what to be wary of."""

    splits: list[Split]
    strategy: str
    warnings: list[str] = field(default_factory=list)


def make_splits(
    y,
    *,
    folds=None,
    groups=None,
    n_splits: int = 5,
    random_state: int | None = 0,
) -> SplitPlan:
    """Split items for evaluation, never at random when folds or groups exist.

    Parameters
    ----------
    y : array-like [shape=(n,)]
        Labels (for stratification).
    folds : array-like [shape=(n,)], optional
        Official fold of each item. ``-1``, ``None`` or ``"train"`` mark items that are
        only ever trained on. If some item is in fold ``"test"``, that is the only test
        set and everything else (``"validation"`` included, since nothing is tuned)
        trains.
    groups : array-like [shape=(n,)], optional
        Group of each item (speaker, site, ...); no group spans train and test. With
        ``folds`` too, groups are only checked.
    n_splits : int
        Number of folds when splitting by group or at random.
    random_state : int or None
        Seed for the shuffled group and random splits.

    Returns
    -------
    SplitPlan

    Examples
    --------
    >>> plan = make_splits(["a", "b"] * 3, groups=[1, 1, 2, 2, 3, 3])
    >>> plan.strategy
    'leave one group out (3 groups)'
    """
    y = np.asarray(y)
    n = y.shape[0]
    if y.ndim != 1 or n < 2:
        raise ParameterError(f"expected at least 2 labels in a 1-d array, got shape {y.shape}")
    if n_splits < 2:
        raise ParameterError(f"expected n_splits >= 2, got {n_splits}")
    if groups is not None:
        groups = _per_item(groups, n, "groups")
    if folds is not None:
        plan = _official_splits(_per_item(folds, n, "folds"))
        if groups is not None:
            plan.warnings.extend(_shared_groups(plan.splits, groups))
    elif groups is not None:
        plan = _group_splits(y, groups, n_splits, random_state)
    else:
        plan = _random_splits(y, n_splits, random_state)
    for split in plan.splits:
        missing = np.setdiff1d(np.unique(y[split.test]), np.unique(y[split.train]))
        if missing.size:
            plan.warnings.append(
                f"{split.name}: class(es) {', '.join(map(str, missing.tolist()))} have no "
                f"training example, so their test items cannot be classified right"
            )
    return plan


def _per_item(values, n: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if values.shape != (n,):
        raise ParameterError(f"expected {what} of shape ({n},) like y, got {values.shape}")
    return values


def _fold_key(value) -> str | None:
    """A fold value as text, or None for 'never tested'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value.item() if isinstance(value, np.generic) else value).strip()
    return None if text.lower() in _TRAIN_ONLY else text


def _official_splits(folds: np.ndarray) -> SplitPlan:
    keys = np.array([_fold_key(value) for value in folds], dtype=object)
    lowered = np.array([k.lower() if k is not None else "" for k in keys])
    notes: list[str] = []
    test_mask = np.isin(lowered, list(_TEST))
    if test_mask.any():
        validation = np.isin(lowered, list(_VALIDATION))
        if validation.any():
            notes.append(
                f"{int(validation.sum())} validation items were used for training "
                f"(no hyperparameters are tuned)"
            )
        test = np.flatnonzero(test_mask)
        train = np.flatnonzero(~test_mask)
        if train.size == 0:
            raise ParameterError("folds mark every item as test; nothing is left to train on")
        return SplitPlan(
            [Split("official test set", train, test)],
            f"official train/test split ({test.size} test items)",
            notes,
        )
    names = sorted({k for k in keys if k is not None}, key=_natural)
    tested = keys != None  # noqa: E711 - elementwise comparison on an object array
    if len(names) < 1 or (len(names) == 1 and tested.all()):
        raise ParameterError(
            f"folds must hold at least 2 distinct folds (or 1 plus train-only items), got {names}"
        )
    splits = []
    for name in names:
        test = np.flatnonzero(keys == name)
        splits.append(Split(f"fold {name}", np.flatnonzero(keys != name), test))
    strategy = f"official folds, each held out once ({len(names)} folds)"
    if not tested.all():
        strategy += f"; {int((~tested).sum())} items only ever train"
    return SplitPlan(splits, strategy, notes)


def _natural(text: str):
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


def _shared_groups(splits: list[Split], groups: np.ndarray) -> list[str]:
    notes = []
    for split in splits:
        shared = np.intersect1d(groups[split.train].astype(str), groups[split.test].astype(str))
        if shared.size:
            shown = ", ".join(shared[:5].tolist()) + (" ..." if shared.size > 5 else "")
            notes.append(
                f"{split.name}: {shared.size} group(s) on both sides of the split ({shown}); "
                f"the official folds do not keep these groups apart"
            )
    return notes


def _group_splits(y, groups, n_splits, random_state) -> SplitPlan:
    from sklearn.model_selection import StratifiedGroupKFold

    names = groups.astype(str)
    unique = sorted(set(names.tolist()), key=_natural)
    if len(unique) < 2:
        raise ParameterError(f"groups must hold at least 2 distinct groups, got {unique}")
    if len(unique) <= n_splits:
        splits = [
            Split(f"group {g}", np.flatnonzero(names != g), np.flatnonzero(names == g))
            for g in unique
        ]
        return SplitPlan(splits, f"leave one group out ({len(unique)} groups)")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    splits = []
    for index, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, names), start=1):
        held = sorted(set(names[test].tolist()), key=_natural)
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        splits.append(Split(f"fold {index} (groups {shown})", train, test))
    return SplitPlan(
        splits, f"stratified group {n_splits}-fold ({len(unique)} groups, none split)"
    )


def _random_splits(y, n_splits, random_state) -> SplitPlan:
    from sklearn.model_selection import StratifiedKFold

    notes = [
        "no folds or groups given: items were split at random. If several items come "
        "from one recording, speaker, site or session, this leaks and overstates "
        "accuracy; pass groups= (or folds=) to keep them apart"
    ]
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise ParameterError("a class has a single item; it cannot be both trained on and tested")
    if counts.min() < n_splits:
        notes.append(f"n_splits lowered from {n_splits} to {counts.min()} (smallest class)")
        n_splits = int(counts.min())
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    splits = [
        Split(f"fold {index}", train, test)
        for index, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y), start=1)
    ]
    return SplitPlan(splits, f"stratified {n_splits}-fold at random (may leak)", notes)


# --------------------------------------------------------------------- results
@dataclass
class EvaluationResult:
    """Scores of one learner under one split plan.

    Attributes
    ----------
    learner : str
    learner_params : dict
    strategy : str
        How the data was split, in words.
    classes : list
        Label names; the order of ``confusion`` rows and columns and of ``per_class``.
    splits : list of Split
    fold_accuracy, fold_macro_f1 : list of float
        One per split.
    y_true : np.ndarray [shape=(n,)]
    y_pred : np.ndarray [shape=(n,), dtype=object]
        Out-of-fold prediction of each item; None for items never tested.
    confusion : np.ndarray [shape=(n_classes, n_classes), dtype=int64]
        Rows are true classes, columns predicted ones, over the tested items.
    per_class : list of dict
        ``label``, ``precision``, ``recall``, ``f1``, ``support`` per class.
    warnings : list of str
        Things that make the figures less trustworthy (random split, adaptations).
    """

    learner: str
    learner_params: dict[str, Any]
    strategy: str
    classes: list
    splits: list[Split]
    fold_accuracy: list[float]
    fold_macro_f1: list[float]
    y_true: np.ndarray
    y_pred: np.ndarray
    confusion: np.ndarray
    per_class: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def tested(self) -> np.ndarray:
        """Mask of the items that were in some test part, [shape=(n,), dtype=bool]."""
        return np.array([p is not None for p in self.y_pred], dtype=bool)

    @property
    def n_tested(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Accuracy over all tested items pooled."""
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def macro_f1(self) -> float:
        """Mean of the per-class F1 over classes with test items (pooled)."""
        scores = [row["f1"] for row in self.per_class if row["support"] > 0]
        return float(np.mean(scores)) if scores else 0.0

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean(self.fold_accuracy))

    @property
    def accuracy_std(self) -> float:
        return float(np.std(self.fold_accuracy))

    @property
    def macro_f1_mean(self) -> float:
        return float(np.mean(self.fold_macro_f1))

    @property
    def macro_f1_std(self) -> float:
        return float(np.std(self.fold_macro_f1))

    def summary(self) -> str:
        """A few lines for people."""
        lines = [
            f"{self.learner}: accuracy {self.accuracy_mean:.1%} ± {self.accuracy_std:.1%} "
            f"over {len(self.splits)} split(s), macro-F1 {self.macro_f1_mean:.3f} ± "
            f"{self.macro_f1_std:.3f}",
            f"split: {self.strategy}; {self.n_tested} of {len(self.y_true)} items tested",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self, *, predictions: bool = True) -> dict[str, Any]:
        """JSON-serialisable form; :meth:`from_dict` restores it.

        Parameters
        ----------
        predictions : bool
            Include each item's true and predicted label and each split's test indices
            (needed by :meth:`from_dict`).
        """
        out: dict[str, Any] = {
            "learner": self.learner,
            "learner_params": _jsonable(self.learner_params),
            "strategy": self.strategy,
            "classes": _jsonable(self.classes),
            "n_items": int(len(self.y_true)),
            "n_tested": self.n_tested,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "macro_f1_mean": self.macro_f1_mean,
            "macro_f1_std": self.macro_f1_std,
            "splits": [
                {
                    "name": split.name,
                    "n_train": int(split.train.size),
                    "n_test": int(split.test.size),
                    "accuracy": accuracy,
                    "macro_f1": f1,
                    **({"test": split.test.tolist()} if predictions else {}),
                }
                for split, accuracy, f1 in zip(self.splits, self.fold_accuracy, self.fold_macro_f1)
            ],
            "per_class": _jsonable(self.per_class),
            "confusion_matrix": self.confusion.tolist(),
            "warnings": list(self.warnings),
        }
        if predictions:
            out["y_true"] = _jsonable(self.y_true.tolist())
            out["y_pred"] = _jsonable(self.y_pred.tolist())
        return out

    def to_json(self, *, indent: int | None = 2, predictions: bool = True) -> str:
        return json.dumps(self.to_dict(predictions=predictions), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        """Rebuild a result saved with ``to_dict(predictions=True)``."""
        if "y_true" not in data:
            raise ParameterError("this result was saved without predictions; it cannot be rebuilt")
        n = int(data["n_items"])
        everything = np.arange(n)
        splits = []
        for item in data["splits"]:
            test = np.asarray(item["test"], dtype=np.int64)
            splits.append(Split(item["name"], np.setdiff1d(everything, test), test))
        return cls(
            learner=data["learner"],
            learner_params=data["learner_params"],
            strategy=data["strategy"],
            classes=list(data["classes"]),
            splits=splits,
            fold_accuracy=[s["accuracy"] for s in data["splits"]],
            fold_macro_f1=[s["macro_f1"] for s in data["splits"]],
            y_true=np.asarray(data["y_true"]),
            y_pred=np.asarray(data["y_pred"], dtype=object),
            confusion=np.asarray(data["confusion_matrix"], dtype=np.int64),
            per_class=list(data["per_class"]),
            warnings=list(data["warnings"]),
        )


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------ evaluation
def check_matrix(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate an embedding matrix and its labels; shared with :mod:`earmark.curve`."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ParameterError(f"expected X of shape (n, dimension), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ParameterError(f"expected y of shape ({X.shape[0]},) like X's rows, got {y.shape}")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ParameterError(f"X has NaN or infinite values in {bad.size} rows (first: {bad[0]})")
    return X, y


def cross_validate(
    X,
    y,
    *,
    folds=None,
    groups=None,
    learner="logreg",
    n_splits: int = 5,
    random_state: int | None = 0,
    **learner_params: Any,
) -> EvaluationResult:
    """Cross-validate a learner on clip embeddings, split honestly.

    Parameters
    ----------
    X : np.ndarray [shape=(n, dimension)]
        Clip embeddings.
    y : array-like [shape=(n,)]
        Labels.
    folds, groups, n_splits, random_state
        See :func:`make_splits`.
    learner : str or sklearn classifier
        A name from :data:`earmark.learners.LEARNERS`, or an unfitted classifier (e.g.
        a ``GridSearchCV``'s ``best_estimator_``), cloned for every split.
    **learner_params
        Passed to :func:`earmark.learners.make_learner`.

    Returns
    -------
    EvaluationResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = rng.normal(size=(40, 3)) + (y == "b")[:, None] * 3
    >>> result = cross_validate(X, y, groups=np.tile(np.arange(4), 10))
    >>> result.strategy, result.accuracy > 0.9
    ('leave one group out (4 groups)', True)
    """
    X, y = check_matrix(X, y)
    plan = make_splits(y, folds=folds, groups=groups, n_splits=n_splits, random_state=random_state)
    return _evaluate(X, y, plan, learner, random_state, learner_params)


def evaluate_split(
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    learner="logreg",
    random_state: int | None = 0,
    **learner_params: Any,
) -> EvaluationResult:
    """Train on one set and test on another.

    Parameters
    ----------
    X_train : np.ndarray [shape=(n_train, dimension)]
    y_train : array-like [shape=(n_train,)]
    X_test : np.ndarray [shape=(n_test, dimension)]
    y_test : array-like [shape=(n_test,)]

    Returns
    -------
    EvaluationResult
        Items are numbered training set first (``y_true`` holds both).
    """
    X_train, y_train = check_matrix(X_train, y_train)
    X_test, y_test = check_matrix(X_test, y_test)
    if X_train.shape[1] != X_test.shape[1]:
        raise ParameterError(
            f"expected test embeddings of dimension {X_train.shape[1]} like the training "
            f"ones, got {X_test.shape[1]}"
        )
    n_train = X_train.shape[0]
    X = np.concatenate([X_train, X_test])
    y = np.concatenate([y_train, y_test])
    split = Split("given test set", np.arange(n_train), np.arange(n_train, len(y)))
    plan = SplitPlan([split], f"given train/test split ({n_train} train, {len(y_test)} test)")
    return _evaluate(X, y, plan, learner, random_state, learner_params)


def _evaluate(X, y, plan: SplitPlan, learner, random_state, learner_params) -> EvaluationResult:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.metrics import precision_recall_fscore_support

    from .learners import fit_learner, resolve_learner

    template, learner = resolve_learner(learner, random_state=random_state, **learner_params)
    classes = np.unique(y)
    y_pred = np.full(len(y), None, dtype=object)
    fold_accuracy, fold_f1 = [], []
    notes = list(plan.warnings)
    for split in plan.splits:
        fitted, adaptations = fit_learner(template, X[split.train], y[split.train])
        notes += [f"{split.name}: {note}" for note in adaptations]
        predicted = fitted.predict(X[split.test])
        y_pred[split.test] = list(predicted)
        truth = y[split.test]
        fold_accuracy.append(float(accuracy_score(truth, predicted)))
        fold_f1.append(float(f1_score(truth, predicted, average="macro", zero_division=0)))
    tested = np.array([p is not None for p in y_pred], dtype=bool)
    truth = y[tested]
    predicted = np.asarray(y_pred[tested].tolist(), dtype=y.dtype)
    confusion = confusion_matrix(truth, predicted, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    per_class = [
        {
            "label": _jsonable(label),
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for label, p, r, f, s in zip(classes, precision, recall, f1, support)
    ]
    return EvaluationResult(
        learner=learner,
        learner_params=dict(learner_params),
        strategy=plan.strategy,
        classes=[_jsonable(c) for c in classes],
        splits=plan.splits,
        fold_accuracy=fold_accuracy,
        fold_macro_f1=fold_f1,
        y_true=y,
        y_pred=y_pred,
        confusion=confusion.astype(np.int64),
        per_class=per_class,
        warnings=_unique(notes),
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
