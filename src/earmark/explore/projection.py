"""Two-dimensional maps of embeddings: UMAP, with t-SNE and PCA as fall-backs.

:func:`project` places every clip on a plane so that clips whose embeddings are close stay
close, for the cluster map (:mod:`earmark.explore.map`). It works in the same space as
the clusters (standardised, then L2-normalised; see
:func:`~earmark.explore.cluster.prepare_embeddings`), so a cluster is a patch of the map.

``method="auto"`` uses UMAP (McInnes et al. 2018, ``umap-learn``) when it is installed and
there are enough points for a neighbour graph; otherwise t-SNE (scikit-learn), and PCA
for a handful of points. Every fall-back says why in :attr:`Projection.note`. Results are
reproducible: UMAP and t-SNE run with a fixed ``random_state`` (UMAP then runs on one
thread, its price for determinism).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError

__all__ = ["Projection", "project", "METHODS", "MIN_UMAP_POINTS", "MIN_TSNE_POINTS"]

METHODS = ("auto", "umap", "tsne", "pca")
#: Below this many points, UMAP's neighbour graph is too small to lay out reliably.
MIN_UMAP_POINTS = 16
#: t-SNE needs perplexity < n_samples and a few neighbours to be worth it.
MIN_TSNE_POINTS = 6


@dataclass(frozen=True)
class Projection:
    """Where each clip lies on the map.

    Attributes
    ----------
    coordinates : np.ndarray [shape=(n_samples, 2), dtype=float64]
    method : str
        ``"umap"``, ``"tsne"`` or ``"pca"``: what was actually used.
    note : str
        Why a fall-back replaced the method asked for; empty when none did.
    """

    coordinates: np.ndarray
    method: str
    note: str = ""

    @property
    def description(self) -> str:
        """The method in words, with the reason for a fall-back if there was one."""
        name = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}[self.method]
        return f"{name} ({self.note})" if self.note else name


def project(
    X,
    *,
    method: str = "auto",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    standardize: bool = True,
    normalize: bool = True,
    random_state: int = 0,
) -> Projection:
    """Project embeddings onto two dimensions.

    Parameters
    ----------
    X : np.ndarray [shape=(n_samples, n_features)]
    method : {"auto", "umap", "tsne", "pca"}
        ``"auto"`` is UMAP when possible. Asking for UMAP without ``umap-learn``, or with
        fewer than :data:`MIN_UMAP_POINTS` points, falls back to t-SNE, and t-SNE with
        fewer than :data:`MIN_TSNE_POINTS` points falls back to PCA.
    n_neighbors, min_dist : int, float
        UMAP's neighbourhood size (capped at ``n_samples - 1``) and packing.
    standardize, normalize : bool
        Preprocessing, as for :class:`~earmark.explore.cluster.EmbeddingClusterer`.
    random_state : int

    Returns
    -------
    Projection

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(5, 8))
    >>> result = project(X, method="umap")
    >>> result.coordinates.shape, result.method
    ((5, 2), 'pca')
    >>> result.note
    'too few points for UMAP (5 < 16) or t-SNE (5 < 6)'
    """
    from .cluster import prepare_embeddings

    if method not in METHODS:
        raise ParameterError(f"expected method in {METHODS}, got {method!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ParameterError(
            f"expected embeddings of shape (n_samples >= 1, n_features), got {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ParameterError("expected finite embeddings, got NaN or infinity")
    Z = prepare_embeddings(X, standardize=standardize, normalize=normalize)
    n = len(Z)
    chosen, notes = method, []
    if chosen in ("auto", "umap"):
        umap_class = _umap_class()
        if umap_class is None:
            chosen = "tsne"
            notes.append("umap-learn is not installed")
        elif n < MIN_UMAP_POINTS:
            chosen = "tsne"
            notes.append(f"too few points for UMAP ({n} < {MIN_UMAP_POINTS})")
        else:
            chosen = "umap"
    if chosen == "tsne" and n < MIN_TSNE_POINTS:
        chosen = "pca"
        if notes and notes[-1].startswith("too few points for UMAP"):
            notes[-1] = notes[-1][:-1] + f") or t-SNE ({n} < {MIN_TSNE_POINTS})"
        else:
            notes.append(f"too few points for t-SNE ({n} < {MIN_TSNE_POINTS})")
    if chosen == "umap":
        coordinates = _umap(umap_class, Z, n_neighbors, min_dist, random_state)
    elif chosen == "tsne":
        coordinates = _tsne(Z, random_state)
    else:
        coordinates = _pca(Z)
    return Projection(np.asarray(coordinates, dtype=np.float64), chosen, "; ".join(notes))


def _umap_class():
    """``umap.UMAP``, or None without umap-learn.

    umap-learn imports TensorFlow, when installed, only for ``ParametricUMAP``, which maps
    never use; that import takes seconds, so it is kept out (unless TensorFlow is loaded).
    """
    blocked = "tensorflow" not in sys.modules
    if blocked:
        sys.modules["tensorflow"] = None  # makes `import tensorflow` raise ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from umap import UMAP
    except ImportError:
        return None
    finally:
        if blocked and sys.modules.get("tensorflow", False) is None:
            del sys.modules["tensorflow"]
    return UMAP


def _umap(umap_class, Z, n_neighbors, min_dist, random_state):
    model = umap_class(
        n_components=2, n_neighbors=max(2, min(n_neighbors, len(Z) - 1)), min_dist=min_dist,
        random_state=random_state, n_jobs=1,
    )
    with warnings.catch_warnings():
        # Spectral initialisation warns and falls back to random on disconnected graphs.
        warnings.simplefilter("ignore")
        return model.fit_transform(Z)


def _tsne(Z, random_state):
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(Z) - 1) / 3)))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=random_state
    ).fit_transform(Z)


def _pca(Z):
    from sklearn.decomposition import PCA

    coordinates = np.zeros((len(Z), 2))
    components = min(2, len(Z), Z.shape[1])
    if len(Z) >= 2 and components >= 1:
        coordinates[:, :components] = PCA(n_components=components).fit_transform(Z)
    return coordinates
