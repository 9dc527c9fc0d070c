"""Two domains' embeddings side by side, before and after adaptation, in two dimensions.

Each panel is a principal-component projection fitted on that panel's **source** items
(standardised), so panels whose source is unchanged (the aligners map the target only)
share their axes with the "before" panel and the target can be seen moving onto the
source. A panel in a learned feature space (DANN) gets its own axes.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..exceptions import ParameterError
from ..plots import save_figure

__all__ = ["plot_domains"]

# Okabe-Ito blue and vermilion: distinguishable with any colour vision.
_SOURCE, _TARGET = "#0072B2", "#D55E00"


def plot_domains(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path=None,
    *,
    names: tuple[str, str] = ("source", "target"),
    subtitles: Mapping[str, str] | None = None,
    title: str | None = None,
    max_points: int = 1000,
    max_columns: int = 4,
    random_state: int | None = 0,
    dpi: int = 150,
):
    """Scatter source and target embeddings in 2-D, one panel per stage.

    Parameters
    ----------
    panels : mapping of str to (np.ndarray [shape=(n_source, d)], np.ndarray [shape=(n_target, d)])
        E.g. ``{"before": (Xs, Xt), "coral": (Xs, aligner.transform(Xt))}``.
    path : str or Path, optional
        Where to write the picture; without it the Figure is returned.
    names : (str, str)
        Legend names of the two domains.
    subtitles : mapping of str to str, optional
        A second title line per panel (e.g. accuracy and shift).
    title : str, optional
    max_points : int
        Points drawn per domain and panel, at most (a random subset beyond).
    max_columns : int
        Panels per row; more panels wrap onto further rows.

    Returns
    -------
    Path or matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(30, 5)), rng.normal(2, 1, size=(30, 5))
    >>> figure = plot_domains({"before": (Xs, Xt), "after": (Xs, Xt - 2)})
    >>> len(figure.axes)
    2
    """
    from matplotlib.figure import Figure

    if not panels:
        raise ParameterError("expected at least one panel of (X_source, X_target)")
    rng = np.random.default_rng(random_state)
    columns = min(len(panels), max_columns)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.2 * columns, 4.4 * rows), layout="constrained")
    for index, (name, (Xs, Xt)) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        source, target = _project(np.asarray(Xs, float), np.asarray(Xt, float))
        for points, colour, label in ((source, _SOURCE, names[0]), (target, _TARGET, names[1])):
            if len(points) > max_points:
                points = points[rng.choice(len(points), max_points, replace=False)]
            axes.scatter(points[:, 0], points[:, 1], s=9, alpha=0.55, color=colour,
                         label=f"{label} ({len(points)})", linewidths=0)
        heading = name if not subtitles or name not in subtitles else f"{name}\n{subtitles[name]}"
        axes.set_title(heading, fontsize=10)
        axes.set_xlabel("PC 1 of the source")
        axes.set_ylabel("PC 2 of the source")
        axes.tick_params(labelsize=8)
        if index == 0:
            axes.legend(fontsize=8, loc="best", frameon=False)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path, dpi)


def _project(Xs: np.ndarray, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets on the source's first two principal components (source-standardised)."""
    if Xs.ndim != 2 or Xt.ndim != 2 or Xs.shape[1] != Xt.shape[1] or len(Xs) < 2:
        raise ParameterError(
            f"expected a panel of two matrices with the same columns and >= 2 source rows, "
            f"got shapes {Xs.shape} and {Xt.shape}"
        )
    mean, scale = Xs.mean(axis=0), Xs.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Zs, Zt = (Xs - mean) / scale, (Xt - mean) / scale
    _, _, Vt = np.linalg.svd(Zs, full_matrices=False)
    components = Vt[:2].T
    if components.shape[1] < 2:
        components = np.pad(components, ((0, 0), (0, 2 - components.shape[1])))
    return Zs @ components, Zt @ components
