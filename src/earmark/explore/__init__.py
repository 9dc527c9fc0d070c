"""Explore a collection without (or before) labelling it: clusters, maps, search, labelling.

Modules (imported on use, so ``import earmark.explore`` stays cheap):

* :mod:`~earmark.explore.cluster`: :class:`~earmark.explore.cluster.EmbeddingClusterer`
  (k-means, agglomerative, HDBSCAN) with an automatic, reported choice of the number of
  clusters, medoid examples per cluster, and purity / ARI / NMI against labels.
* :mod:`~earmark.explore.projection`: 2-D maps of embeddings (UMAP, else t-SNE or PCA).
* :mod:`~earmark.explore.map`: a self-contained interactive HTML map where clicking a
  point plays its sound.
* :mod:`~earmark.explore.search`: the stored clips that sound most like an example.
* :mod:`~earmark.explore.collection`, :mod:`~earmark.explore.labels`,
  :mod:`~earmark.explore.active` and :mod:`~earmark.explore.app`: the browser labelling loop.
"""

# Public names load on first use (lazy_loader, as librosa does): importing the package
# stays cheap, and every name below is importable from here.
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=['active', 'cluster', 'collection', 'labels', 'map', 'projection', 'search'],
    submod_attrs={
        "active": ['margins', 'margin_sampling', 'TrainedTarget', 'train_target'],
        "cluster": ['EmbeddingClusterer', 'cluster_scores', 'summarize_clusters', 'prepare_embeddings'],
        "collection": ['Collection', 'load_collection'],
        "labels": ['Label', 'LabelStore'],
        "map": ['write_map', 'WrittenMap'],
        "projection": ['Projection', 'project'],
        "search": ['search', 'search_audio', 'embed_query', 'stored_backends', 'backend_for_store'],
    },
)
