"""Evaluation like DCASE's anomaly task: AUC and partial AUC per section and overall.

``pAUC`` is scikit-learn's ``roc_auc_score(max_fpr=p)`` (standardised by McClish's
correction, as the DCASE baseline computes it): the area under the ROC curve over false
alarm rates up to ``p``, rescaled so that 0.5 is chance and 1 perfect. The overall figure
is the arithmetic mean over sections (the number this project's goal is stated in) and,
as DCASE ranks, the harmonic mean.

With domains (DCASE 2022's source and target conditions), each section also gets an AUC
per domain, computed as DCASE 2022's evaluator does: the domain's normal recordings
against *every* anomalous recording of the section (of both domains), so a detector whose
target normals score like source anomalies loses target AUC. The pAUC stays one figure
over both domains, and ``score_hmean`` is DCASE 2022's official score: the harmonic mean
over every section's per-domain AUCs and its pAUC.
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
    domains : dict of str to dict
        With domains: per domain, the arithmetic and harmonic mean over sections of its
        AUC (``auc``, ``auc_hmean``); empty without.
    score_hmean : float or None
        With domains: DCASE 2022's official score (see the module docstring).
    """

    sections: dict
    auc: float
    pauc: float
    auc_hmean: float
    pauc_hmean: float
    max_fpr: float = MAX_FPR
    curves: dict = field(default_factory=dict, repr=False)
    domains: dict = field(default_factory=dict)
    score_hmean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"auc": self.auc, "pauc": self.pauc, "auc_hmean": self.auc_hmean,
               "pauc_hmean": self.pauc_hmean, "max_fpr": self.max_fpr, "sections": self.sections}
        if self.domains:
            out.update(domains=self.domains, score_hmean=self.score_hmean)
        return out


def _hmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(len(values) / np.sum(1.0 / np.maximum(values, 1e-12)))


def evaluate_scores(scores, anomalous, sections=None, domains=None, *,
                    max_fpr: float = MAX_FPR) -> AnomalyEvaluation:
    """AUC and pAUC of anomaly scores against known labels, per section.

    Parameters
    ----------
    scores : array-like [shape=(n,)]
        Higher = more anomalous.
    anomalous : array-like [shape=(n,), dtype=bool]
    sections : array-like [shape=(n,)], optional
        One section ``"default"`` if not given.
    domains : array-like [shape=(n,)], optional
        Each recording's domain (None where unknown). Given, each section's ``domains``
        holds per domain ``auc``, ``n_normal`` (the domain's) and ``n_anomalous`` (the
        section's, both domains); a domain without normal recordings in a section is left
        out of it.
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
    >>> result = evaluate_scores([0.1, 0.5, 0.3, 0.9, 0.4], [0, 0, 1, 1, 1],
    ...                          domains=["source", "target", "source", "target", "target"])
    >>> result.sections["default"]["domains"]["target"]["auc"]  # target normal 0.5 vs 0.3, 0.9, 0.4
    0.3333333333333333
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    anomalous = np.asarray(anomalous, dtype=bool)
    sections = np.array(["default"] * len(scores) if sections is None else [str(s) for s in sections])
    if domains is not None:
        domains = np.array([None if d is None else str(d) for d in domains], dtype=object)
        if domains.shape != scores.shape:
            raise ParameterError(f"expected one domain per score, got {domains.shape} for {scores.shape}")
        if all(d is None for d in domains):
            domains = None
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
        if domains is not None:
            results[name]["domains"] = {}
            for domain in sorted({d for d in domains[where & ~anomalous] if d is not None}):
                # DCASE 2022: the domain's normals against all the section's anomalies.
                keep = where & ((domains == domain) | anomalous)
                results[name]["domains"][domain] = {
                    "auc": float(roc_auc_score(anomalous[keep], scores[keep])),
                    "n_normal": int((keep & ~anomalous).sum()), "n_anomalous": n_anomalous,
                }
    aucs = [r["auc"] for r in results.values()]
    paucs = [r["pauc"] for r in results.values()]
    evaluation = AnomalyEvaluation(results, float(np.mean(aucs)), float(np.mean(paucs)), _hmean(aucs),
                                   _hmean(paucs), max_fpr, curves)
    if domains is not None:
        per_domain: dict[str, list] = {}
        for result in results.values():
            for domain, figures in result["domains"].items():
                per_domain.setdefault(domain, []).append(figures["auc"])
        evaluation.domains = {d: {"auc": float(np.mean(v)), "auc_hmean": _hmean(v)}
                              for d, v in sorted(per_domain.items())}
        evaluation.score_hmean = _hmean(sum(per_domain.values(), []) + paucs)
    return evaluation
