"""The detection picture: envelope, one lane of event boxes per class, score curves."""

from __future__ import annotations

import io
import time

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex

from earmark.detection.events import Event
from earmark.detection.plots import lane_colours, plot_detections
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


def hour_of_events(classes, counts, seed=0):
    """Events of each class at random times in one hour, 0.5 to 5 s long."""
    rng = np.random.default_rng(seed)
    events = []
    for label, count in zip(classes, counts):
        for onset in np.sort(rng.uniform(0, 3590, count)):
            events.append(Event("long.flac", label, float(onset), float(onset + rng.uniform(0.5, 5))))
    return sorted(events, key=lambda e: e.onset_s)


def boxes_by_lane(axes) -> dict[str, PolyCollection]:
    return {c.get_label(): c for c in axes.collections if isinstance(c, PolyCollection)}


def lane_names(axes) -> list[str]:
    return [tick.get_text().rsplit(" (", 1)[0] for tick in axes.get_yticklabels()]


def test_an_hour_draws_one_lane_per_class_and_one_box_per_event():
    classes = ["dog", "cat", "owl", "rain", "car"]
    events = hour_of_events(classes, [120, 300, 7, 1, 0])
    figure = plot_detections(result(7199, events, classes))  # one hour at 0.5 s

    wave, lanes, curves = figure.axes
    assert lanes.get_ylabel() == "events"
    # Busiest class on top; a class without events still has its (empty) lane.
    assert lane_names(lanes) == ["cat", "dog", "owl", "rain", "car"]
    assert [t.get_text() for t in lanes.get_yticklabels()][:2] == ["cat (300)", "dog (120)"]
    drawn = boxes_by_lane(lanes)
    assert sorted(drawn) == ["cat", "dog", "owl", "rain"]
    for label, count in [("dog", 120), ("cat", 300), ("owl", 7), ("rain", 1)]:
        assert len(drawn[label].get_paths()) == count, label
    # Each lane's boxes sit in its own row, in its own colour, no two lanes alike.
    for row, label in enumerate(lane_names(lanes)[:4]):
        ys = np.concatenate([path.vertices[:, 1] for path in drawn[label].get_paths()])
        assert row - 0.5 < ys.min() and ys.max() < row + 0.5
    colours = {label: to_hex(c.get_facecolor()[0]) for label, c in drawn.items()}
    assert len(set(colours.values())) == 4
    assert colours == {k: v for k, v in lane_colours(classes).items() if k in colours}
    # The one-second "rain" event is drawn at least a thousandth of the hour wide.
    (rain,) = drawn["rain"].get_paths()
    assert np.ptp(rain.vertices[:, 0]) >= 3.5
    # The time axis reads as a clock over the whole hour.
    assert curves.get_xlabel() == "time (h:mm:ss)"
    assert lanes.get_xlim() == curves.get_xlim() == (0.0, 3600.0)
    figure.canvas.draw()
    ticks = [t.get_text() for t in curves.get_xticklabels() if 0 <= t.get_position()[0] <= 3600]
    assert ticks[0] == "0:00:00" and "1:00:00" in ticks and 5 <= len(ticks) <= 13


def test_the_picture_stays_a_bounded_size_however_many_classes_and_events(tmp_path):
    from PIL import Image

    classes = [f"class {i}" for i in range(80)]
    events = hour_of_events(classes, [40] * 80)
    started = time.perf_counter()
    written = plot_detections(result(7199, events, classes), tmp_path / "many.png")
    took = time.perf_counter() - started

    assert written.read_bytes()[:8] == PNG
    width, height = Image.open(io.BytesIO(written.read_bytes())).size
    assert width <= 1500 and height <= 2400, (width, height)
    assert took < 30
    figure = plot_detections(result(7199, events, classes))
    assert len(lane_names(figure.axes[1])) == 30
    assert "50 more class(es) not drawn" in figure.axes[0].get_title()


def test_score_curves_are_optional_and_a_long_file_keeps_its_peaks(tmp_path):
    lanes_only = plot_detections(result(200, [Event("a", "cat", 10.0, 12.0, 0.9)]), scores=False)
    assert [axes.get_ylabel() for axes in lanes_only.axes] == ["waveform", "events"]

    figure = plot_detections(result(21600, []), max_classes=2)  # three hours at 0.5 s
    curves = figure.axes[2]
    drawn = {line.get_label(): line for line in curves.lines if line.get_label() != "threshold"}
    assert list(drawn) == ["cat", "dog"], "the class with the highest peak comes first"
    assert len(drawn["cat"].get_xdata()) <= 4001
    assert max(drawn["cat"].get_ydata()) == np.float32(0.99)
    thresholds = [line for line in curves.lines if line.get_label() == "threshold"]
    assert [line.get_ydata()[0] for line in thresholds] == [0.5]
    assert "long.flac: 0 event(s) in 3:00:00" in figure.axes[0].get_title()


def test_a_short_file_keeps_seconds():
    figure = plot_detections(result(40, [Event("a", "dog", 3.0, 4.0, 0.8)]))
    assert figure.axes[-1].get_xlabel() == "time (s)"
    assert len(boxes_by_lane(figure.axes[1])["dog"].get_paths()) == 1
