"""Evaluation like DCASE's anomaly task: AUC and partial AUC per section and overall.

``pAUC`` is scikit-learn's ``roc_auc_score(max_fpr=p)`` (standardised by McClish's
correction, as the DCASE baseline computes it): the area under the ROC curve over false
alarm rates up to ``p``, rescaled so that 0.5 is chance and 1 perfect. The overall figure
is the arithmetic mean over sections (the number this project's goal is stated in) and,
as DCASE ranks, the harmonic mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = ["AnomalyEvaluation", "evaluate_scores", "MAX_FPR"]

#: The false-alarm rate up to which the partial AUC is taken (DCASE: 0.1).
MAX_FPR = 0.1


@dataclass
class AnomalyEvaluation:
    """AUC and pAUC of anomaly scores.

    Attributes
    ----------
    sections : dict of str to dict
        Per section: ``auc``, ``pauc``, ``n_normal``, ``n_anomalous``.
    auc, pauc : float
        Arithmetic mean over sections.
    auc_hmean, pauc_hmean : float
        Harmonic mean over sections (DCASE's ranking figure).
    max_fpr : float
    curves : dict of str to (np.ndarray, np.ndarray)
        ROC curve (false-alarm rate, hit rate) per section, for the picture.
    """

    sections: dict
    auc: float
    pauc: float
    auc_hmean: float
    pauc_hmean: float
    max_fpr: float = MAX_FPR
    curves: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc, "pauc": self.pauc, "auc_hmean": self.auc_hmean,
                "pauc_hmean": self.pauc_hmean, "max_fpr": self.max_fpr, "sections": self.sections}


def _hmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(len(values) / np.sum(1.0 / np.maximum(values, 1e-12)))


def evaluate_scores(scores, anomalous, sections=None, *, max_fpr: float = MAX_FPR) -> AnomalyEvaluation:
    """AUC and pAUC of anomaly scores against known labels, per section.

    Parameters
    ----------
    scores : array-like [shape=(n,)]
        Higher = more anomalous.
    anomalous : array-like [shape=(n,), dtype=bool]
    sections : array-like [shape=(n,)], optional
        One section ``"default"`` if not given.
    max_fpr : float

    Returns
    -------
    AnomalyEvaluation

    Raises
    ------
    ParameterError
        A section without both normal and anomalous recordings.

    Examples
    --------
    >>> evaluate_scores([0.1, 0.2, 0.9, 0.8], [False, False, True, True]).auc
    1.0
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    anomalous = np.asarray(anomalous, dtype=bool)
    sections = np.array(["default"] * len(scores) if sections is None else [str(s) for s in sections])
    if not (scores.shape == anomalous.shape == sections.shape) or scores.ndim != 1:
        raise ParameterError(f"expected scores, labels and sections of one length, got "
                             f"{scores.shape}, {anomalous.shape}, {sections.shape}")
    if not np.isfinite(scores).all():
        raise ParameterError("the scores hold NaN or infinite values")
    results, curves = {}, {}
    for name in sorted(set(sections.tolist())):
        where = sections == name
        n_anomalous = int(anomalous[where].sum())
        n_normal = int(where.sum()) - n_anomalous
        if not n_anomalous or not n_normal:
            raise ParameterError(f"section {name!r} has {n_normal} normal and {n_anomalous} "
                                 f"anomalous recordings; AUC needs both")
        results[name] = {
            "auc": float(roc_auc_score(anomalous[where], scores[where])),
            "pauc": float(roc_auc_score(anomalous[where], scores[where], max_fpr=max_fpr)),
            "n_normal": n_normal, "n_anomalous": n_anomalous,
        }
        fpr, tpr, _ = roc_curve(anomalous[where], scores[where])
        curves[name] = (fpr, tpr)
    aucs = [r["auc"] for r in results.values()]
    paucs = [r["pauc"] for r in results.values()]
    return AnomalyEvaluation(results, float(np.mean(aucs)), float(np.mean(paucs)), _hmean(aucs),
                             _hmean(paucs), max_fpr, curves)
