"""Hierarchical prototypes over a label taxonomy (after Liang, Phan & Benetos, DCASE 2022).

Leaf prototypes are class means, as in :class:`~earmark.fewshot.prototypes.PrototypeClassifier`;
the prototype of a group one level up is the mean of its children's prototypes,
``c_k^(h) = mean_j c_j^(h-1)`` over the children ``j`` of ``k`` that the support set holds,
and so on up the taxonomy. A query's score for a leaf adds, over the levels, the weighted
negative squared distance to that leaf's ancestor at each level; so a leaf whose family
the query resembles gains, and a near-tie between leaves of different families is broken
by the families.

The model answers at every level (:meth:`~HierarchicalPrototypeClassifier.predict_levels`)
and can back off to the coarse label when the leaf is uncertain
(:meth:`~HierarchicalPrototypeClassifier.predict_backoff`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..exceptions import ParameterError
from ..taxonomy import Taxonomy, load_taxonomy
from .crossfit import sq_distances
from .prototypes import PrototypeClassifier

__all__ = ["HierarchicalPrototypeClassifier"]


_GROUP_RULES = ("leaf-sum", "combined")


class HierarchicalPrototypeClassifier(ClassifierMixin, BaseEstimator):
    """Prototypes at every level of a taxonomy, combined to predict leaves and groups.

    Parameters
    ----------
    taxonomy : dict, str or Taxonomy
        A child -> parent map, a shipped taxonomy's name or a taxonomy file
        (:func:`earmark.taxonomy.load_taxonomy`). Every class in ``y`` must be a leaf with a
        parent. A plain dict keeps a saved model self-contained.
    level_weights : sequence of float
        Weight of the leaf level, then of each coarser level; missing levels weigh 0.
        The combined score gives the group-level answers (:meth:`predict_levels`).
    combine_leaf : bool
        Also decide the leaf with the combined score. Off by default: on Speech
        Commands (BirdNET, 5-way, 600 episodes) it cost 1 to 3 points of leaf accuracy
        while the combined score raised group accuracy by 2 to 4 points, so the leaf
        comes from the leaf level and the groups from all levels.
    group_rule : {"leaf-sum", "combined"}
        How a group's probability is made: the sum of its leaves' probabilities from
        the leaf level (``"leaf-sum"``), or the same sum under the score that combines
        all levels (``"combined"``, weighted by ``level_weights``). See
        ``benchmarks/fewshot.py`` for the figures that chose the default.
    metric, normalize, standardize, whiten, temperature, unknown_coverage, center
        As in :class:`~earmark.fewshot.prototypes.PrototypeClassifier`, which does the
        leaf level and the preprocessing.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
        Leaf labels.
    leaf_ : PrototypeClassifier
    level_classes_ : list of np.ndarray
        Group labels at levels 1, 2, ... (level 0 is ``classes_``).
    level_prototypes_ : list of np.ndarray [shape=(n_groups_h, n_features)]
    level_index_ : list of np.ndarray [shape=(n_classes,)]
        For each level, the row of each leaf's ancestor in ``level_prototypes_[h - 1]``.
    threshold_, threshold_source_
        The leaf classifier's "unknown" threshold.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> strings, winds = rng.normal(0, 3, (2, 6))
    >>> centres = {"violin": strings, "cello": strings + 1, "oboe": winds, "flute": winds + 1}
    >>> X = np.concatenate([rng.normal(c, 0.3, (4, 6)) for c in centres.values()])
    >>> y = np.repeat(list(centres), 4)
    >>> taxonomy = {"violin": "strings", "cello": "strings", "oboe": "winds", "flute": "winds"}
    >>> model = HierarchicalPrototypeClassifier(taxonomy).fit(X, y)
    >>> levels = model.predict_levels(X[[0, 12]])
    >>> levels["leaf"].tolist(), levels["level 1"].tolist()
    (['violin', 'flute'], ['strings', 'winds'])
    """

    def __init__(
        self,
        taxonomy: Any = None,
        *,
        level_weights=(1.0, 0.5),
        combine_leaf: bool = False,
        group_rule: str = "leaf-sum",
        metric: str = "cosine",
        normalize: bool = True,
        standardize: bool | str = "center",
        whiten: bool = True,
        temperature: float | str = "auto",
        unknown_coverage: float = 0.9,
        center=None,
    ):
        self.taxonomy = taxonomy
        self.level_weights = level_weights
        self.combine_leaf = combine_leaf
        self.group_rule = group_rule
        self.metric = metric
        self.normalize = normalize
        self.standardize = standardize
        self.whiten = whiten
        self.temperature = temperature
        self.unknown_coverage = unknown_coverage
        self.center = center

    def center_of(self, X) -> np.ndarray:
        """The centre of unlabelled embeddings, as :meth:`PrototypeClassifier.center_of`."""
        return PrototypeClassifier(normalize=self.normalize).center_of(X)

    def fit(self, X, y, groups=None):
        """Fit leaf prototypes on the support set, then average them up the taxonomy.

        Parameters
        ----------
        X : np.ndarray [shape=(n_support, n_features)]
        y : array-like [shape=(n_support,)]
            Leaf labels.
        groups : array-like [shape=(n_support,)], optional
            Group of each item, for the leaf's "unknown" threshold
            (:meth:`PrototypeClassifier.fit`).

        Returns
        -------
        self
        """
        taxonomy = self._taxonomy()
        weights = np.asarray(self.level_weights, dtype=float)
        if weights.ndim != 1 or len(weights) == 0 or (weights < 0).any() or weights[0] <= 0:
            raise ParameterError(
                f"expected level_weights as non-negative numbers with a positive leaf "
                f"weight, got {self.level_weights!r}"
            )
        self.leaf_ = PrototypeClassifier(
            metric=self.metric,
            normalize=self.normalize,
            standardize=self.standardize,
            whiten=self.whiten,
            temperature=self.temperature,
            unknown_coverage=self.unknown_coverage,
            center=self.center,
        ).fit(X, y, groups)
        self.classes_ = self.leaf_.classes_
        self.n_features_in_ = self.leaf_.n_features_in_
        self.threshold_ = self.leaf_.threshold_
        self.threshold_source_ = self.leaf_.threshold_source_
        taxonomy.check_covers(self.classes_.astype(str))
        depth = max(taxonomy.depth(str(label)) for label in self.classes_)
        self.level_classes_, self.level_prototypes_, self.level_index_ = [], [], []
        below = self.leaf_.prototypes_
        below_labels = self.classes_.astype(str)
        for level in range(1, depth + 1):
            parents = np.array([taxonomy.at_level(label, 1) for label in below_labels])
            groups, index = np.unique(parents, return_inverse=True)
            prototypes = np.zeros((len(groups), below.shape[1]))
            np.add.at(prototypes, index, below)
            prototypes /= np.bincount(index)[:, None]
            leaf_rows = np.array(
                [np.searchsorted(groups, taxonomy.at_level(str(label), level))
                 for label in self.classes_]
            )
            self.level_classes_.append(groups)
            self.level_prototypes_.append(prototypes)
            self.level_index_.append(leaf_rows)
            below, below_labels = prototypes, groups
        return self

    def _taxonomy(self) -> Taxonomy:
        if self.taxonomy is None:
            raise ParameterError("HierarchicalPrototypeClassifier needs a taxonomy")
        return load_taxonomy(self.taxonomy)

    # ---------------------------------------------------------------- predicting
    def _level_sq_distances(self, X) -> tuple[np.ndarray, list[np.ndarray]]:
        check_is_fitted(self)
        Z = self.leaf_._preprocess(_validated(self.leaf_, X))
        leaf = sq_distances(Z, self.leaf_.prototypes_)
        return leaf, [sq_distances(Z, P) for P in self.level_prototypes_]

    def _logits(self, X, *, combined: bool | None = None) -> np.ndarray:
        leaf, levels = self._level_sq_distances(X)
        if not (self.combine_leaf if combined is None else combined):
            return -leaf / self.leaf_.temperature_
        weights = np.asarray(self.level_weights, dtype=float)
        combined = weights[0] * leaf
        for h, D2 in enumerate(levels, start=1):
            if h < len(weights) and weights[h] > 0:
                combined = combined + weights[h] * D2[:, self.level_index_[h - 1]]
        return -combined / self.leaf_.temperature_

    def decision_function(self, X) -> np.ndarray:
        """Combined logits per leaf, shape (n, n_classes) ((n,) for two classes)."""
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def predict_proba(self, X) -> np.ndarray:
        """Leaf probabilities from the combined logits, shape (n, n_classes)."""
        logits = self._logits(X)
        return softmax(logits, axis=1)

    def predict(self, X) -> np.ndarray:
        """Leaf labels, shape (n,)."""
        return self.classes_[np.argmax(self._logits(X), axis=1)]

    def predict_levels_proba(self, X) -> dict[str, np.ndarray]:
        """Probabilities at every level.

        The leaf's as :meth:`predict_proba`; a group's is the sum of its leaves'
        probabilities, from the leaf level or from the score that combines all levels
        (``group_rule``).

        Returns
        -------
        dict
            ``"leaf"`` -> (n, n_classes), then ``"level 1"`` -> (n, n_groups_1), ...
        """
        if self.group_rule not in _GROUP_RULES:
            raise ParameterError(
                f"expected group_rule in {_GROUP_RULES}, got {self.group_rule!r}"
            )
        out = {"leaf": self.predict_proba(X)}
        if self.group_rule == "leaf-sum" and not self.combine_leaf:
            P = softmax(self._logits(X, combined=False), axis=1)
        else:
            P = softmax(self._logits(X, combined=True), axis=1)
        for h, (groups, rows) in enumerate(zip(self.level_classes_, self.level_index_), 1):
            Q = np.zeros((len(P), len(groups)))
            np.add.at(Q.T, rows, P.T)
            out[f"level {h}"] = Q
        return out

    def predict_levels(self, X) -> dict[str, np.ndarray]:
        """The most probable label at every level, leaf first.

        Returns
        -------
        dict of str to np.ndarray [shape=(n,)]
            ``"leaf"``, ``"level 1"`` (parents), ``"level 2"``, ...
        """
        out = {}
        for h, (name, P) in enumerate(self.predict_levels_proba(X).items()):
            labels = self.classes_ if h == 0 else self.level_classes_[h - 1]
            out[name] = labels[np.argmax(P, axis=1)]
        return out

    def predict_backoff(self, X, *, min_proba: float = 0.5) -> np.ndarray:
        """The finest label whose probability reaches ``min_proba``.

        The leaf if it is probable enough, else its group one level up, and so on; the
        coarsest level's label if none is.

        Returns
        -------
        labels : np.ndarray [shape=(n,), dtype=object]
        """
        if not 0 < min_proba <= 1:
            raise ParameterError(f"expected min_proba in (0, 1], got {min_proba!r}")
        levels = self.predict_levels_proba(X)
        names = list(levels)
        out = np.empty(len(levels["leaf"]), dtype=object)
        decided = np.zeros(len(out), dtype=bool)
        for h, name in enumerate(names):
            P = levels[name]
            labels = self.classes_ if h == 0 else self.level_classes_[h - 1]
            best = np.argmax(P, axis=1)
            take = ~decided & ((P.max(axis=1) >= min_proba) | (h == len(names) - 1))
            out[take] = labels[best[take]]
            decided |= take
        return out

    def is_unknown(self, X) -> np.ndarray:
        """As :meth:`PrototypeClassifier.is_unknown` at the leaf level."""
        check_is_fitted(self)
        return self.leaf_.is_unknown(X)


def _validated(estimator: PrototypeClassifier, X) -> np.ndarray:
    from sklearn.utils.validation import validate_data

    return validate_data(estimator, X, dtype=np.float64, reset=False)
