"""The detection picture: envelope, curves, threshold and one shaded span per event."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Polygon, Rectangle

from earmark.detection.events import Event
from earmark.detection.plots import plot_detections
from earmark.detection.stream import DetectionResult

PNG = b"\x89PNG\r\n\x1a\n"


def result(n_rows: int, events, classes=("dog", "cat", "owl")) -> DetectionResult:
    start = np.arange(n_rows) * 0.5
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.4, size=(n_rows, len(classes))).astype(np.float32)
    scores[n_rows // 2, 1] = 0.99  # one short peak on "cat"
    envelope_start = np.arange(1000) * n_rows * 0.5 / 1000
    low = -np.ones(1000, np.float32)
    return DetectionResult(
        path="dir/long.flac", classes=list(classes), scores=scores, start_s=start,
        end_s=start + 1.0, events=events, duration_s=n_rows * 0.5 + 0.5, sample_rate=22050,
        hop_s=0.5, thresholds=np.full(len(classes), 0.5),
        envelope=(envelope_start, low, -low),
    )


def spans(axes):
    return [p for p in axes.patches if isinstance(p, (Polygon, Rectangle))]


def test_events_are_shaded_on_both_panels_and_named(tmp_path):
    events = [Event("a", "cat", 10.0, 12.0, 0.9), Event("a", "dog", 30.0, 31.0, 0.7)]
    figure = plot_detections(result(200, events))

    wave, curves = figure.axes
    assert len(spans(wave)) == len(spans(curves)) == 2
    assert sorted(t.get_text() for t in wave.texts) == ["cat", "dog"]
    legend = [t.get_text() for t in curves.get_legend().get_texts()]
    assert legend[:2] == ["dog", "cat"] and "threshold" in legend
    thresholds = [line for line in curves.lines if line.get_label() == "threshold"]
    assert [line.get_ydata()[0] for line in thresholds] == [0.5]
    assert "long.flac: 2 event(s)" in wave.get_title()


def test_a_long_file_is_reduced_for_display_without_losing_a_peak(tmp_path):
    figure = plot_detections(result(21600, []), max_classes=2)  # three hours at 0.5 s

    curves = figure.axes[1]
    drawn = {line.get_label(): line for line in curves.lines if line.get_label() != "threshold"}
    assert list(drawn) == ["cat", "dog"], "the class with the highest peak comes first"
    assert len(drawn["cat"].get_xdata()) <= 4001
    assert max(drawn["cat"].get_ydata()) == np.float32(0.99)
    assert curves.get_xlabel() == "time (h)"
    assert "1 quieter class(es) not drawn" in figure.axes[0].get_title()
    written = plot_detections(result(21600, []), tmp_path / "long.png")
    assert written.read_bytes()[:8] == PNG
