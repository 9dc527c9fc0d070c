"""Pictures of few-shot results: accuracy against shots, and open-set rejection.

Drawn on :class:`matplotlib.figure.Figure` objects like :mod:`earmark.plots`, so no
window opens and the user's pyplot state is untouched.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..exceptions import ParameterError
from ..plots import COLOURS, save_figure

__all__ = ["plot_fewshot"]


def plot_fewshot(results, path=None, *, title: str | None = None, dpi: int = 150):
    """Draw few-shot accuracy against shots per class, with 95 % confidence intervals.

    One line per method and number of ways; error bars are the 95 % confidence
    interval of the mean over episodes. Coarse (parent-level) accuracy, where measured,
    is a dashed line of the same colour. When some result has open-set figures, a
    second panel shows the share of unknown-class queries rejected at the threshold
    that keeps the in-set share (``coverage``) of known-class queries, against the
    ``1 - coverage`` that a score knowing nothing would reject.

    Parameters
    ----------
    results : FewShotResult, its ``to_dict()``, or a sequence or mapping of them
        A mapping's keys name the legend entries; otherwise each result's method does.
    path : str or Path, optional
        Where to write the picture; without it the Figure is returned.
    title : str, optional

    Returns
    -------
    Path or matplotlib.figure.Figure

    Examples
    --------
    >>> from earmark.fewshot.results import FewShotPoint, FewShotResult
    >>> point = FewShotPoint(shots=1, ways=5, accuracy=[0.4, 0.6])
    >>> result = FewShotResult("prototype", "by group", 5, 15, 2, 0, 0, 0.9, [point])
    >>> figure = plot_fewshot(result)
    >>> figure.axes[0].get_ylabel()
    'accuracy on queries (95 % CI)'
    """
    named = _named_results(results)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    open_set = any(p.rejection for r in named.values() for p in r.points)
    figure = Figure(figsize=(12.0 if open_set else 7.5, 5.0), layout="constrained")
    accuracy_axes = figure.add_subplot(1, 2 if open_set else 1, 1)
    rejection_axes = figure.add_subplot(1, 2, 2) if open_set else None
    lines = [
        (name, ways, [p for p in result.points if p.ways == ways], result)
        for name, result in named.items()
        for ways in sorted({p.ways for p in result.points})
    ]
    shots = sorted({p.shots for _, _, points, _ in lines for p in points})
    several_ways = len({ways for _, ways, _, _ in lines}) > 1
    coverages, coarse = set(), False
    for index, (name, ways, points, result) in enumerate(lines):
        colour = COLOURS[index % len(COLOURS)]
        # A small dodge keeps the error bars of lines at the same shots apart.
        dodge = 2.0 ** (0.04 * (index - (len(lines) - 1) / 2))
        x = np.array([p.shots for p in points], dtype=float) * dodge
        label = f"{name}, {ways}-way" if several_ways else name
        _errorbar(accuracy_axes, x, points, "accuracy", colour, "o-", label)
        if any(p.coarse_accuracy for p in points):
            _errorbar(accuracy_axes, x, points, "coarse_accuracy", colour, "s--", None,
                      hollow=True)
            coarse = True
        if rejection_axes is not None and any(p.rejection for p in points):
            _errorbar(rejection_axes, x, points, "rejection", colour, "o-", None)
            coverages.add(result.coverage)
    if coarse:  # one legend entry for every dashed line
        accuracy_axes.plot([], [], "s--", color="grey", mfc="white", label="coarse (parent) level")
    for ways in sorted({ways for _, ways, _, _ in lines}):
        accuracy_axes.axhline(1.0 / ways, color="grey", ls=":", lw=1)
        accuracy_axes.annotate(
            f"chance, {ways}-way ({1 / ways:.0%})", (0.01, 1.0 / ways),
            xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points",
            fontsize=8, color="grey",
        )
    for coverage in sorted(coverages):
        rejection_axes.axhline(1.0 - coverage, color="grey", ls=":", lw=1)
        # Below the line: rejection figures sit at or above it.
        rejection_axes.annotate(
            f"a score that knows nothing ({1 - coverage:.0%})", (0.01, 1.0 - coverage),
            xycoords=("axes fraction", "data"), xytext=(0, -10), textcoords="offset points",
            fontsize=8, color="grey",
        )
    for axes in filter(None, (accuracy_axes, rejection_axes)):
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_locator(FixedLocator(shots))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xticklabels([str(k) for k in shots])
        axes.set_xlim(min(shots) / 1.4, max(shots) * 1.4)
        axes.set_ylim(0.0, 1.0)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.grid(True, which="major", alpha=0.3)
        axes.set_xlabel("labelled examples per class (shots, log scale)")
    accuracy_axes.legend(loc="best", fontsize=8)
    accuracy_axes.set_ylabel("accuracy on queries (95 % CI)")
    strategies = "; ".join(sorted({r.strategy for r in named.values()}))
    episodes = sorted({r.episodes for r in named.values()})
    accuracy_axes.set_title(
        f"{title or 'Few-shot accuracy'}\n{strategies}; "
        f"{'/'.join(map(str, episodes))} episodes per point", fontsize=10,
    )
    if rejection_axes is not None:
        shown = "/".join(f"{c:.0%}" for c in sorted(coverages))
        rejection_axes.set_ylabel("unknown-class queries rejected (95 % CI)")
        rejection_axes.set_title(
            f"Open set: rejection of unknown classes (colours as on the left)\nthreshold "
            f"keeps {shown} of known-class queries, set per episode", fontsize=10,
        )
    return save_figure(figure, path, dpi)


def _errorbar(axes, x, points, name: str, colour, style: str, label: str, hollow=False):
    shown = [(xi, p.figure(name)) for xi, p in zip(x, points) if getattr(p, name)]
    if not shown:
        return
    xs = [xi for xi, _ in shown]
    means = [figure[0] for _, figure in shown]
    errors = [figure[1] for _, figure in shown]
    axes.errorbar(
        xs, means, yerr=errors, fmt=style, color=colour, lw=2 if not hollow else 1.5,
        ms=6, capsize=4, mfc="white" if hollow else colour, label=label,
    )


def _named_results(results) -> dict[str, Any]:
    from .results import FewShotResult

    def one(value):
        if isinstance(value, FewShotResult):
            return value
        if isinstance(value, Mapping) and "points" in value:
            return FewShotResult.from_dict(dict(value))
        raise ParameterError(
            f"expected a FewShotResult or its to_dict(), got {type(value).__name__}"
        )

    if isinstance(results, FewShotResult) or (isinstance(results, Mapping) and "points" in results):
        results = [results]
    if isinstance(results, Mapping):
        named = {str(name): one(value) for name, value in results.items()}
    else:
        named = {}
        for value in results:
            result = one(value)
            name, copy = result.method, 2
            while name in named:  # the same method twice (e.g. two datasets)
                name, copy = f"{result.method} ({copy})", copy + 1
            named[name] = result
    if not named or not any(r.points for r in named.values()):
        raise ParameterError("expected at least one few-shot result with points")
    return named
