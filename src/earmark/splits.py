"""Deciding how to split labelled items into train and test parts, honestly.

The split decides whether a figure means anything. Recordings of one speaker, site or
session resemble each other more than any two recordings of a class do, so a random
split scores the memory of those conditions, not the class. Hence the policy of
:func:`make_splits`, in this order of precedence:

1. ``folds`` given (a dataset's official folds): each fold is the test set once, or a
   single split when the folds are named ``train`` / ``validation`` / ``test``; with
   ``groups`` too, the groups are only checked, and a group on both sides is a warning;
2. ``groups`` given (speaker, site, session): no group is ever on both sides; leave one
   group out when there are at most ``n_splits`` groups, stratified group k-fold beyond;
3. neither: stratified k-fold at random, and the plan carries a warning that this may
   leak and overstate accuracy.

Never at random when folds or groups exist. Every learner trains on everything outside
the test part of a split, so each split is recorded by its test indices alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .exceptions import ParameterError

__all__ = ["Split", "SplitPlan", "make_splits", "fold_key", "natural_key"]

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


def fold_key(value) -> str | None:
    """A fold value as text, or None for 'never tested'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value.item() if isinstance(value, np.generic) else value).strip()
    return None if text.lower() in _TRAIN_ONLY else text


def _official_splits(folds: np.ndarray) -> SplitPlan:
    keys = np.array([fold_key(value) for value in folds], dtype=object)
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
    names = sorted({k for k in keys if k is not None}, key=natural_key)
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


def natural_key(text: str):
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
    unique = sorted(set(names.tolist()), key=natural_key)
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
        held = sorted(set(names[test].tolist()), key=natural_key)
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
