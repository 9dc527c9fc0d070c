"""2-D projections: UMAP on real FSDD embeddings keeps neighbours, fall-backs say why."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from earmark.exceptions import ParameterError
from earmark.explore.cluster import prepare_embeddings
from earmark.explore.projection import MIN_TSNE_POINTS, MIN_UMAP_POINTS, project

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _same_speaker_neighbours(coordinates, speakers, k=5) -> float:
    """Share of each clip's k nearest map neighbours said by the same speaker."""
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(coordinates).kneighbors(coordinates)
    return float(np.mean(speakers[index[:, 1:]] == speakers[:, None]))


def test_umap_map_of_real_clips_keeps_neighbours_and_is_reproducible(fsdd):
    first = project(fsdd.X, method="auto", random_state=0)
    assert first.method == "umap" and first.note == "" and first.description == "UMAP"
    assert first.coordinates.shape == (len(fsdd.X), 2)
    assert np.isfinite(first.coordinates).all()
    # FSDD clips of one speaker sound alike (see test_cluster): on the map they sit together.
    together = _same_speaker_neighbours(first.coordinates, fsdd.speakers)
    assert together > 0.6  # chance is 1/6
    Z = prepare_embeddings(fsdd.X)
    assert trustworthiness(Z, first.coordinates, n_neighbors=5) > 0.85
    again = project(fsdd.X, method="umap", random_state=0)
    np.testing.assert_allclose(again.coordinates, first.coordinates)


def test_tsne_and_pca_on_request(fsdd):
    X, speakers = fsdd.X[:120], fsdd.speakers[:120]
    tsne = project(X, method="tsne")
    pca = project(X, method="pca")
    assert (tsne.method, pca.method) == ("tsne", "pca")
    assert tsne.note == pca.note == ""
    assert _same_speaker_neighbours(tsne.coordinates, speakers) > 0.6
    np.testing.assert_allclose(project(X, method="tsne").coordinates, tsne.coordinates)
    # PCA's first axis carries the most variance of the prepared embeddings.
    assert np.var(pca.coordinates[:, 0]) >= np.var(pca.coordinates[:, 1])


def test_without_umap_learn_auto_falls_back_to_tsne_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now fails
    X = np.random.default_rng(0).normal(size=(40, 8))
    for method in ("auto", "umap"):
        result = project(X, method=method)
        assert result.method == "tsne"
        assert result.note == "umap-learn is not installed"
        assert result.description == "t-SNE (umap-learn is not installed)"


@pytest.mark.parametrize("n, method, note", [
    (15, "tsne", "too few points for UMAP (15 < 16)"),
    (5, "pca", "too few points for UMAP (5 < 16) or t-SNE (5 < 6)"),
    (2, "pca", "too few points for UMAP (2 < 16) or t-SNE (2 < 6)"),
])
def test_too_few_points_fall_back_and_say_why(n, method, note):
    assert (MIN_UMAP_POINTS, MIN_TSNE_POINTS) == (16, 6)
    X = np.random.default_rng(1).normal(size=(n, 8))
    result = project(X)
    assert (result.method, result.note) == (method, note)
    assert result.coordinates.shape == (n, 2) and np.isfinite(result.coordinates).all()


def test_tsne_asked_for_with_too_few_points_uses_pca():
    result = project(np.random.default_rng(2).normal(size=(4, 3)), method="tsne")
    assert result.method == "pca" and result.note == "too few points for t-SNE (4 < 6)"


def test_one_point_and_one_feature_still_give_a_map():
    assert project(np.ones((1, 5))).coordinates.tolist() == [[0.0, 0.0]]
    line = project(np.arange(4.0)[:, None], method="pca", normalize=False).coordinates
    assert line.shape == (4, 2) and np.all(line[:, 1] == 0) and np.ptp(line[:, 0]) > 0


@pytest.mark.parametrize("X, kwargs, message", [
    (np.ones((5, 3)), {"method": "mds"}, "expected method in"),
    (np.ones(5), {}, "expected embeddings of shape"),
    (np.zeros((0, 3)), {}, "expected embeddings of shape"),
    (np.array([[1.0, np.nan]] * 3), {}, "expected finite embeddings"),
])
def test_bad_input_says_what_was_expected(X, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        project(X, **kwargs)
