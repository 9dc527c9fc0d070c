"""The class-to-region links of a graph tagger as an explanation.

Each label node of a :class:`~earmark.graph.GraphTagger` attends to the region nodes of
every patch of a clip; that attention says which time-frequency regions the tag was read
from. Here it is laid onto the clip's time axis and mel-spaced frequency axis:

- :func:`links_on_grid`: each class's attention mass per region of any
  :class:`~earmark.interpret.perturb.RegionGrid` (a region gets the share of each node it
  overlaps, in time and in mel), so ``earmark explain --method links`` gives an
  :class:`~earmark.interpret.Explanation` that the deletion/insertion check
  (:mod:`earmark.interpret.reliability`) scores like any other;
- :func:`link_mass_in_span`: the share of a class's link mass inside a time span (the
  check that a tag's links fall on its own source);
- :func:`plot_links` and :func:`links_section`: the links of every predicted tag drawn
  over the spectrogram, as a PNG and as a section of ``explain``'s page.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError

__all__ = ["link_mass_in_span", "links_on_grid", "links_section", "node_geometry", "plot_links",
           "predicted_tags"]


def node_geometry(tagger) -> tuple[float, np.ndarray, bool]:
    """Where a tagger's nodes sit inside one patch.

    Returns
    -------
    cell_s : float
        Seconds of one node along time (nodes start at the patch's start).
    band_edges_mel : np.ndarray [shape=(n_freq + 1,)]
        Node band edges on the tagger's mel scale (0 to its Nyquist frequency).
    htk : bool
        Whether that mel scale is HTK's (aiSFX) or Slaney's (librosa's default).
    """
    import librosa

    config = tagger._config()
    _, n_time, n_freq = tagger.node_shape_
    if tagger.encoder == "aisfx":
        # aiSFX's maps: three 2 x 2 poolings, so a cell is 8 frames by 8 of 96 bands.
        frames, htk = 8 * tagger.pool[0], True
    else:
        from .tagger import LOG_MEL_CELL

        frames, htk = LOG_MEL_CELL * tagger.pool[0], False
    top = librosa.hz_to_mel(config.sr / 2, htk=htk)
    return frames * config.hop_length / config.sr, np.linspace(0.0, top, n_freq + 1), htk


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a) - 1, len(b) - 1)``: share of each interval of ``a`` inside each of ``b``."""
    low = np.maximum(a[:-1, None], b[None, :-1])
    high = np.minimum(a[1:, None], b[None, 1:])
    width = np.maximum(a[1:] - a[:-1], 1e-12)[:, None]
    return np.clip(high - low, 0.0, None) / width


def links_on_grid(tagger, y, grid) -> tuple[np.ndarray, np.ndarray]:
    """Every class's link mass per region of a grid, and the clip's probabilities.

    Parameters
    ----------
    tagger : GraphTagger
        Fitted on audio files (with ``patch_config_``).
    y : np.ndarray [shape=(n,)]
        Mono waveform at the tagger's rate.
    grid : RegionGrid

    Returns
    -------
    mass : np.ndarray [shape=(n_classes, n_time, n_bands)]
        Each class's attention, averaged over the clip's patches, per region; sums to 1
        per class over the regions (mass of padding past the clip's end dropped).
    P : np.ndarray [shape=(n_classes,)]
        The clip's probabilities (as :meth:`~earmark.graph.GraphTagger.score_files`).
    """
    import librosa

    from ..interpret.features import log_mel_patches
    from .tagger import _probabilities

    config = tagger._config()
    X, start_s = log_mel_patches(np.asarray(y, dtype=np.float32), config)
    logits, attention = tagger.forward(X)
    cell_s, band_mel, htk = node_geometry(tagger)
    grid_mel = librosa.hz_to_mel(np.asarray(grid.band_edges_hz), htk=htk)
    by_band = _overlap(band_mel, grid_mel)  # (n_freq, n_bands)
    n_classes, n_time = attention.shape[1], attention.shape[2]
    mass = np.zeros((n_classes, *grid.shape))
    for patch, start in enumerate(start_s):
        node_edges = start + cell_s * np.arange(n_time + 1)
        by_time = _overlap(node_edges, np.asarray(grid.time_edges_s))  # (n_time, grid_time)
        mass += np.einsum("ctf,tu,fb->cub", attention[patch], by_time, by_band)
    mass /= np.maximum(mass.sum(axis=(1, 2), keepdims=True), 1e-12)
    P = _probabilities(logits.mean(axis=0, keepdims=True), tagger.multilabel_)[0]
    return mass, P


def link_mass_in_span(tagger, y, label, start_s: float, end_s: float) -> float:
    """Share of a class's link mass that falls between two times of the clip.

    Parameters
    ----------
    tagger : GraphTagger
    y : np.ndarray [shape=(n,)]
        At the tagger's rate.
    label : a class of the tagger
    start_s, end_s : float

    Returns
    -------
    float
        In [0, 1].
    """
    from ..interpret.perturb import RegionGrid

    config = tagger._config()
    duration = len(y) / config.sr
    if not 0 <= start_s < end_s:
        raise ParameterError(f"expected 0 <= start_s < end_s, got {start_s}, {end_s}")
    edges = np.unique(np.clip([0.0, start_s, end_s, duration], 0.0, duration))
    grid = RegionGrid(time_edges_s=edges, band_edges_hz=np.array([0.0, config.sr / 2]))
    mass, _ = links_on_grid(tagger, y, grid)
    index = _class_index(tagger, label)
    inside = (edges[:-1] >= start_s) & (edges[1:] <= end_s)
    return float(mass[index][inside].sum())


def predicted_tags(tagger, P: np.ndarray, *, max_tags: int = 4) -> list[int]:
    """Classes to show: those at 0.5 or more (multi-label) or the top one, best first."""
    order = np.argsort(-P, kind="stable")
    chosen = [int(i) for i in order if tagger.multilabel_ and P[i] >= 0.5]
    return (chosen or [int(order[0])])[:max_tags]


def plot_links(tagger, y, path=None, *, tags=None, n_time: int | None = None, dpi: int = 120):
    """The links of each predicted tag, over the clip's log-mel spectrogram.

    Parameters
    ----------
    tagger : GraphTagger
    y : np.ndarray [shape=(n,)]
        At the tagger's rate.
    path : str or Path, optional
        Where to write the PNG; without it the figure is returned.
    tags : list of int, optional
        Class indices; default :func:`predicted_tags`.
    n_time : int, optional
        Time cells drawn; default one per node length.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    import librosa
    from matplotlib.figure import Figure

    from ..interpret.perturb import RegionGrid, stft_settings
    from ..plots import save_figure

    config = tagger._config()
    sr = config.sr
    duration = len(y) / sr
    cell_s, band_mel, htk = node_geometry(tagger)
    n_time = n_time or max(1, int(round(duration / cell_s)))
    band_hz = librosa.mel_to_hz(band_mel, htk=htk)
    band_hz[0], band_hz[-1] = 0.0, sr / 2
    grid = RegionGrid(time_edges_s=np.linspace(0.0, duration, n_time + 1), band_edges_hz=band_hz)
    mass, P = links_on_grid(tagger, y, grid)
    tags = predicted_tags(tagger, P) if tags is None else list(tags)
    n_fft, hop = stft_settings(sr)
    mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=sr, n_fft=n_fft,
                                         hop_length=hop, n_mels=128, fmax=sr / 2, htk=htk)  # fmt: skip
    power_db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    times = np.clip(np.arange(power_db.shape[1] + 1) * hop / sr - hop / 2 / sr, 0.0, duration)
    mel_edges = librosa.mel_frequencies(n_mels=129, fmin=0.0, fmax=sr / 2, htk=htk)
    figure = Figure(figsize=(9.0, 2.6 * len(tags) + 0.6), layout="constrained")
    axes_list = np.atleast_1d(figure.subplots(len(tags), 1, sharex=True))
    for axes, index in zip(axes_list, tags):
        axes.pcolormesh(times, mel_edges, power_db, cmap="gray", shading="flat")
        share = mass[index]
        heat = axes.pcolormesh(grid.time_edges_s, grid.band_edges_hz, share.T, cmap="inferno",
                               vmin=0.0, vmax=float(share.max()) or 1.0, alpha=0.55, shading="flat")
        figure.colorbar(heat, ax=axes, label="link mass", shrink=0.9)
        axes.set_yscale("function", functions=(
            lambda hz: librosa.hz_to_mel(np.maximum(hz, 0.0), htk=htk),
            lambda m: librosa.mel_to_hz(np.maximum(m, 0.0), htk=htk)))
        axes.set_ylim(0.0, sr / 2)
        axes.set_ylabel("frequency (Hz)")
        axes.set_title(f"{_plain(tagger.classes_[index])!s} (p = {P[index]:.2f}): regions its label node attends to")
    axes_list[-1].set_xlabel("time (s)")
    axes_list[-1].set_xlim(0.0, duration)
    return save_figure(figure, path, dpi)


def links_section(tagger, y, *, top_k: int = 5) -> str:
    """An HTML section for ``explain``'s page: the links PNG and each tag's top regions."""
    from ..interpret.perturb import RegionGrid

    config = tagger._config()
    duration = len(y) / config.sr
    cell_s, _, _ = node_geometry(tagger)
    grid = RegionGrid.for_clip(duration, config.sr / 2, n_time=max(1, int(round(duration / cell_s))),
                               n_bands=tagger.node_shape_[2])  # fmt: skip
    mass, P = links_on_grid(tagger, y, grid)
    tags = predicted_tags(tagger, P)
    rows = []
    for index in tags:
        order = np.argsort(-mass[index], axis=None)[:top_k]
        cells = []
        for flat in order:
            t, b = np.unravel_index(flat, grid.shape)
            cells.append(f"{grid.time_edges_s[t]:.2f}&ndash;{grid.time_edges_s[t + 1]:.2f} s, "
                         f"{grid.band_edges_hz[b]:.0f}&ndash;{grid.band_edges_hz[b + 1]:.0f} Hz "
                         f"({mass[index].flat[flat]:.0%})")  # fmt: skip
        rows.append(f"<tr><td>{escape(_plain(tagger.classes_[index]))}</td><td class=\"num\">"
                    f"{P[index]:.3f}</td><td>{'<br>'.join(cells)}</td></tr>")  # fmt: skip
    return "\n".join([
        "<h2>Class-to-region links (graph tagger)</h2>",
        "<p>Each tag has a label node that attends to the regions of the clip; the heat "
        "map is its attention, so it shows which regions the tag was read from, without "
        "perturbing anything.</p>",
        f'<figure><img alt="class-to-region links" src="{png_data_uri(plot_links(tagger, y))}">'
        "<figcaption>One row per predicted tag: its label node's attention over "
        "time-frequency regions, over the spectrogram.</figcaption></figure>",
        "<table><tr><th>tag</th><th>probability</th><th>regions it attends to most "
        "(share of its links)</th></tr>" + "".join(rows) + "</table>",
    ])


def png_data_uri(figure, *, dpi: int = 110) -> str:
    """A figure as an inline ``data:image/png`` URI (for a self-contained page)."""
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def escape(text) -> str:
    import html

    return html.escape(str(text))


def _class_index(tagger, label) -> int:
    classes = list(tagger.classes_.tolist())
    if label in classes:
        return classes.index(label)
    raise ParameterError(f"the tagger has no class {label!r}; its classes are {classes}")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
