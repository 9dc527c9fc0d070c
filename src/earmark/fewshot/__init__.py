"""Few-shot learning on frozen embeddings: prototypes, taxonomies, multi-label, episodes.

Modules (imported on use, so ``import earmark.fewshot`` stays cheap):

* :mod:`~earmark.fewshot.prototypes`: :class:`PrototypeClassifier`, a class-mean classifier
  shaped like scikit-learn's ``NearestCentroid``, with probabilities and an "unknown" answer.
* :mod:`~earmark.fewshot.hierarchical`: prototypes at every level of a label taxonomy.
* :mod:`~earmark.fewshot.multilabel`: one-vs-rest prototypes with calibrated thresholds.
* :mod:`~earmark.fewshot.adapter`: a small projection trained episodically on base classes.
* :mod:`~earmark.fewshot.episodes`: N-way K-shot evaluation with confidence intervals.
"""
