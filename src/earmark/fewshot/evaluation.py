"""Few-shot accuracy over many episodes, with a 95 % confidence interval.

For each shot count, :func:`evaluate_episodes` draws episodes with
:class:`~earmark.fewshot.episodes.EpisodeSampler` (support and query never share a
group), fits a fresh copy of the classifier on each support set only, and scores its
queries. A figure is the mean over episodes with ``1.96 * std / sqrt(episodes)`` as its
95 % confidence interval, as in the few-shot literature; it says how well the mean is
known, not how much single episodes vary.

Beside accuracy:

* **coarse accuracy**, with a taxonomy (or a classifier with ``predict_levels``): the
  predicted class mapped to its parent, or the classifier's own coarse prediction,
  against the true class's parent. A class without a parent is its own coarse class.
* **open set** (``unknown_ways``): queries of classes absent from the support set. Each
  query gets a known-ness score (the classifier's largest decision value, for
  prototypes minus the nearest distance; else its largest probability). Per episode the
  threshold that keeps ``coverage`` (90 %) of the in-set queries is set on those
  queries, and the share of out-of-set queries below it is the **rejection**; a score
  that knows nothing rejects ``1 - coverage``. AUROC of in-set against out-of-set
  queries needs no threshold. A classifier with ``is_unknown`` is also scored with its
  own support-calibrated threshold: in-set coverage and out-of-set rejection.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..evaluation import check_matrix
from ..exceptions import ParameterError
from .episodes import EpisodeSampler
from .results import FewShotPoint, FewShotResult, mean_ci95

__all__ = ["FewShotPoint", "FewShotResult", "evaluate_episodes", "mean_ci95", "DEFAULT_SHOTS",
           "CENTERS"]

DEFAULT_SHOTS: tuple[int, ...] = (1, 5)

#: Where prototype methods can centre the embeddings (``evaluate_episodes(center=)``).
CENTERS: tuple[str, ...] = ("collection", "support")


def evaluate_episodes(
    X,
    y,
    *,
    groups=None,
    folds=None,
    query_fold=None,
    estimator=None,
    ways: int | str = 5,
    shots: Sequence[int] = DEFAULT_SHOTS,
    queries: int = 15,
    episodes: int = 600,
    unknown_ways: int = 0,
    taxonomy=None,
    classes: Sequence | None = None,
    seed: int = 0,
    coverage: float = 0.9,
    center: str = "collection",
    progress: Callable[[int, int], Any] | None = None,
) -> FewShotResult:
    """N-way K-shot accuracy over many episodes, support and query kept apart.

    Parameters
    ----------
    X : np.ndarray [shape=(n, dimension)]
        Clip embeddings.
    y : array-like [shape=(n,)]
    groups, folds, query_fold, ways, queries, unknown_ways, classes, seed
        The episodes, as in :class:`~earmark.fewshot.episodes.EpisodeSampler`.
    estimator : str or sklearn classifier, optional
        A method name (:data:`earmark.fewshot.methods.METHODS`, default ``"prototype"``)
        or a classifier, cloned and fitted on each support set alone.
    shots : sequence of int
        Support examples per class; one point each. A count no episode can be drawn
        for is skipped, with the reason in ``skipped``.
    episodes : int
        Episodes per point; the same episode indices (so the same classes) at every
        shot count.
    taxonomy : Taxonomy, mapping, str or Path, optional
        Adds coarse accuracy: any object with ``parent(label)``, a child -> parent
        mapping, or a shipped taxonomy's name or file (:func:`earmark.taxonomy.load_taxonomy`).
        Taken from the estimator's ``taxonomy`` if not given.
    coverage : float
        Share of in-set queries kept when measuring out-of-set rejection.
    center : {"collection", "support"}
        Where prototype methods centre the embeddings: on the mean of all of ``X``, used
        without its labels (the user's whole collection, as a user with a few labels and
        a pile of audio has it; see :mod:`earmark.fewshot.prototypes`), or on each support
        set's own mean. Other methods ignore it, and so does an estimator given its own
        ``center``.
    progress : callable, optional
        ``progress(done, total)`` after each episode.

    Returns
    -------
    FewShotResult

    Examples
    --------
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(list("abcdef"), 10)
    >>> X = rng.normal(size=(60, 4)) + np.repeat(np.eye(6, 4) * 4, 10, axis=0)
    >>> speakers = np.tile(np.arange(5), 12)
    >>> result = evaluate_episodes(X, y, groups=speakers, ways=3, shots=(1, 2), episodes=50,
    ...                            estimator=KNeighborsClassifier(n_neighbors=1))
    >>> [(p.shots, p.n_episodes) for p in result.points]
    [(1, 50), (2, 50)]
    >>> result.point(2).mean > 1 / 3
    True
    """
    from threadpoolctl import threadpool_limits

    X, y = check_matrix(X, y)
    shot_counts = _check_shots(shots)
    if not 0.0 < coverage < 1.0:
        raise ParameterError(f"expected coverage in (0, 1), got {coverage}")
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) or episodes < 1:
        raise ParameterError(f"expected episodes to be an integer >= 1, got {episodes!r}")
    taxonomy = _as_taxonomy(taxonomy)
    template, method = _resolve(estimator, taxonomy, seed)
    if center not in CENTERS:
        raise ParameterError(f"expected center 'collection' or 'support', got {center!r}")
    centred = None
    if _centres(template):
        centred = "each support set's mean"
        if template.center is not None:
            centred = "the centre the estimator was given"
        elif center == "collection":
            template.set_params(center=template.center_of(X))
            centred = f"the mean of all {len(X)} items (labels unused)"
    if taxonomy is None:
        taxonomy = _as_taxonomy(getattr(template, "taxonomy", None))
    options = dict(
        groups=groups, folds=folds, query_fold=query_fold, ways=ways, queries=queries,
        unknown_ways=unknown_ways, classes=classes, seed=seed,
    )
    samplers, skipped, notes = [], [], []
    for k in shot_counts:
        sampler = EpisodeSampler(y, shots=k, **options)
        notes += sampler.notes
        if sampler.problem is None:
            samplers.append(sampler)
        else:
            skipped.append({"shots": k, "reason": sampler.problem})
    if not samplers:
        reasons = "; ".join(s["reason"] for s in skipped)
        raise ParameterError(f"no episode could be drawn: {reasons}")
    coarse_of = _coarse_map(taxonomy, np.unique(y), notes) if taxonomy is not None else None
    from .methods import METHODS

    adapt = isinstance(estimator, str) and METHODS[estimator].learner
    scoring = _Scoring(coverage, unknown_ways > 0, coarse_of, adapt, groups)
    total, done = episodes * len(samplers), 0
    points = []
    # Thousands of tiny fits: a second BLAS thread costs more in hand-offs than it gives.
    with threadpool_limits(limits=1, user_api="blas"):
        for sampler in samplers:
            point = FewShotPoint(
                sampler.shots, sampler.n_ways, [], n_eligible=len(sampler.eligible)
            )
            queries_seen, one_group = [], 0
            for index in range(episodes):
                episode = sampler.episode(index)
                notes += _episode_notes(sampler.shots, episode)
                if episode.ways >= 2:
                    notes += scoring.score(template, X, y, episode, point)
                    queries_seen.append(np.unique(y[episode.query], return_counts=True)[1])
                    scoring.redraws += episode.redraws > 0
                    one_group += _support_in_one_group(groups, y, episode)
                done += 1
                if progress is not None:
                    progress(done, total)
            if not queries_seen:
                skipped.append({"shots": sampler.shots, "reason": "every episode was skipped"})
                continue
            counts = np.concatenate(queries_seen)
            point.queries_per_class = float(counts.mean())
            point.fewest_queries = int(counts.min())
            kept = float(np.mean(point.own_coverage)) if point.own_coverage else None
            if groups is not None and sampler.shots >= 2 and kept is not None \
                    and kept < coverage - 0.1:
                notes.append(
                    f"{sampler.shots}-shot: the classifier's own 'unknown' threshold kept "
                    f"{kept:.0%} of known queries where {coverage:.0%} was asked: it is "
                    "learned from support items held out by group where a class's support "
                    "spans several groups (speaker, recording), and by item where it does "
                    "not; in "
                    f"{one_group} of {len(queries_seen)} episodes each class's support came "
                    "from a single group, which cannot tell how far a new group lies"
                )
            if point.fewest_queries < queries:
                notes.append(
                    f"{sampler.shots}-shot: some classes had fewer than {queries} queries "
                    f"(fewest {point.fewest_queries}, mean {point.queries_per_class:.1f})"
                )
            points.append(point)
    if not points:
        reasons = "; ".join(f"{s['shots']}-shot: {s['reason']}" for s in skipped)
        raise ParameterError(f"no episode could be scored: {reasons}")
    if scoring.redraws:
        notes.append(
            f"{scoring.redraws} episodes were redrawn because a first split of the groups "
            "left a class without query items"
        )
    return FewShotResult(
        method=method,
        strategy=samplers[0].strategy,
        ways=ways,
        queries=queries,
        episodes=episodes,
        unknown_ways=unknown_ways,
        seed=seed,
        coverage=coverage,
        points=points,
        skipped=skipped,
        unknown_score=scoring.unknown_score,
        coarse_source=scoring.coarse_source,
        warnings=_summarise(notes),
        center=centred,
    )


def _support_in_one_group(groups, y, episode) -> bool:
    """Whether each class's support items all share one group (FSDD: one speaker says
    all five shots). A prototype threshold learned from such a support set cannot be held
    out by group, and kept 4 % of known digits from other speakers where 90 % was asked
    (BirdNET, 300 episodes); with two speakers per digit it is held out by speaker and
    kept 75 % (MFCC, the tests' subset)."""
    from .crossfit import group_spans

    if groups is None:
        return False
    support = np.asarray(episode.support)
    codes = np.unique(np.asarray(y)[support], return_inverse=True)[1]
    return bool(group_spans(np.asarray(groups)[support], codes).max() == 1)


def _episode_notes(shots: int, episode) -> list[str]:
    notes = []
    if episode.dropped:
        notes.append(
            f"{shots}-shot episode {episode.index}: class(es) {', '.join(episode.dropped)} "
            "dropped, no split of the groups gave them both support and query items"
        )
    if episode.ways < 2:
        notes.append(f"{shots}-shot episode {episode.index}: fewer than 2 classes, skipped")
    return notes


class _Scoring:
    """Scores one episode into a point; remembers how known-ness was measured."""

    def __init__(self, coverage: float, open_set: bool, coarse_of: dict | None, adapt: bool,
                 groups=None):
        self.fit = _fit_adapted if adapt else _fit
        # The support's groups reach fit (where it takes them): queries come from new
        # groups, and a prototype threshold held out by group knows how far they lie.
        self.groups = None if groups is None else np.asarray(groups)
        self.coverage = coverage
        self.open_set = open_set
        self.coarse_of = coarse_of
        self.unknown_score: str | None = None
        self.coarse_source: str | None = None
        self.redraws = 0

    def score(self, template, X, y, episode, point: FewShotPoint) -> list[str]:
        support_groups = None if self.groups is None else self.groups[episode.support]
        fitted, notes = self.fit(template, X[episode.support], y[episode.support],
                                 support_groups)
        open_set = self.open_set and episode.unknown_query.size > 0
        # One call per method on in-set and out-of-set queries together: every method
        # scores rows independently, and each call repeats the preprocessing.
        queries = np.r_[episode.query, episode.unknown_query] if open_set else episode.query
        X_query, n_in = X[queries], len(episode.query)
        truth = y[episode.query]
        predicted = np.asarray(fitted.predict(X_query))[:n_in]
        point.accuracy.append(float(np.mean(predicted == truth)))
        if self.coarse_of is not None:
            coarse = self._coarse_prediction(fitted, X_query[:n_in], predicted)
            point.coarse_accuracy.append(float(np.mean(coarse == _mapped(self.coarse_of, truth))))
        if hasattr(fitted, "is_unknown"):
            unknown = np.asarray(fitted.is_unknown(X_query), dtype=bool)
            point.own_coverage.append(1.0 - float(np.mean(unknown[:n_in])))
            if open_set:
                point.own_rejection.append(float(np.mean(unknown[n_in:])))
        if not open_set:
            return notes
        known, how = _known_score(fitted, X_query)
        if known is None:
            return notes + ["the classifier has neither decision_function nor predict_proba: "
                            "no open-set figures"]
        self.unknown_score = how
        known_in, known_out = known[:n_in], known[n_in:]
        threshold = np.quantile(known_in, 1.0 - self.coverage, method="lower")
        point.rejection.append(float(np.mean(known_out < threshold)))
        point.auroc.append(_auroc(known_in, known_out))
        for name, score in _known_scores(fitted, X_query).items():
            point.auroc_by_score.setdefault(name, []).append(_auroc(score[:n_in], score[n_in:]))
        return notes

    def _coarse_prediction(self, fitted, X_in, predicted) -> np.ndarray:
        leaf_level = _mapped(self.coarse_of, predicted)
        if not hasattr(fitted, "predict_levels"):
            self.coarse_source = "parent of the predicted class"
            return leaf_level
        # The coarse level is the one whose labels are parents of the classes (the
        # leaf level is excluded unless every class is its own parent).
        vocabulary = set(self.coarse_of.values())
        for name, labels in fitted.predict_levels(X_in).items():
            labels = np.asarray(labels, dtype=object)
            if set(labels.tolist()) <= vocabulary and not np.array_equal(labels, predicted):
                self.coarse_source = f"predict_levels()[{name!r}]"
                return labels
        self.coarse_source = "parent of the predicted class"
        return leaf_level


def _centres(template) -> bool:
    """Whether the method takes a collection centre (prototype methods that centre)."""
    params = template.get_params(deep=False) if hasattr(template, "center_of") else {}
    return "center" in params and bool(params.get("standardize"))


def _fit(template, X, y, groups=None) -> tuple[Any, list[str]]:
    from sklearn.base import clone

    from ..learners import fit_with_groups

    return fit_with_groups(clone(template), X, y, groups), []


def _fit_adapted(template, X, y, groups=None) -> tuple[Any, list[str]]:
    """Learners of :mod:`earmark.learners` are adapted to tiny support sets (fewer
    neighbours, no calibration with one shot) and say so."""
    from ..learners import fit_learner

    return fit_learner(template, X, y, groups=groups)


def _known_score(fitted, X) -> tuple[np.ndarray | None, str | None]:
    """How sure the classifier is that each item is one of its classes (higher: surer)."""
    if hasattr(fitted, "decision_function"):
        values = np.asarray(fitted.decision_function(X), dtype=float)
        if values.ndim == 1:  # two classes: one signed margin
            return np.abs(values), "absolute decision_function (two classes)"
        return values.max(axis=1), "largest decision_function value"
    if hasattr(fitted, "predict_proba"):
        return np.asarray(fitted.predict_proba(X), dtype=float).max(axis=1), "largest probability"
    return None, None


def _known_scores(fitted, X) -> dict[str, np.ndarray]:
    """Every known-ness score the classifier offers, to compare on the same episodes:
    the largest logit (max-logit), the energy ``logsumexp`` of the logits (Liu et al.
    2020), the largest probability, and the classifier's own ``known_score`` (for
    prototypes, minus the nearest distance)."""
    from scipy.special import logsumexp

    scores = {}
    if hasattr(fitted, "decision_function"):
        values = np.asarray(fitted.decision_function(X), dtype=float)
        if values.ndim == 2:
            scores["max-logit"] = values.max(axis=1)
            scores["energy"] = logsumexp(values, axis=1)
    if hasattr(fitted, "predict_proba"):
        scores["max-probability"] = np.asarray(fitted.predict_proba(X), dtype=float).max(axis=1)
    if hasattr(fitted, "known_score"):
        scores["nearest-distance"] = np.asarray(fitted.known_score(X), dtype=float)
    return scores


def _auroc(known_in: np.ndarray, known_out: np.ndarray) -> float:
    """Chance that an in-set query scores above an out-of-set one (ties count half)."""
    # Mann-Whitney U from mid-ranks (numpy only: scipy.stats takes seconds to import).
    _, inverse, counts = np.unique(
        np.concatenate([known_in, known_out]), return_inverse=True, return_counts=True
    )
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    n_in, n_out = len(known_in), len(known_out)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def _as_taxonomy(value):
    """Anything with ``parent(label)`` as is; a mapping, shipped name or file loaded."""
    if value is None or callable(getattr(value, "parent", None)):
        return value
    from ..taxonomy import load_taxonomy

    return load_taxonomy(value)


def _coarse_map(taxonomy, labels, notes: list[str]) -> dict:
    coarse, orphans = {}, []
    for label in labels.tolist():
        parent = taxonomy.parent(label)
        coarse[label] = label if parent is None else parent
        if parent is None:
            orphans.append(str(label))
    if len(orphans) == len(labels):
        raise ParameterError(
            f"the taxonomy gives no parent for any class ({', '.join(orphans[:8])} ...)"
        )
    if orphans:
        notes.append(
            f"the taxonomy gives no parent for {len(orphans)} classes ({', '.join(orphans[:8])}"
            f"{' ...' if len(orphans) > 8 else ''}); each is its own coarse class"
        )
    return coarse


def _mapped(mapping: dict, labels: np.ndarray) -> np.ndarray:
    return np.array([mapping.get(label, label) for label in labels.tolist()], dtype=object)


def _resolve(estimator, taxonomy, seed):
    from sklearn.base import clone, is_classifier

    if estimator is None:
        estimator = "prototype"
    if isinstance(estimator, str):
        from .methods import make_method

        return make_method(estimator, taxonomy=taxonomy, random_state=seed), estimator
    if not (hasattr(estimator, "get_params") and is_classifier(estimator)):
        raise ParameterError(
            f"expected a method name or a scikit-learn classifier, got {type(estimator).__name__}"
        )
    steps = getattr(estimator, "steps", None)
    name = "+".join(type(s).__name__ for _, s in steps) if steps else type(estimator).__name__
    return clone(estimator), name


def _check_shots(shots) -> list[int]:
    if isinstance(shots, (int, np.integer)):
        shots = [shots]
    counts = set()
    for k in shots:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ParameterError(f"expected shots to be positive integers, got {k!r}")
        counts.add(int(k))
    if not counts:
        raise ParameterError("expected at least one shot count")
    return sorted(counts)


def _summarise(notes: list[str], limit: int = 20) -> list[str]:
    """Deduplicate, and cap: hundreds of episodes can each say the same thing."""
    unique = list(dict.fromkeys(notes))
    if len(unique) > limit:
        unique = unique[:limit] + [f"... and {len(unique) - limit} more notes like these"]
    return unique
