"""Few-shot learning on frozen embeddings: prototypes, taxonomies, multi-label, episodes.

Modules (imported on use, so ``import earmark.fewshot`` stays cheap):

* :mod:`~earmark.fewshot.prototypes`: :class:`PrototypeClassifier`, a class-mean classifier
  shaped like scikit-learn's ``NearestCentroid``, with probabilities and an "unknown" answer.
* :mod:`~earmark.fewshot.hierarchical`: prototypes at every level of a label taxonomy.
* :mod:`~earmark.fewshot.multilabel`: one-vs-rest prototypes with calibrated thresholds.
* :mod:`~earmark.fewshot.adapter`: a small projection trained episodically on base classes.
* :mod:`~earmark.fewshot.episodes`: N-way K-shot evaluation with confidence intervals.
"""

# Public names load on first use (lazy_loader, as librosa does): importing the package
# stays cheap, and every name below is importable from here.
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=['prototypes', 'hierarchical', 'multilabel', 'adapter', 'episodes', 'evaluation', 'labelsets', 'methods', 'plots'],
    submod_attrs={
        "prototypes": ['PrototypeClassifier'],
        "hierarchical": ['HierarchicalPrototypeClassifier'],
        "multilabel": ['MultiLabelPrototypeClassifier'],
        "adapter": ['PrototypicalAdapter'],
        "episodes": ['Episode', 'EpisodeSampler', 'iter_episodes', 'split_classes'],
        "evaluation": ['FewShotPoint', 'FewShotResult', 'evaluate_episodes', 'mean_ci95', 'DEFAULT_SHOTS',
                       'CENTERS'],
        "labelsets": ['binarize', 'hierarchy', 'resolve_taxonomy'],
        "methods": ['Method', 'make_method'],
        "plots": ['plot_fewshot'],
    },
)
