"""EmbeddingClusterer: scikit-learn compliance, the choice of k, medoids, scores, and real
FSDD embeddings (whose clusters follow the speaker far more than the digit)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import pairwise_distances
from sklearn.utils.estimator_checks import parametrize_with_checks

from earmark.exceptions import ParameterError
from earmark.explore.cluster import (
    EmbeddingClusterer, cluster_scores, prepare_embeddings, summarize_clusters,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def blobs(sizes=(30, 20, 10), n_features=32, spread=0.2, seed=0):
    """Clusters around random directions (every feature differs between clusters, as in
    real embeddings), so they survive standardisation and L2 normalisation."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(sizes), n_features))
    X = np.concatenate([
        centre + rng.normal(0, spread, (size, n_features)) for centre, size in zip(centres, sizes)
    ])
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X, y


# Not HDBSCAN: the checks set n_clusters on every clusterer that has it, and HDBSCAN
# rightly refuses one (it chooses its own); its path is tested below instead.
@parametrize_with_checks([
    EmbeddingClusterer(n_clusters=3),
    EmbeddingClusterer(method="agglomerative", n_clusters=3),
    EmbeddingClusterer(method="agglomerative", max_clusters=5),
])
def test_sklearn_compliance(estimator, check):
    check(estimator)


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
@pytest.mark.parametrize("criterion", ["silhouette", "calinski_harabasz", "davies_bouldin"])
def test_auto_k_finds_separated_clusters_and_reports_why(method, criterion):
    X, y = blobs()
    model = EmbeddingClusterer(method=method, criterion=criterion, max_clusters=8).fit(X)
    assert model.n_clusters_ == 3
    assert cluster_scores(y, model.labels_)["adjusted_rand"] == pytest.approx(1.0)
    assert sorted(model.selection_scores_) == list(range(2, 9))
    scores = model.selection_scores_
    pick = min if criterion == "davies_bouldin" else max
    assert pick(scores, key=scores.get) == 3
    assert model.criterion_value_ == pytest.approx(scores[3])
    assert model.criterion_.startswith(criterion) and "k=2..8" in model.criterion_


def test_auto_k_range_is_capped_by_the_number_of_items():
    X, _ = blobs(sizes=(3, 3))
    model = EmbeddingClusterer(max_clusters=20).fit(X)
    assert max(model.selection_scores_) == len(X) - 1
    assert model.n_clusters_ == 2


def test_clusters_are_numbered_by_size():
    X, _ = blobs(sizes=(10, 30, 20))
    labels = EmbeddingClusterer(n_clusters=3).fit(X).labels_
    assert np.bincount(labels).tolist() == [30, 20, 10]


@pytest.mark.parametrize("linkage", ["ward", "average", "complete"])
@pytest.mark.parametrize("k", [1, 2, 5, 11])
def test_agglomerative_cut_is_sklearns(linkage, k):
    X = np.random.default_rng(3).normal(size=(80, 6))
    ours = EmbeddingClusterer(method="agglomerative", n_clusters=k, linkage=linkage).fit(X)
    Z = prepare_embeddings(X)
    theirs = AgglomerativeClustering(n_clusters=k, linkage=linkage).fit(Z).labels_
    assert cluster_scores(theirs, ours.labels_)["adjusted_rand"] == pytest.approx(1.0)
    assert ours.n_clusters_ == k


def test_medoid_is_the_member_closest_to_all_others():
    X, _ = blobs(sizes=(25, 15), spread=0.6)
    model = EmbeddingClusterer(n_clusters=2, n_examples=4).fit(X)
    Z = prepare_embeddings(X)
    for cluster in range(2):
        members = np.flatnonzero(model.labels_ == cluster)
        summed = pairwise_distances(Z[members]).sum(axis=1)
        assert model.medoid_indices_[cluster] == members[np.argmin(summed)]
        examples = model.examples_[cluster]
        assert examples[0] == model.medoid_indices_[cluster] and len(examples) == 4
        assert set(examples) <= set(members)
        to_medoid = np.linalg.norm(Z[examples] - Z[examples[0]], axis=1)
        assert np.all(np.diff(to_medoid) >= 0)


def test_fixed_k_reports_it_with_the_silhouette():
    X, _ = blobs()
    model = EmbeddingClusterer(n_clusters=4).fit(X)
    assert model.n_clusters_ == 4
    assert model.criterion_ == f"fixed by the user (silhouette {model.criterion_value_:.3f})"
    assert model.selection_scores_ == {}
    assert -1 <= model.criterion_value_ <= 1


def test_hdbscan_leaves_outliers_unassigned_and_scores_count_them_wrong():
    X, y = blobs(sizes=(40, 40), spread=0.1)
    # Far from the clusters and from each other in the raw space.
    outliers = np.random.default_rng(1).normal(0, 3, (6, X.shape[1]))
    X = np.concatenate([X, outliers])
    y = np.concatenate([y, np.full(6, 9)])
    model = EmbeddingClusterer(
        method="hdbscan", min_cluster_size=10, standardize=False, normalize=False
    ).fit(X)
    assert model.n_clusters_ == 2
    assert np.all(model.labels_[-6:] == -1) and np.all(model.labels_[:-6] >= 0)
    assert "HDBSCAN" in model.criterion_ and "unassigned" in model.criterion_
    scores = cluster_scores(y, model.labels_)
    assert scores["unassigned"] == pytest.approx(np.mean(model.labels_ == -1))
    assert scores["purity"] == pytest.approx(np.mean(model.labels_ >= 0))  # clusters are pure
    assert len(model.medoid_indices_) == 2


def test_scores_by_hand():
    scores = cluster_scores(["a", "a", "a", "b", "b", "c"], [0, 0, 1, 1, 1, -1])
    assert scores["purity"] == pytest.approx(4 / 6)  # 2 a's in 0, 2 b's in 1, noise wrong
    assert scores["n_clusters"] == 2 and scores["n_classes"] == 3
    assert scores["unassigned"] == pytest.approx(1 / 6)
    perfect = cluster_scores(["x", "x", "y", "y"], [5, 5, 2, 2])
    assert perfect["purity"] == perfect["adjusted_rand"] == perfect["nmi"] == 1.0


def test_summary_lists_sizes_medoids_and_top_labels():
    rows = summarize_clusters([1, 0, 0, 0, -1], [2, 0], ["a", "b", "b", "c", "d"], top=1)
    assert rows == [
        {"cluster": 0, "size": 3, "medoid": 2, "top_labels": [("b", 2)]},
        {"cluster": 1, "size": 1, "medoid": 0, "top_labels": [("a", 1)]},
        {"cluster": -1, "size": 1, "medoid": None, "top_labels": [("d", 1)]},
    ]


@pytest.mark.parametrize("params, message", [
    ({"method": "spectral"}, "expected method in"),
    ({"criterion": "gap"}, "expected criterion in"),
    ({"n_clusters": 0}, "expected 1 <= n_clusters"),
    ({"n_clusters": 200}, "expected 1 <= n_clusters"),
    ({"n_clusters": "3"}, "integer or 'auto'"),
    ({"min_clusters": 5, "max_clusters": 3}, "min_clusters <= max_clusters"),
    ({"method": "hdbscan", "n_clusters": 3}, "HDBSCAN chooses"),
    ({"linkage": "median"}, "expected linkage in"),
])
def test_bad_parameters_say_what_was_expected(params, message):
    X, _ = blobs()
    with pytest.raises(ParameterError, match=message):
        EmbeddingClusterer(**params).fit(X)


def test_identical_embeddings_cannot_choose_k():
    with pytest.raises(ParameterError, match="every embedding is the same"):
        EmbeddingClusterer().fit(np.ones((10, 4)))


def test_clone_refits_the_same():
    X, _ = blobs(spread=0.8)
    model = EmbeddingClusterer(max_clusters=6, random_state=3).fit(X)
    again = clone(model).fit(X)
    assert np.array_equal(model.labels_, again.labels_)


def test_real_fsdd_clusters_follow_speakers_not_digits(fsdd):
    """240 FSDD clips (6 speakers x 10 digits), MFCC statistics: k = 6 groups the speakers."""
    model = EmbeddingClusterer(n_clusters=6).fit(fsdd.X)
    by_speaker = cluster_scores(fsdd.speakers, model.labels_)
    by_digit = cluster_scores(fsdd.y, model.labels_)
    assert by_speaker["adjusted_rand"] > 0.3
    assert by_speaker["adjusted_rand"] > 5 * max(by_digit["adjusted_rand"], 0.01)
    shuffled = cluster_scores(np.random.default_rng(0).permutation(fsdd.speakers), model.labels_)
    assert by_speaker["nmi"] > shuffled["nmi"] + 0.2
