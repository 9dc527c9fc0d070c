"""Clusters of clip embeddings, with the number of clusters chosen and the choice reported.

:class:`EmbeddingClusterer` is one scikit-learn clusterer over three methods:

* ``"kmeans"``: :class:`sklearn.cluster.KMeans`;
* ``"agglomerative"``: :class:`sklearn.cluster.AgglomerativeClustering` (Ward linkage by
  default). The full tree is built once and cut at every candidate number of clusters,
  so choosing the number costs one fit, not one per candidate;
* ``"hdbscan"``: :class:`sklearn.cluster.HDBSCAN`, which finds the number of clusters
  itself (the most stable clusters of a density hierarchy) and leaves outliers unassigned
  (label ``-1``).

With ``n_clusters="auto"`` (k-means and agglomerative), every candidate from
``min_clusters`` to ``max_clusters`` is fitted and the one with the best internal
criterion wins: the mean silhouette by default (Rousseeuw 1987; computed on at most
``max_selection_samples`` items), or the Calinski-Harabasz or Davies-Bouldin index.
The criterion, its value and every candidate's score are kept (``criterion_``,
``criterion_value_``, ``selection_scores_``), so a user sees why that number was chosen.
No label is used for the choice.

Embeddings are standardised (each dimension to zero mean and unit variance over the
collection) and then L2-normalised by default: dimensions of very different scales (MFCC
means beside their deviations) would otherwise dominate, and the length of a clip
embedding follows loudness and duration more than content. On the shared datasets this
agreed with the labels at least as well as raw, standardised-only or L2-only vectors with
k-means at the true k (e.g. Philharmonia, MFCC: ARI 0.130 against 0.096 L2-only and
0.108 standardised-only; see ``benchmarks/clustering.py``).

:func:`cluster_scores` compares clusters with labels (purity, adjusted Rand index,
normalised mutual information), and :func:`summarize_clusters` lists each cluster's size,
medoid and commonest labels.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import validate_data

from ..exceptions import ParameterError

__all__ = [
    "EmbeddingClusterer", "cluster_scores", "summarize_clusters", "prepare_embeddings",
    "METHODS", "CRITERIA",
]

METHODS = ("kmeans", "agglomerative", "hdbscan")
#: Internal criteria for the number of clusters, and whether larger is better.
CRITERIA = {"silhouette": True, "calinski_harabasz": True, "davies_bouldin": False}
_LINKAGES = ("ward", "average", "complete", "single")


class EmbeddingClusterer(ClusterMixin, BaseEstimator):
    """K-means, agglomerative or HDBSCAN clusters of embeddings, with medoid examples.

    Parameters
    ----------
    method : {"kmeans", "agglomerative", "hdbscan"}
    n_clusters : int or "auto"
        Number of clusters; ``"auto"`` chooses it by ``criterion``. HDBSCAN always
        chooses its own, so it takes only ``"auto"``.
    min_clusters, max_clusters : int
        Candidates for ``"auto"`` (``max_clusters`` is capped at ``n_samples - 1``).
    criterion : {"silhouette", "calinski_harabasz", "davies_bouldin"}
        Internal criterion for ``"auto"``.
    standardize : bool
        Scale each dimension to zero mean and unit variance over ``X`` first.
    normalize : bool
        Then L2-normalise every embedding (distances become cosine-like).
    linkage : {"ward", "average", "complete", "single"}
        Agglomerative linkage.
    min_cluster_size : int or None
        HDBSCAN's smallest cluster; ``None`` uses ``max(5, n_samples // 50)``. Density is
        measured from each item's 5th neighbour (``min_samples=5``).
    n_examples : int
        Members listed per cluster in ``examples_``, most central first.
    max_selection_samples : int
        Items (a fixed random subset) on which the criterion is computed; the silhouette
        costs ``O(n^2)``.
    random_state : int
        Seeds k-means and the subset above.

    Attributes
    ----------
    labels_ : np.ndarray [shape=(n_samples,), dtype=int]
        Cluster of each item, ``0`` the largest; ``-1`` marks HDBSCAN's unassigned items.
    n_clusters_ : int
    criterion_ : str
        How ``n_clusters_`` was chosen, in words.
    criterion_value_ : float or None
        The criterion at the chosen number (silhouette for a fixed number, if computable).
    selection_scores_ : dict[int, float]
        Criterion of every candidate number (empty unless ``n_clusters="auto"`` and the
        method is not HDBSCAN).
    medoid_indices_ : np.ndarray [shape=(n_clusters_,), dtype=int]
        Index of each cluster's medoid: the member with the smallest summed distance to
        the other members, in the standardised, normalised space.
    examples_ : list of np.ndarray
        For each cluster, up to ``n_examples`` member indices, nearest to the medoid first.
    estimator_ : sklearn estimator
        The fitted scikit-learn clusterer behind ``labels_``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(8)[:3] * 5
    >>> X = np.concatenate([c + rng.normal(0, 0.3, (20, 8)) for c in centres])
    >>> model = EmbeddingClusterer(max_clusters=6).fit(X)
    >>> model.n_clusters_, model.criterion_.split(" ")[0]
    (3, 'silhouette')
    >>> cluster_scores(np.repeat(["a", "b", "c"], 20), model.labels_)["adjusted_rand"]
    1.0
    """

    def __init__(
        self,
        *,
        method: str = "kmeans",
        n_clusters: int | str = "auto",
        min_clusters: int = 2,
        max_clusters: int = 20,
        criterion: str = "silhouette",
        standardize: bool = True,
        normalize: bool = True,
        linkage: str = "ward",
        min_cluster_size: int | None = None,
        n_examples: int = 3,
        max_selection_samples: int = 2000,
        random_state: int = 0,
    ):
        self.method = method
        self.n_clusters = n_clusters
        self.min_clusters = min_clusters
        self.max_clusters = max_clusters
        self.criterion = criterion
        self.standardize = standardize
        self.normalize = normalize
        self.linkage = linkage
        self.min_cluster_size = min_cluster_size
        self.n_examples = n_examples
        self.max_selection_samples = max_selection_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster ``X`` (``y`` is ignored: clusters never see labels).

        Parameters
        ----------
        X : np.ndarray [shape=(n_samples, n_features)]
        y : ignored

        Returns
        -------
        self
        """
        X = validate_data(self, X, ensure_min_samples=2, dtype=np.float64)
        self._check_params(len(X))
        Z = self._prepare(X)
        if self.method == "hdbscan":
            labels = self._fit_hdbscan(Z)
        elif self.n_clusters == "auto":
            labels = self._fit_auto(Z)
        else:
            labels = self._fit_fixed(Z, int(self.n_clusters))
        self.labels_ = _relabel_by_size(labels)
        self.n_clusters_ = int(self.labels_.max() + 1)
        self.examples_ = _central_members(Z, self.labels_, self.n_clusters_, self.n_examples)
        self.medoid_indices_ = np.array([members[0] for members in self.examples_], dtype=int)
        return self

    def _check_params(self, n_samples: int) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"expected method in {METHODS}, got {self.method!r}")
        if self.criterion not in CRITERIA:
            raise ParameterError(f"expected criterion in {tuple(CRITERIA)}, got {self.criterion!r}")
        if self.linkage not in _LINKAGES:
            raise ParameterError(f"expected linkage in {_LINKAGES}, got {self.linkage!r}")
        if self.n_clusters == "auto":
            if not 2 <= self.min_clusters <= self.max_clusters:
                raise ParameterError(
                    "expected 2 <= min_clusters <= max_clusters, got "
                    f"{self.min_clusters} and {self.max_clusters}"
                )
            if n_samples < 3 and self.method != "hdbscan":
                raise ParameterError(
                    f"choosing the number of clusters needs at least 3 samples, got {n_samples}"
                )
        elif self.method == "hdbscan":
            raise ParameterError(
                f"HDBSCAN chooses the number of clusters itself; expected n_clusters='auto', "
                f"got {self.n_clusters!r}"
            )
        elif isinstance(self.n_clusters, (bool, np.bool_)) or not isinstance(
            self.n_clusters, (int, np.integer)
        ):
            raise ParameterError(
                f"expected n_clusters to be an integer or 'auto', got {self.n_clusters!r}"
            )
        elif not 1 <= self.n_clusters <= n_samples:
            raise ParameterError(
                f"expected 1 <= n_clusters <= n_samples ({n_samples}), got {self.n_clusters}"
            )
        if self.n_examples < 1:
            raise ParameterError(f"expected n_examples >= 1, got {self.n_examples}")

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return prepare_embeddings(X, standardize=self.standardize, normalize=self.normalize)

    # ---------------------------------------------------------------- fitting
    def _fit_fixed(self, Z: np.ndarray, k: int) -> np.ndarray:
        if self.method == "kmeans":
            self.estimator_ = self._kmeans(Z, k)
            labels = self.estimator_.labels_
        else:
            labels = self._tree_cuts(Z, [k])[k]
        self.criterion_ = "fixed by the user"
        self.selection_scores_ = {}
        self.criterion_value_ = None
        if 2 <= k < len(Z):
            # Still worth showing: the same figure "auto" would have compared.
            self.criterion_value_ = self._score(
                Z, labels, "silhouette", subset=self._selection_subset(len(Z))
            )
            self.criterion_ += f" (silhouette {self.criterion_value_:.3f})"
        return labels

    def _fit_auto(self, Z: np.ndarray) -> np.ndarray:
        distinct = len(np.unique(Z, axis=0))
        if distinct < 2:
            raise ParameterError(
                "cannot choose a number of clusters: every embedding is the same "
                "(silent or identical clips?)"
            )
        # More clusters than distinct points would leave some empty.
        top = min(self.max_clusters, len(Z) - 1, distinct)
        candidates = list(range(min(self.min_clusters, top), top + 1))
        if self.method == "kmeans":
            models = {k: self._kmeans(Z, k) for k in candidates}
            labelings = {k: model.labels_ for k, model in models.items()}
        else:
            labelings = self._tree_cuts(Z, candidates)
        subset = self._selection_subset(len(Z))
        scores = {
            k: self._score(Z, labels, self.criterion, subset=subset)
            for k, labels in labelings.items()
        }
        larger_is_better = CRITERIA[self.criterion]
        valid = {k: s for k, s in scores.items() if np.isfinite(s)}
        if not valid:
            raise ParameterError(
                f"no candidate number of clusters gives a finite {self.criterion}; "
                "are the embeddings all identical?"
            )
        best = (max if larger_is_better else min)(valid, key=valid.get)
        if self.method == "kmeans":
            self.estimator_ = models[best]
        self.selection_scores_ = {int(k): float(s) for k, s in scores.items()}
        self.criterion_value_ = float(scores[best])
        way = "highest" if larger_is_better else "lowest"
        self.criterion_ = (
            f"{self.criterion} {scores[best]:.3f}, the {way} of k={candidates[0]}..{candidates[-1]}"
        )
        return labelings[best]

    def _kmeans(self, Z: np.ndarray, k: int):
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(Z)

    def _tree_cuts(self, Z: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
        """Labels at each number of clusters in ``ks``, from one full agglomerative tree."""
        from sklearn.cluster import AgglomerativeClustering

        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=0.0, compute_full_tree=True, linkage=self.linkage
        ).fit(Z)
        self.estimator_ = model
        return _cut_tree(model.children_, len(Z), ks)

    def _fit_hdbscan(self, Z: np.ndarray) -> np.ndarray:
        from sklearn.cluster import HDBSCAN

        size = self.min_cluster_size or max(5, len(Z) // 50)
        size = max(2, min(size, len(Z)))
        # Density from 5 neighbours, not from min_cluster_size (HDBSCAN's default): with
        # that default, BirdNET embeddings of all 3000 FSDD clips were left unassigned.
        model = HDBSCAN(min_cluster_size=size, min_samples=min(5, size), copy=True).fit(Z)
        self.estimator_ = model
        labels = model.labels_
        found = int(labels.max() + 1)
        if found == 0:
            # Everything is noise: one cluster says more to a user than none.
            labels = np.zeros(len(Z), dtype=int)
        self.selection_scores_ = {}
        noise = float(np.mean(model.labels_ < 0))
        self.criterion_ = (
            f"HDBSCAN cluster stability (min_cluster_size={size}), {100 * noise:.0f} % unassigned"
        )
        assigned = labels >= 0
        self.criterion_value_ = None
        if 2 <= found < assigned.sum():
            self.criterion_value_ = self._score(Z[assigned], labels[assigned], "silhouette")
        return labels

    # -------------------------------------------------------------- criteria
    def _selection_subset(self, n: int) -> np.ndarray | None:
        if n <= self.max_selection_samples:
            return None
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(n, size=self.max_selection_samples, replace=False))

    def _score(self, Z, labels, criterion, subset=None) -> float:
        from sklearn import metrics

        if subset is not None:
            Z, labels = Z[subset], labels[subset]
        k = len(np.unique(labels))
        if not 2 <= k < len(Z):
            return float("nan")
        function = {
            "silhouette": metrics.silhouette_score,
            "calinski_harabasz": metrics.calinski_harabasz_score,
            "davies_bouldin": metrics.davies_bouldin_score,
        }[criterion]
        return float(function(Z, labels))


# ------------------------------------------------------------------- helpers
def prepare_embeddings(X, *, standardize: bool = True, normalize: bool = True) -> np.ndarray:
    """The space clusters and maps are made in: standardised, then L2-normalised.

    Parameters
    ----------
    X : np.ndarray [shape=(n_samples, n_features)]
    standardize : bool
        Scale each dimension to zero mean and unit variance over ``X``.
    normalize : bool
        Divide each row by its L2 norm (rows of zeros stay zeros).

    Returns
    -------
    np.ndarray [shape=(n_samples, n_features), dtype=float64]

    Examples
    --------
    >>> prepare_embeddings([[3.0, 4.0], [0.0, 0.0]], standardize=False).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    if standardize:
        from sklearn.preprocessing import StandardScaler

        X = StandardScaler().fit_transform(X)
    if not normalize:
        return X
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    # A silent clip can embed to zeros; keep it at the origin rather than divide by 0.
    return X / np.where(norms > 0, norms, 1.0)


def _cut_tree(children: np.ndarray, n_samples: int, ks: list[int]) -> dict[int, np.ndarray]:
    """Replay the merges of an agglomerative tree and record the labels at each ``k``.

    Merge ``i`` joins two nodes into node ``n_samples + i``; stopping after
    ``n_samples - k`` merges leaves exactly ``k`` clusters, which is the cut scikit-learn
    makes for ``n_clusters=k``.
    """
    parent = np.arange(2 * n_samples - 1)

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    wanted = {n_samples - k: k for k in ks}
    cuts = {}
    for merges in range(n_samples):
        if merges in wanted:
            roots = np.array([root(i) for i in range(n_samples)])
            cuts[wanted[merges]] = np.unique(roots, return_inverse=True)[1]
        if merges < len(children):
            left, right = children[merges]
            parent[root(left)] = parent[root(right)] = n_samples + merges
    return cuts


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Number clusters by decreasing size (ties by first appearance); noise stays -1."""
    labels = np.asarray(labels)
    kept = labels[labels >= 0]
    ids, first, counts = np.unique(kept, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -counts))]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(label, -1) for label in labels], dtype=int)


def _central_members(Z: np.ndarray, labels: np.ndarray, n_clusters: int, n_examples: int):
    """Members of each cluster, nearest its medoid first (the medoid itself leads)."""
    from sklearn.metrics import pairwise_distances

    central = []
    for cluster in range(n_clusters):
        members = np.flatnonzero(labels == cluster)
        distances = pairwise_distances(Z[members])
        medoid = int(np.argmin(distances.sum(axis=1)))
        order = np.argsort(distances[medoid], kind="stable")[:n_examples]
        central.append(members[order])
    return central


def cluster_scores(y, labels) -> dict:
    """Agreement of clusters with labels: purity, adjusted Rand index and NMI.

    HDBSCAN's unassigned items (label ``-1``) count as one more cluster for the adjusted
    Rand index and NMI, and as wrong for purity, so leaving items out cannot raise a score.

    Parameters
    ----------
    y : array-like [shape=(n_samples,)]
        True labels.
    labels : array-like [shape=(n_samples,)]
        Cluster of each item.

    Returns
    -------
    dict
        ``purity`` (share of items whose cluster's commonest label is theirs),
        ``adjusted_rand``, ``nmi`` (arithmetic normalisation), ``n_clusters``,
        ``n_classes`` and ``unassigned`` (share of items labelled ``-1``).

    Examples
    --------
    >>> cluster_scores(["a", "a", "b", "b"], [0, 0, 0, 1])["purity"]
    0.75
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y = np.asarray(y, dtype=object)
    labels = np.asarray(labels)
    if y.shape != labels.shape or y.ndim != 1:
        raise ParameterError(
            f"expected labels and clusters of the same 1-D shape, got {y.shape} and {labels.shape}"
        )
    if len(y) == 0:
        raise ParameterError("expected at least one item to score, got 0")
    correct = 0
    for cluster in np.unique(labels[labels >= 0]):
        correct += Counter(y[labels == cluster]).most_common(1)[0][1]
    return {
        "purity": correct / len(y),
        "adjusted_rand": float(adjusted_rand_score(y, labels)),
        "nmi": float(normalized_mutual_info_score(y, labels)),
        "n_clusters": int(len(np.unique(labels[labels >= 0]))),
        "n_classes": int(len(set(y))),
        "unassigned": float(np.mean(labels < 0)),
    }


def summarize_clusters(labels, medoid_indices, y=None, *, top: int = 3) -> list[dict]:
    """One row per cluster: size, medoid index and commonest labels.

    Parameters
    ----------
    labels : array-like [shape=(n_samples,)]
    medoid_indices : array-like [shape=(n_clusters,)]
    y : array-like [shape=(n_samples,)], optional
        Labels, for ``top_labels``.
    top : int
        Labels listed per cluster.

    Returns
    -------
    list of dict
        ``cluster``, ``size``, ``medoid`` (an index) and ``top_labels`` (``[(label,
        count), ...]``, commonest first; empty without ``y``), ordered by cluster; a row
        with ``cluster == -1`` (no medoid) lists unassigned items when there are any.

    Examples
    --------
    >>> summarize_clusters([0, 0, 1], [0, 2], ["a", "b", "b"])[0]["top_labels"]
    [('a', 1), ('b', 1)]
    """
    labels = np.asarray(labels)
    y = None if y is None else np.asarray(y, dtype=object)
    rows = []
    ids = sorted(set(labels.tolist()), key=lambda c: (c < 0, c))
    for cluster in ids:
        members = labels == cluster
        counts = Counter(y[members].tolist()).most_common(top) if y is not None else []
        rows.append({
            "cluster": int(cluster),
            "size": int(members.sum()),
            "medoid": None if cluster < 0 else int(medoid_indices[cluster]),
            "top_labels": [(str(label), int(count)) for label, count in counts],
        })
    return rows
