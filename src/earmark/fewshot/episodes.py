"""Few-shot episodes: N classes, K labelled examples of each, and queries to classify.

An episode is what a user with a handful of recordings per class faces: ``ways`` classes,
``shots`` support examples of each to learn from, and up to ``queries`` held-out items per
class to classify. Averaging many episodes with fixed seeds gives a figure with a
confidence interval (:mod:`earmark.fewshot.evaluation`); this module only draws them.

Support and query never share a group (source recording, speaker, instrument and
dynamic), in two ways:

* **groups** (``groups=``): each episode splits the groups of its classes into a support
  side and a query side. Groups are taken in random order, and a group joins the
  support side while some class still lacks support items in it; every later group is
  a query group. A group may span classes (an FSDD speaker says every digit), so the
  split is made once per episode over all its classes, not per class. The support side
  is therefore as small as the shots allow, and the queries come from every other group.
* **folds** (``folds=``): the ESC-50 protocol. Support comes from the training folds and
  queries from the held-out fold ``query_fold`` (or each fold in turn, episode ``i``
  holding out the ``i % n_folds``-th). With ``groups`` too, training items whose group
  is also in the held-out fold are left out of the support pool.

Without either, every item is its own group, and the plan carries a warning.

Open set: ``unknown_ways`` more classes join the queries but not the support set; their
queries should be rejected as unknown.

Episode ``i`` depends only on the seed, ``i`` and the data (its generator is child ``i``
of ``SeedSequence(seed)``), so it can be redrawn alone; the classes of episode ``i`` are
the same for every shot count and every method, which makes comparisons paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from ..exceptions import ParameterError
from ..splits import fold_key, natural_key

__all__ = ["Episode", "EpisodeSampler", "iter_episodes", "split_classes"]

# Group orders tried before the classes of an episode are drawn again (or, when every
# eligible class is in it, before the classes that still lack a side are dropped).
_ORDERS_PER_DRAW = 4
_MAX_ATTEMPTS = 24


@dataclass(frozen=True, eq=False)
class Episode:
    """One N-way K-shot episode, as row indices into the data.

    Attributes
    ----------
    index : int
        Episode number; with the seed, it alone decides the episode.
    classes : np.ndarray [shape=(n_ways,)]
        The labels to tell apart.
    support : np.ndarray [shape=(n_ways * shots,), dtype=int64]
        Labelled examples, ``shots`` per class.
    query : np.ndarray [shape=(n_query,), dtype=int64]
        Items of ``classes`` to classify; at most ``queries`` per class.
    unknown_classes : np.ndarray [shape=(unknown_ways,)]
        Classes absent from the support set (open set).
    unknown_query : np.ndarray [shape=(n_unknown_query,), dtype=int64]
        Their items, which should be rejected as unknown.
    query_fold : str or None
        The held-out fold (folds mode).
    redraws : int
        Group orders or class draws that failed before this one was formed.
    dropped : tuple of str
        Classes left out because no split gave them both a support and a query item.
    """

    index: int
    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    unknown_classes: np.ndarray
    unknown_query: np.ndarray
    query_fold: str | None = None
    redraws: int = 0
    dropped: tuple = ()

    @property
    def ways(self) -> int:
        return len(self.classes)


@dataclass
class EpisodeSampler:
    """Draws reproducible few-shot episodes with support and query groups kept apart.

    Parameters
    ----------
    y : array-like [shape=(n,)]
        Labels.
    shots : int
        Support examples per class.
    groups : array-like [shape=(n,)], optional
        Group of each item (speaker, source recording); a group is never on both sides.
    folds : array-like [shape=(n,)], optional
        Official fold of each item: folds mode (see the module docstring). ``-1``,
        ``None`` or ``"train"`` mark items only ever used as support.
    query_fold : optional
        The held-out fold in folds mode; None holds out each fold in turn.
    ways : int or "all"
        Classes per episode; ``"all"``: every eligible class (less ``unknown_ways``).
    queries : int
        Query items per class, fewer where a class has fewer on the query side.
    unknown_ways : int
        Classes per episode that are only queried (open set).
    classes : sequence, optional
        Draw episode classes (known and unknown) from these labels only, e.g. the novel
        classes left by :func:`split_classes`.
    seed : int

    Attributes
    ----------
    eligible : list
        Labels that can take part in every episode, in sorted order.
    strategy : str
        How support and query are kept apart, in words.
    notes : list of str
        Classes left out and why; warnings about the data.
    problem : str or None
        Why no episode can be drawn (too few eligible classes), or None.

    Examples
    --------
    >>> y = np.repeat(["a", "b", "c"], 6)
    >>> speakers = np.tile([1, 1, 2, 2, 3, 3], 3)
    >>> sampler = EpisodeSampler(y, shots=2, groups=speakers, ways=2, queries=4)
    >>> episode = sampler.episode(0)
    >>> len(episode.support), set(speakers[episode.support]) & set(speakers[episode.query])
    (4, set())
    """

    y: np.ndarray = field(repr=False)
    shots: int
    groups: np.ndarray | None = field(default=None, repr=False)
    folds: np.ndarray | None = field(default=None, repr=False)
    query_fold: object = None
    ways: int | str = 5
    queries: int = 15
    unknown_ways: int = 0
    classes: Sequence | None = None
    seed: int = 0
    eligible: list = field(init=False)
    strategy: str = field(init=False)
    notes: list[str] = field(init=False)
    problem: str | None = field(init=False)

    def __post_init__(self):
        self.y = np.asarray(self.y)
        n = self.y.shape[0]
        if self.y.ndim != 1 or n < 2:
            raise ParameterError(f"expected labels y in a 1-d array, got shape {self.y.shape}")
        _check_count("shots", self.shots, minimum=1)
        _check_count("queries", self.queries, minimum=1)
        _check_count("unknown_ways", self.unknown_ways, minimum=0)
        if self.ways != "all":
            _check_count("ways", self.ways, minimum=2)
        self.notes = []
        labels, codes = np.unique(self.y, return_inverse=True)
        self._labels = labels
        self._items = [np.flatnonzero(codes == c) for c in range(len(labels))]
        pool = self._pool(labels)
        if self.groups is not None:
            self.groups = _per_item(self.groups, n, "groups")
            _, self._group_codes = np.unique(self.groups.astype(str), return_inverse=True)
        else:
            self._group_codes = np.arange(n)
        if self.folds is not None:
            self._plan_folds(_per_item(self.folds, n, "folds"), pool)
        else:
            if self.query_fold is not None:
                raise ParameterError("query_fold needs folds= (the fold of each item)")
            self._plan_groups(pool)
        self.eligible = labels[self._eligible].tolist()
        needed = 2 + self.unknown_ways if self.ways == "all" else self.ways + self.unknown_ways
        self.problem = None
        if len(self._eligible) < needed:
            self.problem = (
                f"{self._ways_text()}{self.shots}-shot episodes"
                + (f" with {self.unknown_ways} unknown classes" if self.unknown_ways else "")
                + f" need {needed} eligible classes, got {len(self._eligible)}"
                + (f" ({'; '.join(self.notes[:3])}{' ...' if len(self.notes) > 3 else ''})"
                   if self.notes else "")
            )
        self._n_known = (
            len(self._eligible) - self.unknown_ways if self.ways == "all" else int(self.ways)
        )

    # ---------------------------------------------------------------- planning
    def _pool(self, labels) -> np.ndarray:
        """Class codes episodes may use: all, or those named in ``classes``."""
        if self.classes is None:
            return np.arange(len(labels))
        wanted = list(dict.fromkeys(self.classes))
        known = set(labels.tolist())
        missing = [c for c in wanted if c not in known]
        if missing:
            raise ParameterError(
                f"classes {missing[:8]} are not among the labels of y "
                f"({', '.join(map(str, labels[:8].tolist()))}{' ...' if len(labels) > 8 else ''})"
            )
        return np.flatnonzero(np.isin(labels, wanted))

    def _plan_groups(self, pool: np.ndarray) -> None:
        if self.groups is None:
            self.strategy = "items drawn at random (no groups)"
            self.notes.append(
                "no groups given: support and query items were drawn at random. If several "
                "items come from one recording, speaker or session, this leaks and overstates "
                "accuracy; pass groups= (or folds=) to keep them apart"
            )
        eligible = []
        for c in pool:
            sizes = np.bincount(self._group_codes[self._items[c]])
            sizes = sizes[sizes > 0]
            name = _plain(self._labels[c])
            if len(sizes) < 2:
                self.notes.append(f"class {name!r} left out: all its items are in one group")
            elif sizes.sum() - sizes.min() < self.shots:
                self.notes.append(
                    f"class {name!r} left out: {sizes.sum() - sizes.min()} items outside its "
                    f"smallest group, fewer than {self.shots} shots"
                )
            else:
                eligible.append(c)
        self._eligible = np.array(eligible, dtype=np.int64)
        if self.groups is not None:
            n_groups = len(np.unique(self._group_codes[np.concatenate(self._items)]))
            self.strategy = f"support and query from disjoint groups ({n_groups} groups)"
        self._fold_names: list[str | None] = [None]

    def _plan_folds(self, folds: np.ndarray, pool: np.ndarray) -> None:
        keys = np.array([fold_key(value) for value in folds], dtype=object)
        names = sorted({k for k in keys if k is not None}, key=natural_key)
        if self.query_fold is not None:
            wanted = fold_key(self.query_fold)
            if wanted not in names:
                raise ParameterError(
                    f"query_fold {self.query_fold!r} is not one of the folds {names}"
                )
            names = [wanted]
        if not names:
            raise ParameterError("folds mark every item as train-only; no fold can be queried")
        self._fold_names = names
        self._fold_pools = []
        usable = set(pool.tolist())
        for name in names:
            query = keys == name
            support = ~query
            if self.groups is not None:
                leaked = support & np.isin(self._group_codes, np.unique(self._group_codes[query]))
                if leaked.any():
                    self.notes.append(
                        f"fold {name}: {int(leaked.sum())} training items share a group with "
                        "the held-out fold and are never used as support"
                    )
                support &= ~leaked
            self._fold_pools.append((support, query))
            for c in sorted(usable):
                n_support = int(support[self._items[c]].sum())
                n_query = int(query[self._items[c]].sum())
                if n_support < self.shots or n_query < 1:
                    usable.discard(c)
                    self.notes.append(
                        f"class {_plain(self._labels[c])!r} left out: fold {name} gives it "
                        f"{n_support} support and {n_query} query items ({self.shots} shots needed)"
                    )
        self._eligible = np.array(sorted(usable), dtype=np.int64)
        if len(names) == 1:
            self.strategy = f"support from the training folds, queries from fold {names[0]}"
        else:
            self.strategy = (
                f"support from the training folds, queries from each of {len(names)} folds in turn"
            )

    def _ways_text(self) -> str:
        return "" if self.ways == "all" else f"{self.ways}-way "

    # ---------------------------------------------------------------- drawing
    @property
    def n_ways(self) -> int:
        """Known classes per episode (before any class is dropped)."""
        return self._n_known

    def episode(self, index: int) -> Episode:
        """Draw episode ``index``; the same index always gives the same episode."""
        if self.problem is not None:
            raise ParameterError(self.problem)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(int(index),)))
        fold = index % len(self._fold_names)
        every = self.ways == "all"
        chosen = None
        for attempt in range(_MAX_ATTEMPTS):
            if chosen is None or (not every and attempt % _ORDERS_PER_DRAW == 0):
                chosen = self._draw_classes(rng)
            known, unknown = chosen[: self._n_known], chosen[self._n_known :]
            if self.folds is not None:
                support_pool, query_pool = self._fold_pools[fold]
                support_side = support_pool
            else:
                support_side = self._support_side(rng, known)
                query_pool = ~support_side
            missing = [c for c in chosen if not query_pool[self._items[c]].any()]
            if not missing:
                return self._fill(index, rng, known, unknown, support_side, query_pool, attempt)
        # Every eligible class can be split on its own, but not this set together: keep
        # the classes the last split serves, and say which were dropped.
        known = np.array([c for c in known if c not in missing], dtype=np.int64)
        unknown = np.array([c for c in unknown if c not in missing], dtype=np.int64)
        dropped = tuple(str(_plain(self._labels[c])) for c in missing)
        return self._fill(index, rng, known, unknown, support_side, query_pool, attempt, dropped)

    def __iter__(self) -> Iterator[Episode]:
        index = 0
        while True:
            yield self.episode(index)
            index += 1

    def _draw_classes(self, rng) -> np.ndarray:
        if self.ways == "all":
            chosen = rng.permutation(self._eligible)
            # Known classes in sorted order, so "all"-way episodes differ only in the
            # unknown ones.
            known = np.sort(chosen[: self._n_known])
            return np.concatenate([known, chosen[self._n_known :]])
        return rng.choice(self._eligible, size=self._n_known + self.unknown_ways, replace=False)

    def _support_side(self, rng, known: np.ndarray) -> np.ndarray:
        """A mask of items on the support side: groups taken in random order join it
        while some known class still lacks ``shots`` items there."""
        items = np.concatenate([self._items[c] for c in known])
        position = np.repeat(np.arange(len(known)), [len(self._items[c]) for c in known])
        group = self._group_codes[items]
        pairs, counts = np.unique(group * len(known) + position, return_counts=True)
        pair_group, pair_class = pairs // len(known), pairs % len(known)
        groups, starts = np.unique(pair_group, return_index=True)
        ends = np.append(starts[1:], len(pairs))
        span = dict(zip(groups.tolist(), zip(starts.tolist(), ends.tolist())))
        pair_class, counts = pair_class.tolist(), counts.tolist()
        deficit = [self.shots] * len(known)
        unmet = len(known)
        chosen = []
        for g in rng.permutation(groups).tolist():
            start, end = span[g]
            if not any(deficit[pair_class[p]] > 0 for p in range(start, end)):
                continue
            chosen.append(g)
            for p in range(start, end):
                c = pair_class[p]
                if deficit[c] > 0:
                    deficit[c] -= counts[p]
                    unmet -= deficit[c] <= 0
            if unmet == 0:
                break
        return np.isin(self._group_codes, chosen)

    def _fill(self, index, rng, known, unknown, support_side, query_pool, attempt, dropped=()):
        support, query, unknown_query = [], [], []
        for c in known:
            items = self._items[c]
            support.append(rng.choice(items[support_side[items]], self.shots, replace=False))
            query.append(_some(rng, items[query_pool[items]], self.queries))
        for c in unknown:
            items = self._items[c]
            unknown_query.append(_some(rng, items[query_pool[items]], self.queries))
        return Episode(
            index=int(index),
            classes=self._labels[known],
            support=_join(support),
            query=_join(query),
            unknown_classes=self._labels[unknown],
            unknown_query=_join(unknown_query),
            query_fold=self._fold_names[index % len(self._fold_names)],
            redraws=attempt,
            dropped=dropped,
        )


def iter_episodes(y, *, shots: int, episodes: int = 600, **options) -> Iterator[Episode]:
    """Episodes ``0 .. episodes - 1`` of an :class:`EpisodeSampler`.

    Parameters
    ----------
    y : array-like [shape=(n,)]
    shots : int
    episodes : int
    **options
        ``groups``, ``folds``, ``query_fold``, ``ways``, ``queries``, ``unknown_ways``,
        ``classes``, ``seed``, as in :class:`EpisodeSampler`.

    Yields
    ------
    Episode

    Examples
    --------
    >>> y = np.repeat(["a", "b", "c", "d"], 4)
    >>> [len(e.query) for e in iter_episodes(y, shots=1, ways=3, queries=2, episodes=2)]
    [6, 6]
    """
    _check_count("episodes", episodes, minimum=1)
    sampler = EpisodeSampler(y, shots=shots, **options)
    if sampler.problem is not None:
        raise ParameterError(sampler.problem)
    return (sampler.episode(index) for index in range(episodes))


def split_classes(classes, n_base: int | float = 0.5, *, seed: int = 0) -> tuple[list, list]:
    """Split labels at random into base classes (for training an adapter) and novel ones.

    Parameters
    ----------
    classes : sequence
        The labels (duplicates are ignored, so ``y`` itself will do).
    n_base : int or float
        Number of base classes, or their fraction when a float in (0, 1).
    seed : int

    Returns
    -------
    base, novel : list, list
        Disjoint, each sorted; pass ``classes=novel`` to the episodes.

    Examples
    --------
    >>> base, novel = split_classes(["dog", "cat", "rain", "wind"], 0.5, seed=1)
    >>> len(base), len(novel), set(base) & set(novel)
    (2, 2, set())
    """
    labels = sorted(set(np.asarray(classes).tolist()), key=str)
    if isinstance(n_base, float) and not isinstance(n_base, bool):
        if not 0.0 < n_base < 1.0:
            raise ParameterError(f"expected a fraction of base classes in (0, 1), got {n_base}")
        n_base = int(round(n_base * len(labels)))
    if not isinstance(n_base, (int, np.integer)) or isinstance(n_base, bool):
        raise ParameterError(f"expected n_base as an int or a fraction, got {n_base!r}")
    if not 1 <= n_base < len(labels):
        raise ParameterError(
            f"expected 1 to {len(labels) - 1} base classes of {len(labels)}, got {n_base}"
        )
    picked = set(np.random.default_rng(seed).permutation(len(labels))[:n_base].tolist())
    base = [label for i, label in enumerate(labels) if i in picked]
    novel = [label for i, label in enumerate(labels) if i not in picked]
    return base, novel


def _plain(value):
    """A numpy scalar as the Python value, so messages read 'dog', not np.str_('dog')."""
    return value.item() if isinstance(value, np.generic) else value


def _some(rng, items: np.ndarray, limit: int) -> np.ndarray:
    return items if len(items) <= limit else rng.choice(items, limit, replace=False)


def _join(parts) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def _per_item(values, n: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if values.shape != (n,):
        raise ParameterError(f"expected {what} of shape ({n},) like y, got {values.shape}")
    return values


def _check_count(name: str, value, *, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ParameterError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
