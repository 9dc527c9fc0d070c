"""Honest evaluation of a learner on clip embeddings.

Each learner is scored under a :class:`~earmark.splits.SplitPlan` from
:func:`earmark.splits.make_splits` (official folds, else groups, else random with a
leak warning; see :mod:`earmark.splits`), trained on everything outside the test part
of each split, and its out-of-fold predictions pooled into one confusion matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from .exceptions import ParameterError
from .splits import Split, SplitPlan, make_splits

__all__ = [
    "Split",
    "SplitPlan",
    "EvaluationResult",
    "make_splits",
    "cross_validate",
    "evaluate_split",
]


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
    proba : np.ndarray [shape=(n, n_classes)] or None
        Out-of-fold probabilities (columns in the order of ``classes``; NaN rows for
        items never tested); None if the learner gives none.
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
    proba: np.ndarray | None = None

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

    @property
    def ece(self) -> float | None:
        """Expected calibration error (top label, 15 bins) of the out-of-fold
        probabilities; None without probabilities."""
        return None if self.calibration is None else self.calibration["ece"]

    @property
    def ece_floor(self) -> float | None:
        """The ECE a perfectly calibrated model would show on the tested items by chance
        (:func:`~earmark.calibration_metrics.ece_sampling_floor`); None without
        probabilities."""
        return None if self.calibration is None else self.calibration["ece_floor"]

    @property
    def brier(self) -> float | None:
        """Multi-class Brier score of the out-of-fold probabilities."""
        return None if self.calibration is None else self.calibration["brier"]

    @cached_property
    def calibration(self) -> dict[str, Any] | None:
        """ECE, its sampling floor (:func:`~earmark.calibration_metrics.ece_sampling_floor`),
        Brier, mean confidence, reliability bins and per-class ECE (classes with at least
        20 tested items, one-vs-rest), from the pooled out-of-fold probabilities; None
        without them."""
        if self.proba is None:
            return None
        from .calibration_metrics import (
            brier_score,
            ece_sampling_floor,
            expected_calibration_error,
            reliability_table,
        )

        tested = self.tested & np.isfinite(self.proba).all(axis=1)
        if not tested.any():
            return None
        truth, proba = self.y_true[tested], self.proba[tested]
        classes = np.asarray(self.classes, dtype=self.y_true.dtype)
        per_class = []
        for k, label in enumerate(classes):
            n = int((truth == label).sum())
            if n < _PER_CLASS_MINIMUM:
                continue
            binary = np.column_stack([1 - proba[:, k], proba[:, k]])
            per_class.append({
                "label": _jsonable(label),
                "support": n,
                "ece": expected_calibration_error(truth == label, binary, [False, True]),
            })
        return {
            "ece": expected_calibration_error(truth, proba, classes),
            # What a perfectly calibrated model would show on these items by chance.
            "ece_floor": ece_sampling_floor(proba.max(axis=1)),
            "brier": brier_score(truth, proba, classes),
            "mean_confidence": float(proba.max(axis=1).mean()),
            "bins": reliability_table(truth, proba, classes),
            "per_class": per_class,
        }

    def summary(self) -> str:
        """A few lines for people."""
        lines = [
            f"{self.learner}: accuracy {self.accuracy_mean:.1%} ± {self.accuracy_std:.1%} "
            f"over {len(self.splits)} split(s), macro-F1 {self.macro_f1_mean:.3f} ± "
            f"{self.macro_f1_std:.3f}",
            f"split: {self.strategy}; {self.n_tested} of {len(self.y_true)} items tested",
        ]
        if self.ece is not None:
            lines.append(
                f"calibration: ECE {self.ece:.3f} (15 bins; a perfectly calibrated model "
                f"would show {self.ece_floor:.3f} on these items by chance), "
                f"Brier {self.brier:.3f}"
            )
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
            "ece": self.ece,
            "ece_floor": self.ece_floor,
            "brier": self.brier,
            "calibration": self.calibration,
            "warnings": list(self.warnings),
        }
        if predictions:
            out["y_true"] = _jsonable(self.y_true.tolist())
            out["y_pred"] = _jsonable(self.y_pred.tolist())
            if self.proba is not None:
                out["proba"] = [
                    None if not np.isfinite(row).all() else row.tolist() for row in self.proba
                ]
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
            proba=_proba_from(data.get("proba"), len(data["classes"])),
        )


#: Classes with fewer tested items get no per-class calibration figure.
_PER_CLASS_MINIMUM = 20


def _proba_from(rows, n_classes: int) -> np.ndarray | None:
    if rows is None:
        return None
    return np.array(
        [[np.nan] * n_classes if row is None else row for row in rows], dtype=float
    ).reshape(len(rows), n_classes)


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
        See :func:`earmark.splits.make_splits`.
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
    # Calibration inside each training part learns from held-out groups (else folds).
    calibration_groups = groups if groups is not None else folds
    return _evaluate(X, y, plan, learner, random_state, learner_params, calibration_groups)


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


def _evaluate(
    X, y, plan: SplitPlan, learner, random_state, learner_params, groups=None
) -> EvaluationResult:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.metrics import precision_recall_fscore_support

    from .learners import fit_learner, resolve_learner

    template, learner = resolve_learner(learner, random_state=random_state, **learner_params)
    classes = np.unique(y)
    y_pred = np.full(len(y), None, dtype=object)
    proba = np.full((len(y), len(classes)), np.nan)
    has_proba = True
    fold_accuracy, fold_f1 = [], []
    notes = list(plan.warnings)
    groups = None if groups is None else np.asarray(groups)
    for split in plan.splits:
        fitted, adaptations = fit_learner(
            template, X[split.train], y[split.train],
            groups=None if groups is None else groups[split.train],
        )
        notes += [f"{split.name}: {note}" for note in adaptations]
        has_proba = has_proba and hasattr(fitted, "predict_proba")
        if has_proba:
            # A class absent from this training part gets probability 0.
            block = np.zeros((split.test.size, len(classes)))
            block[:, np.searchsorted(classes, fitted.classes_)] = fitted.predict_proba(
                X[split.test]
            )
            proba[split.test] = block
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
        proba=proba if has_proba else None,
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
