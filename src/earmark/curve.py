"""Learning curves: how accuracy grows with the number of labelled examples per class.

The question a user with little data asks is "how many examples do I need to label?".
For each split of :func:`earmark.splits.make_splits` (the same folds or groups as
evaluation, so no group leaks), and each size ``k``, ``k`` examples per class are drawn
from the training part, a fresh learner is fitted on them and tested on the whole test
part. Each point repeats this for several draws with fixed seeds; its spread mixes the
luck of the draw with the difference between splits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .evaluation import check_matrix
from .files import jsonable
from .exceptions import ParameterError, TooFewExamplesError
from .splits import make_splits

__all__ = ["CurvePoint", "CurveResult", "learning_curve", "DEFAULT_SIZES"]

DEFAULT_SIZES: tuple[int | str, ...] = (1, 2, 4, 8, 16, 32, "all")


@dataclass
class CurvePoint:
    """Scores at one training-set size.

    Attributes
    ----------
    size : int or "all"
        Training examples per class (``"all"``: the whole training part).
    examples_per_class : float
        Mean number of training examples per class actually used (differs from
        ``size`` only for ``"all"``).
    accuracy : list of float
        One per (split, draw) fit.
    macro_f1 : list of float
    """

    size: int | str
    examples_per_class: float
    accuracy: list[float]
    macro_f1: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracy))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracy))

    @property
    def min(self) -> float:
        return float(np.min(self.accuracy))

    @property
    def max(self) -> float:
        return float(np.max(self.accuracy))

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "examples_per_class": self.examples_per_class,
            "n_fits": len(self.accuracy),
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "macro_f1_mean": float(np.mean(self.macro_f1)),
            "accuracy": list(self.accuracy),
            "macro_f1": list(self.macro_f1),
        }


@dataclass
class CurveResult:
    """A learning curve of one learner on one set of embeddings.

    Attributes
    ----------
    learner : str
    strategy : str
        How the data was split (see :func:`earmark.splits.make_splits`).
    points : list of CurvePoint
        In increasing size, ``"all"`` last.
    skipped : list of dict
        ``{"size", "reason"}`` for each requested size that could not be drawn.
    n_draws, random_state : int
    n_classes : int
    warnings : list of str
    """

    learner: str
    strategy: str
    points: list[CurvePoint]
    skipped: list[dict[str, Any]]
    n_draws: int
    random_state: int | None
    n_classes: int
    warnings: list[str] = field(default_factory=list)

    @property
    def chance(self) -> float:
        """Accuracy of guessing uniformly among the classes."""
        return 1.0 / self.n_classes

    def point(self, size: int | str) -> CurvePoint:
        for point in self.points:
            if point.size == size:
                return point
        raise KeyError(f"no point for size {size!r}; sizes: {[p.size for p in self.points]}")

    def summary(self) -> str:
        rows = [f"{self.learner} ({self.strategy}), {self.n_draws} draws per split:"]
        for p in self.points:
            rows.append(
                f"  {str(p.size):>4} per class: {p.mean:.1%} ± {p.std:.1%} "
                f"(min {p.min:.1%}, max {p.max:.1%}, {len(p.accuracy)} fits)"
            )
        rows += [f"  skipped {s['size']}: {s['reason']}" for s in self.skipped]
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner,
            "strategy": self.strategy,
            "n_draws": self.n_draws,
            "random_state": self.random_state,
            "n_classes": self.n_classes,
            "points": [p.to_dict() for p in self.points],
            "skipped": jsonable(self.skipped),
            "warnings": list(self.warnings),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CurveResult":
        return cls(
            learner=data["learner"],
            strategy=data["strategy"],
            points=[
                CurvePoint(
                    p["size"], p["examples_per_class"], list(p["accuracy"]), list(p["macro_f1"])
                )
                for p in data["points"]
            ],
            skipped=list(data["skipped"]),
            n_draws=data["n_draws"],
            random_state=data["random_state"],
            n_classes=data["n_classes"],
            warnings=list(data["warnings"]),
        )


def learning_curve(
    X,
    y,
    *,
    folds=None,
    groups=None,
    learner="logreg",
    sizes: Sequence[int | str] = DEFAULT_SIZES,
    n_draws: int = 5,
    n_splits: int = 5,
    random_state: int | None = 0,
    on_fit: Callable[[int, int], Any] | None = None,
    **learner_params: Any,
) -> CurveResult:
    """Accuracy against the number of training examples per class.

    Parameters
    ----------
    X : np.ndarray [shape=(n, dimension)]
        Clip embeddings.
    y : array-like [shape=(n,)]
    folds, groups, n_splits
        The splits, as in :func:`earmark.evaluation.cross_validate`.
    learner : str or sklearn classifier
        As in :func:`earmark.evaluation.cross_validate`. A learner whose ``fit`` takes
        ``groups`` (:class:`earmark.networks.NetworkClassifier`, which holds out groups
        to stop early) gets the groups (else folds) of the items drawn.
    sizes : sequence of int or "all"
        Examples per class. A size is skipped (and listed in ``skipped``) when some
        class has fewer training examples than that in some split, so every point
        averages the same splits.
    n_draws : int
        Random draws per split and size (``"all"`` needs only one).
    random_state : int or None
        Seed of the draws; the same seed gives the same curve.
    **learner_params
        Passed to :func:`earmark.learners.make_learner`.
    on_fit : callable, optional
        Called as ``on_fit(done, total)`` after each fit, for a progress bar: a curve
        makes ``splits x draws`` fits per size.

    Returns
    -------
    CurveResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = rng.normal(size=(40, 3)) + (y == "b")[:, None] * 3
    >>> curve = learning_curve(X, y, groups=np.tile(np.arange(4), 10), sizes=(1, 4, "all"))
    >>> [p.size for p in curve.points]
    [1, 4, 'all']
    """
    from sklearn.metrics import accuracy_score, f1_score

    from . import learners

    X, y = check_matrix(X, y)
    if n_draws < 1:
        raise ParameterError(f"expected n_draws >= 1, got {n_draws}")
    wanted = _check_sizes(sizes)
    plan = make_splits(y, folds=folds, groups=groups, n_splits=n_splits, random_state=random_state)
    template, learner = learners.resolve_learner(
        learner, random_state=random_state, **learner_params
    )
    # Per split: the training indices of each class present in its training part.
    by_class = [
        {label: split.train[y[split.train] == label] for label in np.unique(y[split.train])}
        for split in plan.splits
    ]
    fewest, fewest_label, fewest_split = min(
        (len(ix), label, split.name)
        for split, classes in zip(plan.splits, by_class)
        for label, ix in classes.items()
    )
    points, skipped, notes = [], [], list(plan.warnings)
    seed = 0 if random_state is None else int(random_state)
    total = sum(
        len(plan.splits) * (1 if size == "all" else n_draws)
        for size in wanted
        if size == "all" or size <= fewest
    )
    done = 0
    # Learners that hold out part of their training data (networks, to stop early) do it
    # by group, else by official fold.
    # (Only to those: calibrated learners' curves stay as they were.)
    from .calibration import CalibratedLearner

    last = template.steps[-1][1] if hasattr(template, "steps") else template
    fit_groups = groups if groups is not None else folds
    if fit_groups is not None and not isinstance(last, CalibratedLearner):
        fit_groups = np.asarray(fit_groups)
    else:
        fit_groups = None
    refused = None
    for size in wanted:
        if size != "all" and size > fewest:
            skipped.append(
                {
                    "size": size,
                    "reason": f"class {jsonable(fewest_label)!r} has only {fewest} training "
                    f"examples in {fewest_split}",
                }
            )
            continue
        accuracy, macro_f1, used = [], [], []
        for split_index, (split, classes) in enumerate(zip(plan.splits, by_class)):
            for draw in range(1 if size == "all" else n_draws):
                if size == "all":
                    train = split.train
                else:
                    # One seed per (split, size, draw): a point does not change when
                    # other sizes are added or removed.
                    rng = np.random.default_rng([seed, split_index, size, draw])
                    train = np.concatenate(
                        [rng.choice(ix, size=size, replace=False) for ix in classes.values()]
                    )
                try:
                    fitted, adaptations = learners.fit_learner(
                        template, X[train], y[train],
                        **({} if fit_groups is None else {"groups": fit_groups[train]}),
                    )
                except TooFewExamplesError as error:
                    refused = str(error)
                    break
                notes += [f"size {size}, {split.name}: {note}" for note in adaptations]
                predicted = fitted.predict(X[split.test])
                truth = y[split.test]
                accuracy.append(float(accuracy_score(truth, predicted)))
                macro_f1.append(float(f1_score(truth, predicted, average="macro", zero_division=0)))
                used.append(len(train) / len(classes))
                done += 1
                if on_fit is not None:
                    on_fit(done, total)
            if refused:
                break
        if refused:
            # A learner that cannot learn from this few (a network needs 2 per class).
            skipped.append({"size": size, "reason": refused})
            refused = None
            continue
        points.append(CurvePoint(size, float(np.mean(used)), accuracy, macro_f1))
    if not points:
        raise ParameterError(f"no size could be drawn: {skipped}")
    return CurveResult(
        learner=learner,
        strategy=plan.strategy,
        points=points,
        skipped=skipped,
        n_draws=n_draws,
        random_state=random_state,
        n_classes=int(np.unique(y).size),
        warnings=_summarise(notes),
    )


def _check_sizes(sizes: Sequence[int | str]) -> list[int | str]:
    numbers, has_all = set(), False
    for size in sizes:
        if size == "all":
            has_all = True
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1:
            numbers.add(int(size))
        else:
            raise ParameterError(f"expected sizes to be positive integers or 'all', got {size!r}")
    if not numbers and not has_all:
        raise ParameterError("expected at least one size")
    return sorted(numbers) + (["all"] if has_all else [])


def _summarise(notes: list[str], limit: int = 20) -> list[str]:
    """Deduplicate, and cap: a curve makes hundreds of fits."""
    unique = list(dict.fromkeys(notes))
    if len(unique) > limit:
        unique = unique[:limit] + [f"... and {len(unique) - limit} more notes like these"]
    return unique
