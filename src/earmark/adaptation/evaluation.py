"""In-domain versus cross-domain accuracy, the gap between them, and what adaptation recovers.

:func:`evaluate_domains` answers "how much does my classifier lose when recording
conditions change, and does adaptation win it back?" on any labelled set with a domain
per item:

* **in-domain**: cross-validated accuracy within the training domain(s): stratified
  folds of their items, so test items share conditions (speaker, dynamic) with
  training items, which is the point;
* **cross-domain**: trained on all training-domain items, tested on the test domain(s);
* **gap**: in-domain minus cross-domain accuracy;
* **shift**: :func:`~earmark.adaptation.domain_shift` between the two sets of
  embeddings (no labels), before and after each alignment;
* **adapted**: cross-domain accuracy after each method, fitted on the training items and
  the test items' embeddings, never their labels (transductive: the audio to be labelled
  is the audio adapted to), and the fraction of the gap it closes; with each method, its
  estimate of the test domains' class proportions, its agreement with the consensus of
  all methods and a warning when it agrees less than doing nothing; ``auto`` is that
  consensus (:class:`~earmark.adaptation.ConsensusAdapter`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..exceptions import ParameterError

__all__ = ["DomainEvaluation", "evaluate_domains"]


@dataclass
class DomainEvaluation:
    """What :func:`evaluate_domains` measured.

    Attributes
    ----------
    train_domains, test_domains : list of str
    learner : str
    in_domain : EvaluationResult
        Cross-validated within the training domains.
    cross_domain : EvaluationResult
        Trained on the training domains, tested on the test domains.
    shift : DomainShift
    adapted : dict
        Per method: ``accuracy``, ``macro_f1``, ``gap_closed`` (fraction of the gap,
        NaN when there is no gap), ``shift`` (after alignment; None for methods that
        do not map embeddings), ``target_priors`` (the method's estimate of the test
        domains' class proportions, read from their audio only; None for methods that
        make none), ``agreement`` (share of test items given the consensus label).
        ``auto`` also has ``chosen`` (``"consensus"`` or ``"none"``), ``reason``,
        ``changed``, ``closest`` and every voter's ``agreement`` and estimate.
    target_proportions : dict
        The test domains' true class proportions, from their labels, for scoring the
        estimates (no method reads them).
    predictions : dict
        Per method, the predicted labels of the test-domain items
        [shape=(n_test,)], in their order in ``X``.
    views : dict
        Per panel name (``"before"``, each aligner, ``"dann (learned features)"``), the pair
        ``(X_source, X_target)`` in one space, for :func:`~earmark.adaptation.plots.plot_domains`.
    warnings : list of str
    """

    train_domains: list[str]
    test_domains: list[str]
    learner: str
    in_domain: Any
    cross_domain: Any
    shift: Any
    adapted: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    views: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    target_proportions: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """In-domain minus cross-domain accuracy."""
        return self.in_domain.accuracy_mean - self.cross_domain.accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_domains": self.train_domains,
            "test_domains": self.test_domains,
            "learner": self.learner,
            "in_domain_accuracy": self.in_domain.accuracy_mean,
            "in_domain_accuracy_std": self.in_domain.accuracy_std,
            "in_domain_strategy": self.in_domain.strategy,
            "cross_domain_accuracy": self.cross_domain.accuracy,
            "cross_domain_macro_f1": self.cross_domain.macro_f1,
            "gap": self.gap,
            "gap_points": 100 * self.gap,
            "n_train": int(self.cross_domain.splits[0].train.size),
            "n_test": int(self.cross_domain.splits[0].test.size),
            "shift": self.shift.to_dict(),
            "target_proportions": dict(self.target_proportions),
            "adapted": {
                name: {
                    **row,
                    "gap_closed": None if np.isnan(row["gap_closed"]) else row["gap_closed"],
                    "shift": None if row["shift"] is None else row["shift"].to_dict(),
                }
                for name, row in self.adapted.items()
            },
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """A few lines for people."""
        lines = [
            f"train {'+'.join(self.train_domains)} -> test {'+'.join(self.test_domains)} "
            f"({self.learner}): in-domain {self.in_domain.accuracy_mean:.1%}, cross-domain "
            f"{self.cross_domain.accuracy:.1%}, gap {100 * self.gap:.1f} points",
            f"shift: the domains are {self.shift.distinguishability:.2f} distinguishable "
            f"(0 = a classifier cannot tell them apart, 1 = it always can), MMD² "
            f"{self.shift.mmd2:.4f} (p={self.shift.mmd_p_value:.3f}): {self.shift.verdict}",
        ]
        for name, row in self.adapted.items():
            change = 100 * (row["accuracy"] - self.cross_domain.accuracy)
            closed = "" if np.isnan(row["gap_closed"]) else f", {row['gap_closed']:.0%} of the gap closed"
            line = f"  {name}: {row['accuracy']:.1%} ({change:+.1f} points{closed})"
            if row.get("chosen"):
                line += f", {row['chosen']}"
            lines.append(line)
            if row.get("target_priors"):
                estimate = ", ".join(f"{label} {value:.0%}" for label, value in row["target_priors"].items())
                lines.append(f"    estimated test proportions: {estimate}")
        if self.target_proportions and any(row.get("target_priors") for row in self.adapted.values()):
            truth = ", ".join(f"{label} {value:.0%}" for label, value in self.target_proportions.items())
            lines.append(f"  true test proportions (from its labels, for scoring): {truth}")
        if "auto" in self.adapted:
            lines.append(f"  auto: {self.adapted['auto']['reason']}")
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def evaluate_domains(
    X,
    y,
    domains,
    *,
    train_domains: Sequence[str],
    test_domains: Sequence[str],
    learner: str = "logreg",
    methods: Sequence[str] = (),
    n_splits: int = 5,
    n_permutations: int = 200,
    random_state: int | None = 0,
) -> DomainEvaluation:
    """Train on some domains, test on others, and adapt without the test labels.

    Parameters
    ----------
    X : np.ndarray [shape=(n, dimension)]
        Clip embeddings.
    y : array-like [shape=(n,)]
        Labels (those of the test domains are used to score, never to adapt).
    domains : array-like [shape=(n,)]
        Domain of each item.
    train_domains, test_domains : sequence of str
        Disjoint.
    learner : str
        See :data:`earmark.learners.LEARNERS` (the aligners adapt its input; ``dann``
        and ``selftrain`` bring their own classifier).
    methods : sequence of str
        Adaptation methods (:data:`~earmark.adaptation.METHODS`) to try.
    n_splits : int
        Folds for the in-domain accuracy.
    n_permutations : int
        For the MMD p-value.
    random_state : int or None

    Returns
    -------
    DomainEvaluation

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile(["a", "b"], 40)
    >>> X = rng.normal(size=(80, 5)) + (y == "b")[:, None] * 2
    >>> domains = np.repeat(["near", "far"], 40)
    >>> X[domains == "far"] = X[domains == "far"] * 3 + 4
    >>> result = evaluate_domains(X, y, domains, train_domains=["near"],
    ...                           test_domains=["far"], methods=["standardize"],
    ...                           n_permutations=0)
    >>> result.gap > 0.2, result.adapted["standardize"]["accuracy"] > 0.9
    (True, True)
    """
    from ..evaluation import check_matrix, cross_validate, evaluate_split
    from .methods import CHOICES
    from .shift import domain_shift

    X, y = check_matrix(X, y)
    domains = np.asarray(domains, dtype=object)
    if domains.shape != y.shape:
        raise ParameterError(f"expected one domain per item ({len(y)}), got shape {domains.shape}")
    train_domains, test_domains = _domain_list(train_domains), _domain_list(test_domains)
    known = sorted({str(d) for d in domains.tolist() if d is not None})
    for name in train_domains + test_domains:
        if name not in known:
            raise ParameterError(f"no item has domain {name!r}; domains are: {', '.join(known)}")
    overlap = set(train_domains) & set(test_domains)
    if overlap:
        raise ParameterError(f"domain(s) {sorted(overlap)} are both trained and tested on")
    unknown = sorted(set(methods) - set(CHOICES))
    if unknown:
        raise ParameterError(f"unknown adaptation method(s) {unknown}; expected some of: {', '.join(CHOICES)}")
    as_text = np.array([None if d is None else str(d) for d in domains.tolist()], dtype=object)
    source, target = np.isin(as_text, train_domains), np.isin(as_text, test_domains)
    Xs, ys, Xt, yt = X[source], y[source], X[target], y[target]
    warnings: list[str] = []
    missing = sorted(set(np.unique(yt).tolist()) - set(np.unique(ys).tolist()))
    if missing:
        warnings.append(f"class(es) {missing} of the test domains never occur in training")

    _, counts = np.unique(ys, return_counts=True)
    folds = int(min(n_splits, counts.min()))
    if folds < 2:
        raise ParameterError(
            "every class needs at least 2 items in the training domains for an in-domain "
            f"accuracy; the smallest has {counts.min()}"
        )
    in_domain = cross_validate(Xs, ys, learner=learner, n_splits=folds, random_state=random_state)
    # Stratified folds within a domain are the definition of in-domain here, not a leak.
    in_domain.warnings = [w for w in in_domain.warnings if "random" not in w]
    cross = evaluate_split(Xs, ys, Xt, yt, learner=learner, random_state=random_state)
    warnings += cross.warnings
    shift = domain_shift(Xs, Xt, n_permutations=n_permutations, random_state=random_state)
    evaluation = DomainEvaluation(
        train_domains=train_domains,
        test_domains=test_domains,
        learner=learner,
        in_domain=in_domain,
        cross_domain=cross,
        shift=shift,
        views={"before": (Xs, Xt)},
        warnings=warnings,
    )
    classes, counts_t = np.unique(yt, return_counts=True)
    evaluation.target_proportions = {
        str(label): float(count / counts_t.sum()) for label, count in zip(classes, counts_t)
    }
    _adapt_all(evaluation, Xs, ys, Xt, yt, methods, learner, n_permutations, random_state)
    return evaluation


def _adapt_all(evaluation, Xs, ys, Xt, yt, methods, learner, n_permutations, random_state):
    """Each method's predictions, view and estimated proportions; the consensus; warnings."""
    from .selection import AUTO_CANDIDATES, adapt_and_predict, consensus
    from .shift import domain_shift

    if not methods:
        return
    forward: dict[str, np.ndarray] = {}
    fits: dict[str, object] = {}
    for method in ("none", *[name for name in methods if name != "auto"], *AUTO_CANDIDATES):
        if method in forward:
            continue
        forward[method], fits[method] = adapt_and_predict(method, Xs, ys, Xt, learner=learner,
                                                          random_state=random_state)
    voters = {name: forward[name] for name in ("none", *AUTO_CANDIDATES)}
    agreed, choice = consensus(voters)
    floor = choice.agreement["none"]
    for method in [name for name in methods if name != "auto"]:
        predicted = forward[method]
        moved = _view(evaluation, method, fits[method], Xs, Xt)
        row_shift = None
        if moved is not None:
            row_shift = domain_shift(Xs, moved, n_permutations=n_permutations, random_state=random_state)
        row = _scores(yt, predicted, evaluation.cross_domain.accuracy, evaluation.gap, row_shift)
        row["target_priors"] = _priors(fits[method])
        row["agreement"] = float(np.mean(np.asarray(predicted).astype(str) == agreed.astype(str)))
        if row["agreement"] < floor:
            evaluation.warnings.append(
                f"{method} may hurt: it gives {row['agreement']:.0%} of the test items the label "
                f"most methods agree on, doing nothing {floor:.0%}"
            )
        evaluation.predictions[method] = np.asarray(predicted)
        evaluation.adapted[method] = row
    if "auto" in methods:
        row = _scores(yt, agreed, evaluation.cross_domain.accuracy, evaluation.gap, None)
        row.update(chosen=choice.method, reason=choice.reason, agreement=choice.agreement,
                   changed=choice.changed, closest=choice.closest,
                   # Prototype EM's estimate was the closest to the truth on the
                   # benchmarks (benchmarks/adaptation_label_shift.py).
                   target_priors=_priors(fits["prototypes"]),
                   target_priors_by_method={name: _priors(fits[name]) for name in AUTO_CANDIDATES
                                            if _priors(fits[name]) is not None})
        evaluation.predictions["auto"] = np.asarray(agreed)
        evaluation.adapted["auto"] = row
        if choice.closest not in evaluation.adapted and choice.closest != "none":
            before = set(evaluation.views)
            _view(evaluation, choice.closest, fits[choice.closest], Xs, Xt)
            for panel in set(evaluation.views) - before:
                evaluation.views[f"auto: {panel}"] = evaluation.views.pop(panel)


def _view(evaluation, method, fitted, Xs, Xt):
    """Both domains in the space the method's classifier reads; the moved target, if moved."""
    from .methods import ALIGNERS

    if method in ALIGNERS:
        moved = fitted.named_steps["adapt"].transform(Xt)
        evaluation.views[method] = (Xs, moved)
        return moved
    if hasattr(fitted, "transform_target"):
        if fitted.aligner_ is None:
            evaluation.views[f"{method} (embeddings unchanged)"] = (Xs, Xt)
            return None
        moved = fitted.transform_target(Xt)
        evaluation.views[method] = (Xs, moved)
        return moved
    if method == "dann":
        evaluation.views[f"{method} (learned features)"] = (fitted.features(Xs), fitted.features(Xt))
    elif method == "prototypes":
        space = fitted.model_._preprocess
        evaluation.views[f"{method} (prototype space)"] = (space(Xs), space(Xt) - fitted.shift_)
    elif method == "selftrain":
        moved = fitted.named_steps["adapt"].transform(Xt)
        evaluation.views[f"{method} (standardized; prototypes moved)"] = (Xs, moved)
    return None


def _priors(fitted) -> dict[str, float] | None:
    from .methods import estimated_priors

    return estimated_priors(fitted)


def _scores(truth, predicted, accuracy_before, gap, shift) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    accuracy = float(accuracy_score(truth, predicted))
    return {
        "accuracy": accuracy,
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "gap_closed": (accuracy - accuracy_before) / gap if gap > 0 else float("nan"),
        "shift": shift,
    }


def _domain_list(names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = [str(name) for name in names]
    if not names:
        raise ParameterError("expected at least one domain name")
    return names
