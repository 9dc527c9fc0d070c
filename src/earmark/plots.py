"""Pictures of evaluation results: confusion matrices and learning curves.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through pyplot, so
nothing depends on (or changes) the user's interactive backend and no window opens;
matplotlib is imported only when a picture is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .exceptions import ParameterError

__all__ = ["plot_confusion_matrix", "plot_learning_curves", "save_figure", "COLOURS"]

# Colour-blind-safe (Okabe-Ito), in the order curves are given.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def plot_confusion_matrix(
    result_or_matrix,
    classes: Sequence | None = None,
    path=None,
    *,
    title: str | None = None,
    annotate_up_to: int = 30,
    dpi: int = 150,
):
    """Draw a confusion matrix, each row normalised by its true class.

    Colour is the fraction of a true class given each label (a row's recall on the
    diagonal); cells show the counts while there are at most ``annotate_up_to``
    classes. Rows of classes with no test item are left blank.

    Parameters
    ----------
    result_or_matrix : EvaluationResult, dict or np.ndarray [shape=(n_classes, n_classes)]
        A result (or its ``to_dict()``), or a matrix of counts with true classes in rows.
    classes : sequence, optional
        Label names in matrix order; taken from the result when one is given.
    path : str or Path, optional
        Where to write the picture (format from the suffix, e.g. ``.png``, ``.svg``).
        Without it the :class:`~matplotlib.figure.Figure` is returned.
    title : str, optional
        Defaults to the learner, accuracy and split of a result.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    matrix, classes, default_title = _confusion_input(result_or_matrix, classes)
    from matplotlib.figure import Figure

    n = len(classes)
    support = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(support > 0, matrix / support, np.nan)
    side = float(np.clip(0.45 * n + 3.0, 5.0, 18.0))
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    colourbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colourbar.set_label("fraction of the true class")
    labels = [str(c) for c in classes]
    axes.set_xticks(range(n), labels=labels, fontsize=_tick_size(n))
    axes.set_yticks(range(n), labels=labels, fontsize=_tick_size(n))
    if max((len(label) for label in labels), default=0) > 3 or n > 12:
        for tick in axes.get_xticklabels():
            tick.set(rotation=45, ha="right", rotation_mode="anchor")
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    if n <= annotate_up_to:
        size = 10 if n <= 12 else 8
        for i in range(n):
            for j in range(n):
                if support[i, 0] == 0 or (matrix[i, j] == 0 and i != j):
                    continue
                dark = fraction[i, j] > 0.6
                axes.text(
                    j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=size,
                    color="white" if dark else "#202020",
                )
    axes.set_title(title if title is not None else default_title, fontsize=11 if n <= 12 else 13)
    return save_figure(figure, path, dpi)


def _confusion_input(value, classes):
    from .evaluation import EvaluationResult

    default = None
    if isinstance(value, EvaluationResult):
        value = value.to_dict(predictions=False)
    if isinstance(value, dict):
        # A result or its to_dict(), with or without predictions: all a picture needs.
        classes = value["classes"] if classes is None else classes
        default = (
            f"{value['learner']}: accuracy {value['accuracy']:.1%} over {value['n_tested']} "
            f"items\n{value['strategy']}"
        )
        value = value["confusion_matrix"]
    matrix = np.asarray(value)
    if classes is None:
        classes = list(range(matrix.shape[0])) if matrix.ndim == 2 else []
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise ParameterError(
            f"expected a square matrix of shape ({len(classes)}, {len(classes)}) "
            f"matching the classes, got {matrix.shape}"
        )
    matrix = matrix.astype(np.int64)
    if default is None:
        total = int(matrix.sum())
        default = f"accuracy {np.trace(matrix) / max(total, 1):.1%} over {total} items"
    return matrix, list(classes), default


def plot_learning_curves(
    curves: Mapping[str, Any] | Any,
    path=None,
    *,
    title: str | None = None,
    spread: str = "std",
    dpi: int = 150,
):
    """Draw one or more learning curves on one axis, to compare backends or learners.

    The x-axis is training examples per class on a log2 scale. Each curve is its mean
    accuracy with a shaded band (``spread``: ``"std"`` for ± one standard deviation,
    ``"range"`` for min to max). The ``"all"`` point, every training example, is drawn
    as a diamond at its actual mean number of examples per class, joined by a dotted
    line, since it is not one of the drawn sizes.

    Parameters
    ----------
    curves : mapping of str to CurveResult (or its ``to_dict()``), or one CurveResult
        E.g. ``{"birdnet": curve, "mfcc": baseline}``; names label the legend.
    path : str or Path, optional
        Where to write the picture; without it the Figure is returned.
    title : str, optional
    spread : {"std", "range"}

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    from .curve import CurveResult

    if spread not in ("std", "range"):
        raise ParameterError(f"expected spread 'std' or 'range', got {spread!r}")
    if isinstance(curves, (CurveResult, dict)) and not _is_mapping_of_curves(curves):
        curves = {_curve(curves).learner: curves}
    curves = {str(name): _curve(curve) for name, curve in curves.items()}
    if not curves:
        raise ParameterError("expected at least one learning curve")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    axes = figure.add_subplot()
    ticks: set[float] = set()
    all_ticks: set[float] = set()
    for index, (name, curve) in enumerate(curves.items()):
        colour = COLOURS[index % len(COLOURS)]
        drawn = [p for p in curve.points if p.size != "all"]
        every = [p for p in curve.points if p.size == "all"]
        if drawn:
            x = np.array([p.examples_per_class for p in drawn])
            mean = np.array([p.mean for p in drawn])
            low, high = _band(drawn, spread)
            axes.plot(x, mean, "o-", color=colour, label=_legend(name, curve), lw=2, ms=5)
            axes.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)
            ticks.update(x.tolist())
        for point in every:
            x_all = point.examples_per_class
            # Curves of one dataset share this x; a small dodge keeps error bars apart.
            x_shown = x_all * 2.0 ** (0.05 * (index - (len(curves) - 1) / 2))
            (low,), (high,) = _band([point], spread)
            axes.errorbar(
                [x_shown], [point.mean], yerr=[[point.mean - low], [high - point.mean]],
                fmt="D", color=colour, mfc="white", mew=2, ms=8, capsize=4,
                label=None if drawn else _legend(name, curve),
            )
            if drawn:
                axes.plot([drawn[-1].examples_per_class, x_shown], [drawn[-1].mean, point.mean],
                          ":", color=colour, lw=1.5)
            all_ticks.add(round(x_all, 1))
    if all_ticks:
        axes.plot([], [], "D", color="grey", mfc="white", mew=2, ms=7,
                  label="all training data (mean per class)")
    chance = max(c.chance for c in curves.values())
    axes.axhline(chance, color="grey", ls="--", lw=1)
    axes.annotate(f"chance ({chance:.0%})", (0.01, chance), xycoords=("axes fraction", "data"),
                  xytext=(0, 3), textcoords="offset points", fontsize=8, color="grey")
    axes.set_xscale("log", base=2)
    span = ticks | all_ticks
    powers = [2.0**k for k in range(16) if min(span) / 1.01 <= 2.0**k <= max(span) * 1.01]
    # A power of two too close to an "all" tick would print over it.
    powers = [v for v in powers if all(abs(np.log2(v / a)) > 0.2 for a in all_ticks)]
    positions = powers + sorted(all_ticks)
    names = [f"{v:g}" for v in powers] + [f"all\n({v:g})" for v in sorted(all_ticks)]
    axes.xaxis.set_major_locator(FixedLocator(positions))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticklabels(names)
    axes.set_xlim(min(span) / 1.3, max(span) * 1.4)
    axes.set_ylim(0.0, 1.0)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(True, which="major", alpha=0.3)
    axes.set_xlabel("labelled training examples per class (log scale)")
    axes.set_ylabel("accuracy on held-out data")
    strategies = sorted({c.strategy for c in curves.values()})
    band = "± 1 std" if spread == "std" else "min to max"
    default = "Accuracy against labelled examples per class"
    subtitle = f"{'; '.join(strategies)}; shaded: {band} over splits and draws"
    axes.set_title(f"{title or default}\n{subtitle}", fontsize=10)
    axes.legend(loc="lower right", fontsize=9)
    return save_figure(figure, path, dpi)


def _legend(name: str, curve) -> str:
    return name if name == curve.learner else f"{name} ({curve.learner})"


def _is_mapping_of_curves(value) -> bool:
    return isinstance(value, dict) and "points" not in value


def _curve(value):
    from .curve import CurveResult

    if isinstance(value, CurveResult):
        return value
    if isinstance(value, dict):
        return CurveResult.from_dict(value)
    raise ParameterError(f"expected a CurveResult or its to_dict(), got {type(value).__name__}")


def _band(points, spread: str) -> tuple[np.ndarray, np.ndarray]:
    if spread == "range":
        return np.array([p.min for p in points]), np.array([p.max for p in points])
    mean = np.array([p.mean for p in points])
    std = np.array([p.std for p in points])
    return np.clip(mean - std, 0.0, 1.0), np.clip(mean + std, 0.0, 1.0)


def _tick_size(n: int) -> float:
    # The figure grows with the number of classes, so the text can keep its size.
    return 10.0 if n <= 40 else max(6.0, 10.0 - (n - 40) * 0.1)


def save_figure(figure, path, dpi: int):
    """Save ``figure`` to ``path`` atomically and close it; with no path, return the figure.

    Every picture earmark draws ends here, so none is ever left half-written.
    """
    if path is None:
        return figure
    import matplotlib.pyplot as plt

    from .files import atomic_path

    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path


def plot_reliability(
    bins: Sequence[Mapping[str, Any]],
    path=None,
    *,
    ece: float | None = None,
    ece_floor: float | None = None,
    title: str | None = None,
    dpi: int = 150,
):
    """Reliability diagram: accuracy against mean confidence per confidence bin.

    A calibrated model's points sit on the diagonal; below it, the model is surer than
    it is right. Bar widths are the bins, their shade the share of items in each.

    Parameters
    ----------
    bins : sequence of dict
        :func:`earmark.calibration_metrics.reliability_table` rows (``low``, ``high``,
        ``count``, ``confidence``, ``accuracy``), e.g. ``result.calibration["bins"]``.
    path : str or Path, optional
        Where to write the picture; without it the Figure is returned.
    ece : float, optional
        Shown in the title.
    ece_floor : float, optional
        The ECE sampling alone gives on these items
        (:func:`earmark.calibration_metrics.ece_sampling_floor`), shown beside it.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if not bins:
        raise ParameterError("expected at least one reliability bin, got none")
    figure = Figure(figsize=(5.5, 5.2), layout="constrained")
    axes = figure.add_subplot()
    total = sum(row["count"] for row in bins)
    for row in bins:
        share = row["count"] / total
        axes.bar(row["low"], row["accuracy"], width=row["high"] - row["low"], align="edge",
                 color=(0.2, 0.4, 0.8, 0.25 + 0.75 * min(1.0, 4 * share)), edgecolor="white")
    axes.plot([row["confidence"] for row in bins], [row["accuracy"] for row in bins], "o-",
              color="#d62728", label="accuracy at mean confidence")
    axes.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top class probability)")
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper left", fontsize=9)
    heading = title or "reliability"
    if ece is not None:
        heading += f"\nECE {ece:.3f} (15 bins), {total} items"
        if ece_floor is not None:
            heading += f"; {ece_floor:.3f} by chance alone"
    axes.set_title(heading, fontsize=11)
    return save_figure(figure, path, dpi)


def plot_operating_points(
    curves: Sequence[Mapping[str, Any]],
    path=None,
    *,
    target_precision: float | None = 0.9,
    title: str | None = None,
    max_classes: int = 16,
    dpi: int = 150,
):
    """Precision and recall against threshold, one panel per class.

    Parameters
    ----------
    curves : sequence of dict
        :func:`earmark.thresholds.operating_curves` output.
    target_precision : float, optional
        Drawn as a horizontal line, so a reader sees where each class reaches it.
    max_classes : int
        The classes with most items are drawn when there are more.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    shown = sorted(curves, key=lambda c: -c["support"])[:max_classes]
    shown = [c for c in shown if c["support"] > 0]
    if not shown:
        raise ParameterError("expected at least one class with items, got none")
    columns = min(4, len(shown))
    rows = int(np.ceil(len(shown) / columns))
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows + 0.6), layout="constrained")
    for index, curve in enumerate(shown):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.plot(curve["thresholds"], curve["precision"], color="#1f77b4", label="precision")
        axes.plot(curve["thresholds"], curve["recall"], color="#ff7f0e", label="recall")
        if target_precision is not None:
            axes.axhline(target_precision, color="grey", linestyle=":", linewidth=1)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.set_title(f"{curve['label']} ({curve['support']})", fontsize=9)
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=7, loc="lower left")
    figure.supxlabel("threshold on the class probability", fontsize=9)
    figure.suptitle(title or "precision and recall against threshold (held-out items)",
                    fontsize=11)
    return save_figure(figure, path, dpi)
