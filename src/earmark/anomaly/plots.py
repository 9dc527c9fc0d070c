"""The ROC picture of an anomaly evaluation: one curve per section, the pAUC range shaded."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_roc"]


def plot_roc(evaluation, path=None, *, title: str = "Anomaly detection ROC"):
    """Plot each section's ROC curve; save as PNG when ``path`` is given.

    Parameters
    ----------
    evaluation : AnomalyEvaluation
    path : str or Path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.axvspan(0, evaluation.max_fpr, color="0.9", label=f"pAUC range (FPR <= {evaluation.max_fpr:g})")
    for name, (fpr, tpr) in evaluation.curves.items():
        result = evaluation.sections[name]
        axes.plot(fpr, tpr, label=f"{name}: AUC {result['auc']:.2f}, pAUC {result['pauc']:.2f}")
    axes.plot([0, 1], [0, 1], "k:", linewidth=1)
    axes.set(xlabel="false-alarm rate (normal flagged)", ylabel="hit rate (anomalies flagged)",
             xlim=(0, 1), ylim=(0, 1.01), title=f"{title}\nmean AUC {evaluation.auc:.3f}, "
             f"pAUC {evaluation.pauc:.3f}")
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    if path is not None:
        figure.savefig(Path(path), dpi=120)
        plt.close(figure)
    return figure
