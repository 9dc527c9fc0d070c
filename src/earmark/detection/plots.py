"""A picture of one file's detections that stays readable for an hour-long file.

Three panels on one time axis: the waveform's min/max envelope, one lane per class with
each event drawn as a box in the class's colour (what a person looks at first), and,
smaller, the filtered score curves with their thresholds. Drawn on a
:class:`matplotlib.figure.Figure` (no pyplot, no window), from what
:func:`~earmark.detection.stream.detect_file` kept: the envelope (gathered while
streaming, so a three-hour file is never loaded) and the score rows. Long score curves
are reduced for display by keeping each display column's highest value, so a short
peak is never lost; an event narrower than a thousandth of the file is drawn that wide
so that it stays visible; times read as a clock (``0:45:00``) on long files. The figure
grows with the number of lanes up to ``max_lanes``, so its size stays bounded.
"""

from __future__ import annotations

import numpy as np

from ..plots import save_figure

__all__ = ["plot_detections", "lane_colours"]

#: Points per score curve beyond which curves are reduced (max per column).
_MAX_POINTS = 4000
#: Tick spacings (seconds) the time axis chooses from: round numbers on a clock.
_TICK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                 7200, 10800, 21600, 43200)


def lane_colours(labels) -> dict[str, str]:
    """A distinct colour per label, in order, from a qualitative colormap (as ``#rrggbb``).

    Matplotlib's ``tab10`` for up to ten labels, ``tab20`` for up to twenty, then
    ``tab20`` again from its start (lanes also carry their names, so a repeated colour
    is never the only cue).

    Examples
    --------
    >>> lane_colours(["dog", "cat"])
    {'dog': '#1f77b4', 'cat': '#ff7f0e'}
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    labels = [str(label) for label in labels]
    palette = colormaps["tab10" if len(labels) <= 10 else "tab20"].colors
    return {label: to_hex(palette[i % len(palette)]) for i, label in enumerate(labels)}


def plot_detections(
    result,
    path=None,
    *,
    title: str | None = None,
    scores: bool = True,
    max_classes: int = 8,
    max_lanes: int = 30,
    dpi: int = 120,
):
    """Draw the waveform envelope, one lane of event boxes per class, and the score curves.

    Parameters
    ----------
    result : DetectionResult
    path : str or Path, optional
        Where to write the picture (format from the suffix); without it the
        :class:`~matplotlib.figure.Figure` is returned.
    title : str, optional
        Defaults to the file name and the number of events.
    scores : bool
        Draw the score curves and thresholds under the lanes.
    max_classes : int
        Score curves drawn: the classes with events first, then the highest-scoring ones.
    max_lanes : int
        Lanes drawn, in the same order; the title says how many classes were left out.

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
    ['waveform', 'events', 'score']
    """
    from matplotlib.figure import Figure

    smoothed = result.smoothed_scores()
    ordered = _classes_by_interest(result, smoothed)
    lanes = ordered[: max(max_lanes, 1)]
    colour = lane_colours(result.classes)
    heights = [1.0, max(1.2, 0.3 * len(lanes))] + ([1.6] if scores else [])
    figure = Figure(figsize=(12.0, 1.2 + 0.9 * sum(heights)), layout="constrained")
    panels = figure.subplots(
        len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False
    )[:, 0]
    wave, boxes = panels[0], panels[1]

    if result.envelope is not None and result.envelope[0].size:
        start_s, low, high = result.envelope
        wave.fill_between(start_s, low, high, step="post", color="#404040", lw=0)
    wave.set_ylabel("waveform")
    wave.set_yticks([])

    _draw_lanes(boxes, result, lanes, colour)
    if scores:
        _draw_scores(panels[2], result, smoothed, ordered[: max(max_classes, 1)], colour)

    bottom = panels[-1]
    bottom.set_xlim(0, max(result.duration_s, 1e-9))
    _clock_axis(bottom, result.duration_s)
    hidden = len(result.classes) - len(lanes)
    name = str(result.path).replace("\\", "/").rsplit("/", 1)[-1]
    default = (
        f"{name}: {len(result.events)} event(s) in {_clock(result.duration_s)}; "
        f"median filter {result.median_frames} row(s) of {result.hop_s:g} s"
        + (f"; {hidden} more class(es) not drawn" if hidden > 0 else "")
    )
    wave.set_title(title if title is not None else default, fontsize=10)
    return save_figure(figure, path, dpi)


def _draw_lanes(axes, result, lanes: list[str], colour: dict[str, str]) -> None:
    """One row per class (the first on top), each event a box; the count beside the name."""
    by_class: dict[str, list[tuple[float, float]]] = {label: [] for label in lanes}
    # A one-second event in an hour is narrower than a pixel: draw it a little wider.
    least = result.duration_s / 1000
    for event in result.events:
        if event.label in by_class:
            by_class[event.label].append(
                (event.onset_s, max(event.offset_s - event.onset_s, least))
            )
    for row, label in enumerate(lanes):
        if row % 2:
            axes.axhspan(row - 0.5, row + 0.5, color="#f2f2f2", lw=0, zorder=0)
        if by_class[label]:
            axes.broken_barh(by_class[label], (row - 0.4, 0.8), facecolors=colour[label],
                             edgecolors="none", label=label)
    axes.set_yticks(range(len(lanes)))
    axes.set_yticklabels([f"{label} ({len(by_class[label])})" for label in lanes],
                         fontsize=8 if len(lanes) > 12 else 9)
    for tick, label in zip(axes.get_yticklabels(), lanes):
        tick.set_color(colour[label])
    axes.set_ylim(len(lanes) - 0.5, -0.5)
    axes.set_ylabel("events")
    axes.grid(True, axis="x", alpha=0.3)


def _draw_scores(axes, result, smoothed, shown: list[str], colour: dict[str, str]) -> None:
    centres = (result.start_s + result.end_s) / 2
    shared_threshold = len(result.thresholds) > 0 and np.ptp(result.thresholds) == 0
    for label in shown:
        column = result.classes.index(label)
        x, y = _reduce(centres, smoothed[:, column])
        axes.plot(x, y, color=colour[label], lw=1.0, label=label)
        if not shared_threshold:
            axes.axhline(result.thresholds[column], color=colour[label], ls="--", lw=0.8)
    if shared_threshold:
        axes.axhline(result.thresholds[0], color="grey", ls="--", lw=1, label="threshold")
    elif shown:
        axes.plot([], [], color="grey", ls="--", lw=0.8, label="threshold (class colour)")
    axes.set_ylim(-0.02, 1.02 if smoothed.size == 0 or smoothed.max() <= 1 else None)
    axes.set_ylabel("score")
    axes.grid(True, alpha=0.3)
    if shown:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _classes_by_interest(result, smoothed: np.ndarray) -> list[str]:
    """Classes with events (most events first), then the others by their highest score."""
    counts = {label: 0 for label in result.classes}
    for event in result.events:
        if event.label in counts:
            counts[event.label] += 1
    with_events = sorted((c for c in result.classes if counts[c]), key=lambda c: -counts[c])
    peaks = smoothed.max(axis=0) if smoothed.size else np.zeros(len(result.classes))
    by_peak = [result.classes[i] for i in np.argsort(-peaks, kind="stable")]
    return with_events + [c for c in by_peak if not counts[c]]


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


def _clock_axis(axes, duration_s: float) -> None:
    """Ticks at a round number of seconds, about ten across; labels as a clock past 2 min."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    step = next((s for s in _TICK_STEPS_S if duration_s / s <= 12), _TICK_STEPS_S[-1])
    axes.xaxis.set_major_locator(MultipleLocator(step))
    if duration_s >= 120:
        hours = duration_s >= 3600
        axes.xaxis.set_major_formatter(
            FuncFormatter(lambda seconds, _: _clock(seconds, hours=hours, short=False))
        )
        axes.set_xlabel("time (h:mm:ss)" if hours else "time (m:ss)")
    else:
        axes.set_xlabel("time (s)")


def _clock(seconds: float, *, hours: bool = False, short: bool = True) -> str:
    """``3725 -> '1:02:05'``, ``65 -> '1:05'``; ``short``: under a minute in seconds."""
    if short and seconds < 60:
        return f"{seconds:.3g} s"
    whole = int(round(seconds))
    hour, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hour}:{minutes:02d}:{secs:02d}" if hour or hours else f"{minutes}:{secs:02d}"
