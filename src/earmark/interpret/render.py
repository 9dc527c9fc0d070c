"""Pictures, sound and a page for an explanation.

- :func:`plot_explanation`: the clip's log-mel spectrogram, and the same spectrogram
  under a heat map of the region importances (red for the class, blue against it), with
  the most important regions outlined;
- :func:`plot_curves`: deletion and insertion curves against random order;
- :func:`explanation_page`: one self-contained HTML page with both pictures, the
  top-evidence table and players for the clip and for its evidence (only the most
  important regions kept); :func:`write_explanation` writes it with the PNGs.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, never through pyplot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import save_figure
from ._html import escape, page, png_data_uri, wav_data_uri

__all__ = ["explanation_page", "plot_curves", "plot_explanation", "write_explanation"]

_N_MELS = 128
_OUTLINE = "#000000"


def _mel_scale(axes, max_hz: float) -> None:
    """Frequency axis in hertz, spaced as the mel scale (as the bands are)."""
    import librosa

    axes.set_yscale(
        "function",
        functions=(
            lambda hz: librosa.hz_to_mel(np.maximum(hz, 0.0)),
            lambda mel: librosa.mel_to_hz(np.maximum(mel, 0.0)),
        ),
    )
    axes.set_ylim(0.0, max_hz)
    ticks = [t for t in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if t <= max_hz]
    axes.set_yticks(ticks, labels=[f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks])
    axes.set_ylabel("frequency (Hz)")


def _log_mel(explanation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times_s, mel_hz, power_db)`` of the explained clip, up to the grid's top band."""
    import librosa

    from .perturb import stft_settings

    n_fft, hop = stft_settings(explanation.sr)
    max_hz = float(explanation.band_edges_hz[-1])
    mel = librosa.feature.melspectrogram(
        y=explanation.y, sr=explanation.sr, n_fft=n_fft, hop_length=hop,
        n_mels=_N_MELS, fmin=0.0, fmax=max_hz,
    )
    power_db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    # Edges of the pcolormesh cells: frame and mel-band boundaries.
    times = np.arange(power_db.shape[1] + 1) * hop / explanation.sr - hop / 2 / explanation.sr
    times = np.clip(times, 0.0, explanation.y.size / explanation.sr)
    mel_edges = librosa.mel_frequencies(n_mels=_N_MELS + 1, fmin=0.0, fmax=max_hz)
    return times, mel_edges, power_db


def plot_explanation(explanation, path=None, *, top_k: int = 3, dpi: int = 120):
    """Spectrogram, and heat map of the importances over it.

    Parameters
    ----------
    explanation : Explanation
    path : str or Path, optional
        Where to write the picture; without it the figure is returned.
    top_k : int
        Regions outlined on the heat map, most important first.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    times, mel_edges, power_db = _log_mel(explanation)
    max_hz = float(explanation.band_edges_hz[-1])
    figure = Figure(figsize=(9.0, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    image = top.pcolormesh(times, mel_edges, power_db, cmap="magma", shading="flat")
    figure.colorbar(image, ax=top, label="dB (re max)", shrink=0.9)
    top.set_title("log-mel spectrogram")
    bottom.pcolormesh(times, mel_edges, power_db, cmap="gray", shading="flat")
    limit = float(np.max(np.abs(explanation.importance))) or 1.0
    heat = bottom.pcolormesh(
        explanation.time_edges_s, explanation.band_edges_hz, explanation.importance.T,
        cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6, shading="flat",
    )
    figure.colorbar(heat, ax=bottom, label="importance (for the class +)", shrink=0.9)
    for row in explanation.top_regions(top_k):
        if row["importance"] <= 0:
            continue
        bottom.add_patch(Rectangle(
            (row["start_s"], row["low_hz"]), row["end_s"] - row["start_s"],
            row["high_hz"] - row["low_hz"], fill=False, edgecolor=_OUTLINE, linewidth=1.8,
        ))
        bottom.annotate(
            str(row["rank"]), (row["start_s"], row["high_hz"]), xytext=(3, -11),
            textcoords="offset points", fontsize=9, fontweight="bold", color=_OUTLINE,
        )
    bottom.set_title(
        f"{explanation.method} importance for {explanation.label!s} "
        f"(score {explanation.base_score:.2f})"
    )
    bottom.set_xlabel("time (s)")
    for axes in (top, bottom):
        _mel_scale(axes, max_hz)
        axes.set_xlim(0.0, explanation.y.size / explanation.sr)
    return save_figure(figure, path, dpi)


def plot_curves(reliability, path=None, *, dpi: int = 120):
    """Deletion and insertion curves of an explanation against random order.

    Parameters
    ----------
    reliability : Reliability
    path : str or Path, optional

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.4), layout="constrained")
    for axes, curve in zip(figure.subplots(1, 2, sharey=True),
                           (reliability.deletion, reliability.insertion)):
        x = curve.fraction
        axes.fill_between(x, curve.random - curve.random_std, curve.random + curve.random_std,
                          color="#999999", alpha=0.3, linewidth=0)
        axes.plot(x, curve.random, color="#555555", linestyle="--",
                  label=f"random order (AUC {curve.random_auc:.3f})")
        axes.plot(x, curve.explained, color="#D55E00", marker="o", markersize=3,
                  label=f"explanation's order (AUC {curve.auc:.3f})")
        axes.set_xlabel(f"fraction of regions {'removed' if curve.kind == 'deletion' else 'kept'}")
        axes.set_title(f"{curve.kind}: {'lower' if curve.kind == 'deletion' else 'higher'} "
                       "is better")
        axes.set_xlim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    figure.axes[0].set_ylabel("class score")
    return save_figure(figure, path, dpi)


def _playable(y: np.ndarray, sr: int, max_hz: float) -> tuple[np.ndarray, int]:
    """Audio for the page at no more than twice its top frequency: a 16 kHz file
    explained at 48 kHz is played back at 16 kHz, a third of the bytes."""
    import soxr

    rate = int(min(sr, max(8000, round(2 * max_hz))))
    if rate == sr:
        return y, sr
    return soxr.resample(y, sr, rate, quality="HQ").astype(np.float32), rate


def _normalised(y: np.ndarray) -> np.ndarray:
    """Never louder than the original would clip; evidence keeps the clip's scale."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return y / peak if peak > 1.0 else y


def explanation_page(
    explanation,
    reliability=None,
    *,
    evidence_fraction: float = 0.2,
    top_k: int = 8,
    title: str | None = None,
    sections: list[str] | None = None,
) -> str:
    """One self-contained HTML page: pictures, evidence table and audio players.

    Parameters
    ----------
    explanation : Explanation
    reliability : Reliability, optional
        Adds the deletion/insertion curves and the reliability figures.
    evidence_fraction : float
        Share of the regions, most important first, kept in the evidence audio.
    top_k : int
        Rows of the evidence table.
    title : str, optional
    sections : list of str, optional
        More HTML sections (e.g. a graph tagger's class-to-region links), placed
        after the reliability check.

    Returns
    -------
    str
        A complete HTML document; pictures and sounds are inlined as data URIs.
    """
    name = Path(explanation.path).name if explanation.path else "clip"
    title = title or f"Why {explanation.label!s}? {name}"
    max_hz = float(explanation.band_edges_hz[-1])
    original, rate = _playable(explanation.y, explanation.sr, max_hz)
    evidence, _ = _playable(explanation.evidence(evidence_fraction), explanation.sr, max_hz)
    kept = int(explanation.top_mask(evidence_fraction).sum())
    n_regions = explanation.importance.size
    parts = [
        f"<p>Model score for <strong>{escape(explanation.label)}</strong>: "
        f"{explanation.base_score:.3f} for the whole clip, {explanation.empty_score:.3f} "
        f"with every region removed (lowered to the {escape(explanation.baseline)} "
        f"baseline). Method: {escape(explanation.method)}, "
        f"{explanation.importance.shape[0]} time segments &times; "
        f"{explanation.importance.shape[1]} mel bands; "
        f"{explanation.params.get('runtime_s', float('nan')):.1f} s.</p>",
        "<h2>Listen</h2>",
        '<table class="players"><tr><th>sound</th><th>player</th></tr>',
        f'<tr><td>original</td><td><audio id="original" controls preload="auto" '
        f'src="{wav_data_uri(_normalised(original), rate)}"></audio></td></tr>',
        f'<tr><td>evidence: the {kept} most important of {n_regions} regions only'
        + (f" (the model gives it {reliability.evidence_score:.3f})"
           if reliability is not None else "")
        + f'</td><td><audio id="evidence" controls preload="auto" '
        f'src="{wav_data_uri(_normalised(evidence), rate)}"></audio></td></tr></table>',
        "<h2>Where the evidence is</h2>",
        f'<figure><img alt="log-mel spectrogram and importance heat map" '
        f'src="{png_data_uri(plot_explanation(explanation))}">'
        "<figcaption>Top: the clip. Bottom: importance of each region (red: evidence "
        "for the class; blue: against it); the most important regions are outlined and "
        "numbered as in the table.</figcaption></figure>",
        "<h2>Top evidence</h2>",
        _evidence_table(explanation.top_regions(top_k)),
    ]
    if reliability is not None:
        parts += [
            "<h2>Can this explanation be trusted?</h2>",
            f"<p><strong>{escape(reliability.verdict)}</strong> "
            f"(score {reliability.score:.2f} of 1). {escape(reliability.summary())}.</p>",
            f'<figure><img alt="deletion and insertion curves" '
            f'src="{png_data_uri(plot_curves(reliability))}">'
            "<figcaption>A faithful explanation makes the score fall faster than random "
            "order when its regions are removed first, and rise faster when they are put "
            "back first. Grey band: one standard deviation over random orders."
            "</figcaption></figure>",
            _reliability_table(reliability),
        ]
    parts += list(sections or [])
    parts.append(
        '<p class="note">Regions are removed in the short-time Fourier transform and the '
        "result is embedded again by the model's own backend; perturbation explanations "
        "can mislead, which is why the curves and stability above are measured on the "
        "model itself.</p>"
    )
    return page(title, "\n".join(parts))


def _evidence_table(rows: list[dict]) -> str:
    lines = [
        "<table><tr><th>rank</th><th>time (s)</th><th>band (Hz)</th>"
        "<th>importance</th></tr>"
    ]
    for row in rows:
        lines.append(
            f"<tr><td class=\"num\">{row['rank']}</td>"
            f"<td class=\"num\">{row['start_s']:.2f}&ndash;{row['end_s']:.2f}</td>"
            f"<td class=\"num\">{row['low_hz']:.0f}&ndash;{row['high_hz']:.0f}</td>"
            f"<td class=\"num\">{row['importance']:+.4f}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _reliability_table(reliability) -> str:
    def cell(value) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"

    rows = [
        ("deletion AUC (explanation / random)",
         f"{cell(reliability.deletion.auc)} / {cell(reliability.deletion.random_auc)}"),
        ("insertion AUC (explanation / random)",
         f"{cell(reliability.insertion.auc)} / {cell(reliability.insertion.random_auc)}"),
        ("faithfulness", cell(reliability.faithfulness)),
        ("stability under noise (Spearman)", cell(reliability.noise_stability)),
        ("stability across seeds (Spearman)", cell(reliability.seed_stability)),
        ("score of the evidence alone", cell(reliability.evidence_score)),
    ]
    body = "".join(
        f"<tr><td>{escape(name)}</td><td class=\"num\">{value}</td></tr>" for name, value in rows
    )
    return f"<table><tr><th>measure</th><th>value</th></tr>{body}</table>"


def write_explanation(explanation, directory, *, reliability=None, stem: str | None = None,
                      evidence_fraction: float = 0.2, sections: list[str] | None = None,
                      figures: dict | None = None) -> dict[str, Path]:
    """Write the heat map PNG, the curves PNG (with ``reliability``) and the HTML page.

    Parameters
    ----------
    explanation : Explanation
    directory : str or Path
        Created if missing.
    reliability : Reliability, optional
    stem : str, optional
        File name stem; by default the explained file's, or ``"clip"``.
    sections : list of str, optional
        More HTML sections for the page (see :func:`explanation_page`).
    figures : dict of str to callable, optional
        More PNGs: ``{name: draw}``, each ``draw(path)`` writing ``{stem}.{name}.png``.

    Returns
    -------
    dict
        ``{"png": Path, "html": Path}``, plus ``"curves_png"`` with ``reliability``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or (Path(explanation.path).stem if explanation.path else "clip")
    written = {"png": plot_explanation(explanation, directory / f"{stem}.explanation.png")}
    if reliability is not None:
        written["curves_png"] = plot_curves(reliability, directory / f"{stem}.curves.png")
    for name, draw in (figures or {}).items():
        written[f"{name}_png"] = draw(directory / f"{stem}.{name}.png")
    html_path = directory / f"{stem}.explanation.html"
    html_path.write_text(
        explanation_page(explanation, reliability, evidence_fraction=evidence_fraction,
                         sections=sections),
        encoding="utf-8",
    )
    written["html"] = html_path
    return written
