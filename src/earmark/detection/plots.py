"""A picture of one file's detections: waveform, score curves and events on one time axis.

Drawn on a :class:`matplotlib.figure.Figure` (no pyplot, no window), from what
:func:`~earmark.detection.stream.detect_file` kept: the waveform's min/max envelope
(gathered while streaming, so a three-hour file is never loaded) and the score rows.
Long score curves are reduced for display by keeping each display column's highest
value, so a short peak is never lost, and events narrower than 1/400 of the file are
drawn that wide so that they stay visible.
"""

from __future__ import annotations

import numpy as np

from ..plots import COLOURS, save_figure

__all__ = ["plot_detections"]

#: Points per score curve beyond which curves are reduced (max per column).
_MAX_POINTS = 4000
#: Beyond this many events, spans are drawn but not labelled.
_MAX_LABELS = 60


def plot_detections(
    result,
    path=None,
    *,
    title: str | None = None,
    max_classes: int = 8,
    dpi: int = 120,
):
    """Draw the waveform envelope, the filtered score curves with thresholds, and events.

    Parameters
    ----------
    result : DetectionResult
    path : str or Path, optional
        Where to write the picture (format from the suffix); without it the
        :class:`~matplotlib.figure.Figure` is returned.
    title : str, optional
        Defaults to the file name and the number of events.
    max_classes : int
        Curves drawn: the classes with events first, then the highest-scoring ones.

    Returns
    -------
    Path or matplotlib.figure.Figure

    Examples
    --------
    >>> from earmark.detection.stream import DetectionResult
    >>> from earmark.detection.events import Event
    >>> start = np.arange(10) * 0.5
    >>> result = DetectionResult(
    ...     path="a.wav", classes=["dog"], scores=np.linspace(0, 1, 10)[:, None],
    ...     start_s=start, end_s=start + 0.5, events=[Event("a.wav", "dog", 2.5, 5.0, 1.0)],
    ...     duration_s=5.0, sample_rate=16000, hop_s=0.5, thresholds=np.array([0.5]))
    >>> figure = plot_detections(result)
    >>> [axes.get_ylabel() for axes in figure.axes]
    ['waveform', 'score']
    """
    from matplotlib.figure import Figure

    smoothed = result.smoothed_scores()
    shown = _classes_to_show(result, smoothed, max_classes)
    colour = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(shown)}
    figure = Figure(figsize=(12.0, 5.5), layout="constrained")
    wave, curves = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    scale, unit = _time_unit(result.duration_s)

    if result.envelope is not None and result.envelope[0].size:
        start_s, low, high = result.envelope
        wave.fill_between(start_s / scale, low, high, step="post", color="#404040", lw=0)
    wave.set_ylabel("waveform")
    wave.set_yticks([])

    centres = (result.start_s + result.end_s) / 2
    shared_threshold = len(result.thresholds) > 0 and np.ptp(result.thresholds) == 0
    for label in shown:
        column = result.classes.index(label)
        x, y = _reduce(centres, smoothed[:, column])
        curves.plot(x / scale, y, color=colour[label], lw=1.2, label=label)
        if not shared_threshold:
            curves.axhline(result.thresholds[column], color=colour[label], ls="--", lw=0.8)
    if shared_threshold:
        curves.axhline(result.thresholds[0], color="grey", ls="--", lw=1, label="threshold")
    elif shown:
        curves.plot([], [], color="grey", ls="--", lw=0.8, label="threshold (class colour)")

    label_events = len(result.events) <= _MAX_LABELS
    # A one-second event in three hours would be thinner than a pixel: draw it wider.
    least = result.duration_s / 400
    for event in result.events:
        tint = colour.get(event.label, "#999999")
        offset_s = max(event.offset_s, event.onset_s + least)
        for axes in (wave, curves):
            axes.axvspan(event.onset_s / scale, offset_s / scale, color=tint, alpha=0.2, lw=0)
        if label_events:
            wave.annotate(event.label, (event.onset_s / scale, 1.0),
                          xycoords=("data", "axes fraction"), xytext=(2, -2),
                          textcoords="offset points", va="top", fontsize=8, color=tint,
                          clip_on=True)

    curves.set_ylim(-0.02, 1.02 if smoothed.size == 0 or smoothed.max() <= 1 else None)
    curves.set_xlim(0, result.duration_s / scale)
    curves.set_xlabel(f"time ({unit})")
    curves.set_ylabel("score")
    curves.grid(True, alpha=0.3)
    if shown:
        curves.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    hidden = len(result.classes) - len(shown)
    name = str(result.path).replace("\\", "/").rsplit("/", 1)[-1]
    default = (
        f"{name}: {len(result.events)} event(s) in {result.duration_s:.1f} s; "
        f"median filter {result.median_frames} row(s) of {result.hop_s:g} s"
        + (f"; {hidden} quieter class(es) not drawn" if hidden > 0 else "")
    )
    wave.set_title(title if title is not None else default, fontsize=10)
    return save_figure(figure, path, dpi)


def _classes_to_show(result, smoothed: np.ndarray, limit: int) -> list[str]:
    with_events = [c for c in result.classes if any(e.label == c for e in result.events)]
    peaks = smoothed.max(axis=0) if smoothed.size else np.zeros(len(result.classes))
    by_peak = [result.classes[i] for i in np.argsort(-peaks, kind="stable")]
    ordered = with_events + [c for c in by_peak if c not in with_events]
    return ordered[: max(limit, 1)]


def _reduce(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``_MAX_POINTS`` points, each the highest of its stretch of rows."""
    step = -(-x.size // _MAX_POINTS)
    if step <= 1:
        return x, y
    usable = (x.size // step) * step
    x_out = x[:usable].reshape(-1, step).mean(axis=1)
    y_out = y[:usable].reshape(-1, step).max(axis=1)
    if usable < x.size:
        x_out = np.append(x_out, x[usable:].mean())
        y_out = np.append(y_out, y[usable:].max())
    return x_out, y_out


def _time_unit(duration_s: float) -> tuple[float, str]:
    if duration_s >= 2 * 3600:
        return 3600.0, "h"
    if duration_s >= 2 * 60:
        return 60.0, "min"
    return 1.0, "s"
