"""Anomalous sound detection from normal recordings alone.

Modules (imported on use, so ``import earmark.anomaly`` stays cheap):

* :mod:`~earmark.anomaly.detectors`: one-class detectors on embeddings (k-nearest
  neighbour distance, Mahalanobis, Gaussian mixture, PCA reconstruction).
* :mod:`~earmark.anomaly.thresholds`: a section's normal profile: out-of-fold
  normalisation and the threshold at a chosen false-alarm rate, group-aware, per domain.
* :mod:`~earmark.anomaly.evaluation`: AUC and pAUC per section and overall (DCASE).
* :mod:`~earmark.anomaly.baseline`: the high-pass energy detector beside the learned ones.
* :mod:`~earmark.anomaly.explanations`: explaining an anomaly score; where explanations point.
* :mod:`~earmark.anomaly.plots`: the ROC picture.
* :mod:`~earmark.anomaly.recordings`: a folder or manifest of recordings, with sections
  and domains.

The model kind itself is :class:`earmark.models.AnomalyModel` (kind ``"anomaly"``).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=['detectors', 'thresholds', 'evaluation', 'baseline', 'explanations', 'plots', 'recordings'],
    submod_attrs={
        "detectors": ['KNNDetector', 'GaussianDetector', 'MixtureDetector', 'PCADetector',
                      'DETECTORS', 'make_detector'],
        "thresholds": ['POOLINGS', 'MIN_NORMAL_ITEMS', 'MIN_DOMAIN_ITEMS', 'DEFAULT_DOMAIN',
                       'SectionProfile', 'DomainProfile', 'fit_section', 'pooled_scores',
                       'threshold_at'],
        "evaluation": ['AnomalyEvaluation', 'evaluate_scores', 'MAX_FPR'],
        "baseline": ['HighPassBaseline', 'band_levels', 'file_band_levels', 'CUTOFFS_HZ'],
        "explanations": ['explain_anomaly', 'FrequencyProfile', 'frequency_profile',
                         'REGION_EDGES_HZ'],
        "plots": ['plot_roc'],
        "recordings": ['Recordings', 'read_recordings'],
    },
)
