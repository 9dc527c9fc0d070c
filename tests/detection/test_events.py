"""From frame scores to events, and the event files: exact onsets, filter and merge rules,
and every writer's format parsed back."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from earmark.detection.events import (
    RAVEN_COLUMNS,
    Event,
    format_for,
    frames_to_events,
    median_frames_for,
    read_events,
    resolve_thresholds,
    write_events,
)
from earmark.exceptions import ParameterError

SR = 22050
HOP, WINDOW = 11025, 22050  # the mfcc backend's grid: 1 s frames every 0.5 s


def grid(n: int, *, hop: int = HOP, window: int = WINDOW, total: int | None = None):
    """Frame spans as embedding.py computes them, from integers."""
    starts = np.arange(n, dtype=np.int64) * hop
    ends = starts + window if total is None else np.minimum(starts + window, total)
    return starts / SR, ends / SR


def column(*values):
    return np.array(values, dtype=float)[:, None]


# --------------------------------------------------------------------- the rules
def test_onset_is_the_first_active_frame_start_and_offset_the_last_frame_end():
    start, end = grid(8, total=7 * HOP + 5000)  # last frame clipped to the audio
    scores = column(0.1, 0.2, 0.6, 0.9, 0.3, 0.2, 0.7, 0.8)

    events = frames_to_events(scores, start, end, ["bird"], path="x.wav")

    assert [(e.onset_s, e.offset_s) for e in events] == [
        (2 * HOP / SR, (3 * HOP + WINDOW) / SR),
        (6 * HOP / SR, (7 * HOP + 5000) / SR),
    ]
    assert [e.score for e in events] == [0.9, 0.8]
    assert {e.path for e in events} == {"x.wav"} and {e.label for e in events} == {"bird"}


def test_a_score_equal_to_the_threshold_is_active():
    start, end = grid(3, hop=WINDOW)
    events = frames_to_events(column(0.4, 0.5, 0.49), start, end, ["a"], threshold=0.5)
    assert [(e.onset_s, e.offset_s) for e in events] == [(1.0, 2.0)]


def test_per_class_thresholds_by_sequence_and_by_mapping():
    start, end = grid(2, hop=WINDOW)
    scores = np.array([[0.7, 0.7], [0.2, 0.95]])
    by_sequence = frames_to_events(scores, start, end, ["a", "b"], threshold=[0.6, 0.9])
    by_mapping = frames_to_events(scores, start, end, ["a", "b"], threshold={"b": 0.9, "*": 0.6})

    assert [(e.label, e.onset_s) for e in by_sequence] == [("a", 0.0), ("b", 1.0)]
    assert by_mapping == by_sequence
    with pytest.raises(ParameterError, match="unknown classes.*'c'"):
        resolve_thresholds({"c": 0.1}, ["a", "b"])
    with pytest.raises(ParameterError, match="one threshold or 2"):
        resolve_thresholds([0.1, 0.2, 0.3], ["a", "b"])


def test_median_filter_removes_a_one_frame_blip_and_fills_a_one_frame_gap():
    start, end = grid(9, hop=WINDOW)
    blip = column(0, 0, 0, 1, 0, 0, 0, 0, 0)
    gap = column(0, 1, 1, 1, 0, 1, 1, 1, 0)

    assert frames_to_events(blip, start, end, ["a"], median_frames=3) == []
    assert len(frames_to_events(blip, start, end, ["a"], median_frames=1)) == 1
    filled = frames_to_events(gap, start, end, ["a"], median_frames=3)
    assert [(e.onset_s, e.offset_s) for e in filled] == [(1.0, 8.0)]


def test_median_filter_repeats_the_edge_frames():
    # "nearest": the window at frame 0 is [x0, x0, x0, x1, x2], so two active edge frames
    # survive a 5-frame filter; padded with zeros they would vanish.
    start, end = grid(5, hop=WINDOW)
    events = frames_to_events(column(1, 1, 0, 0, 0), start, end, ["a"], median_frames=5)
    assert [(e.onset_s, e.offset_s) for e in events] == [(0.0, 2.0)]


def _reference_events(scores, start, end, threshold, size, gap, shortest):
    """The rules the slow obvious way: median with repeated edges, then runs, merge, drop."""
    half = size // 2
    padded = np.concatenate([[scores[0]] * half, scores, [scores[-1]] * half])
    active = [np.median(padded[i : i + size]) >= threshold for i in range(len(scores))]
    runs, i = [], 0
    while i < len(active):
        if active[i]:
            j = i
            while j + 1 < len(active) and active[j + 1]:
                j += 1
            runs.append([start[i], end[j]])
            i = j + 1
        else:
            i += 1
    merged = []
    for onset, offset in runs:
        if merged and onset - merged[-1][1] <= gap + 1e-9:
            merged[-1][1] = max(merged[-1][1], offset)
        else:
            merged.append([onset, offset])
    return [(a, b) for a, b in merged if b - a + 1e-9 >= shortest]


@given(
    values=st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), min_size=1, max_size=40),
    size=st.sampled_from([1, 3, 5, 7]),
    hop=st.sampled_from([HOP, WINDOW, 2 * WINDOW]),
    gap_hops=st.integers(0, 3),
    shortest_hops=st.integers(0, 4),
)
def test_events_follow_the_rules_for_any_scores(values, size, hop, gap_hops, shortest_hops):
    start, end = grid(len(values), hop=hop)
    gap, shortest = gap_hops * HOP / SR, shortest_hops * HOP / SR

    events = frames_to_events(
        column(*values), start, end, ["a"], threshold=0.5, median_frames=size,
        merge_gap_s=gap, min_duration_s=shortest,
    )

    expected = _reference_events(np.array(values), start, end, 0.5, size, gap, shortest)
    assert [(e.onset_s, e.offset_s) for e in events] == expected
    assert all(e.score >= 0.5 for e in events)


def test_overlapping_or_touching_events_merge_and_gaps_merge_only_up_to_merge_gap_s():
    # 1 s frames every 0.5 s: runs split by one quiet frame still touch in time.
    start, end = grid(10)
    touching = column(1, 1, 0, 1, 0, 0, 0, 0, 0, 1)
    events = frames_to_events(touching, start, end, ["a"])
    assert [(e.onset_s, e.offset_s) for e in events] == [(0.0, 2.5), (4.5, 5.5)]

    apart = frames_to_events(touching, start, end, ["a"], merge_gap_s=2.0)
    assert [(e.onset_s, e.offset_s) for e in apart] == [(0.0, 5.5)]
    not_quite = frames_to_events(touching, start, end, ["a"], merge_gap_s=1.99)
    assert len(not_quite) == 2


def test_merged_event_keeps_the_highest_score_and_short_ones_are_dropped_after_merging():
    start, end = grid(7, hop=WINDOW)
    scores = column(0.6, 0, 0.9, 0, 0, 0, 0.8)
    events = frames_to_events(scores, start, end, ["a"], merge_gap_s=1.0, min_duration_s=2.0)
    assert [(e.onset_s, e.offset_s, e.score) for e in events] == [(0.0, 3.0, 0.9)]


def test_events_are_sorted_by_onset_then_class_order():
    start, end = grid(3, hop=WINDOW)
    scores = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float)
    events = frames_to_events(scores, start, end, ["z", "y", "x"])
    assert [(e.label, e.onset_s) for e in events] == [("y", 0.0), ("z", 1.0), ("x", 2.0)]


def test_bad_input_is_refused_with_what_was_expected():
    start, end = grid(3)
    with pytest.raises(ParameterError, match=r"shape \(n_frames, 2\)"):
        frames_to_events(np.zeros((3, 1)), start, end, ["a", "b"])
    with pytest.raises(ParameterError, match="odd median_frames"):
        frames_to_events(np.zeros((3, 1)), start, end, ["a"], median_frames=4)
    with pytest.raises(ParameterError, match="NaN"):
        frames_to_events(column(0, np.nan, 1), start, end, ["a"])


def test_median_seconds_become_an_odd_number_of_rows():
    assert [median_frames_for(s, 0.5) for s in (0, 0.4, 0.5, 1.0, 1.5, 2.0)] == [1, 1, 1, 3, 3, 5]
    with pytest.raises(ParameterError):
        median_frames_for(-1, 0.5)


# --------------------------------------------------------------------------- files
EVENTS = [
    Event("rec/a b.wav", "dog", 1.5, 2.25, 0.912345678),
    Event("rec/a b.wav", "song, thrush", 10.0 / 3, 3599.999999, 0.5),
]


def test_csv_has_one_header_and_six_decimals(tmp_path):
    path = write_events(EVENTS, tmp_path / "e.csv")

    rows = list(csv.reader(path.open()))
    assert rows[0] == ["path", "label", "onset_s", "offset_s", "score"]
    assert rows[1:] == [
        ["rec/a b.wav", "dog", "1.500000", "2.250000", "0.912346"],
        ["rec/a b.wav", "song, thrush", "3.333333", "3599.999999", "0.500000"],
    ]


def test_audacity_label_track_is_tab_separated_onset_offset_label(tmp_path):
    path = write_events(EVENTS, tmp_path / "labels.txt")

    assert path.read_bytes() == (
        b"1.500000\t2.250000\tdog\n3.333333\t3599.999999\tsong, thrush\n"
    )


def test_raven_selection_table_has_its_header_view_and_channel(tmp_path):
    path = write_events(EVENTS, tmp_path / "sel.txt", "raven", high_freq_hz=11025)

    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(RAVEN_COLUMNS)
    assert lines[0] == (
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
        "High Freq (Hz)\tAnnotation\tScore"
    )
    assert lines[1].split("\t") == [
        "1", "Spectrogram 1", "1", "1.500000", "2.250000", "0.0", "11025.0", "dog", "0.912346"
    ]
    assert lines[2].split("\t")[0] == "2"
    with pytest.raises(ParameterError, match="high_freq_hz"):
        write_events(EVENTS, tmp_path / "sel.txt", "raven")


@pytest.mark.parametrize("name, format", [
    ("e.csv", None), ("e.json", None), ("e.txt", None), ("e.txt", "raven"),
])
def test_every_format_reads_back(tmp_path, name, format):
    path = write_events(EVENTS, tmp_path / name, format, high_freq_hz=8000)

    back = read_events(path, audio_path="rec/a b.wav")

    assert [e.label for e in back] == [e.label for e in EVENTS]
    for read, written in zip(back, EVENTS):
        assert read.onset_s == pytest.approx(written.onset_s, abs=5e-7)
        assert read.offset_s == pytest.approx(written.offset_s, abs=5e-7)
        assert read.path == "rec/a b.wav"
        if format == "raven" or name.endswith((".csv", ".json")):
            assert read.score == pytest.approx(written.score, abs=5e-7)
        else:
            assert read.score is None  # a label track keeps no scores
    if name.endswith(".json"):
        assert json.loads(path.read_text())[0] == EVENTS[0].to_dict()
        assert back == EVENTS  # full precision


def test_no_events_still_writes_a_valid_file(tmp_path):
    assert read_events(write_events([], tmp_path / "none.csv")) == []
    assert (tmp_path / "none.csv").read_text() == "path,label,onset_s,offset_s,score\n"
    assert read_events(write_events([], tmp_path / "none.txt")) == []


def test_format_comes_from_the_suffix_unless_named(tmp_path):
    assert [format_for(f"x{s}") for s in (".csv", ".JSON", ".txt")] == ["csv", "json", "audacity"]
    assert format_for("x.tsv", "raven") == "raven"
    with pytest.raises(ParameterError, match="suffix '.tsv'"):
        write_events(EVENTS, tmp_path / "x.tsv")
    with pytest.raises(ParameterError, match="expected a format"):
        format_for("x.csv", "excel")


def test_writing_replaces_a_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = write_events(EVENTS, tmp_path / "e.csv")
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_events(EVENTS[:1], path)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv"], "no temporary file left"
    monkeypatch.undo()
    write_events(EVENTS[:1], path)
    assert len(read_events(path)) == 1
    assert oct(path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("onset, offset", [(10.2, 10.7), (20.0, 22.4), (30.3, 37.9)])
@pytest.mark.parametrize("holds", [1.0, 0.5])
def test_overlapping_windows_put_a_sound_where_they_agree(onset, offset, holds):
    """3 s windows at a 0.5 s hop, active where a window holds the sound (``holds`` = 1:
    all of it, or all of itself for a long one; 0.5: half of that). The run's whole span
    starts a second or more early. Where the windows agree is centred on the sound
    within one hop whatever the rule; its edges are within one hop for a short sound
    where windows are active only when they hold all of it, and for a long sound where
    they are active once it fills half of them (the rule measured best on the
    development soundscapes; were only full windows active, a long sound's edges would
    be half a window in).
    (How long a short sound is cannot be read from windows active when they hold half
    of it: every such run is one window long.)"""
    start = np.arange(0, 50, 0.5)
    end = start + 3.0
    overlap = np.clip(np.minimum(end, offset) - np.maximum(start, onset), 0, None)
    held = overlap >= holds * np.minimum(offset - onset, 3.0) - 1e-9
    scores = held.astype(float)[:, None]

    (span,) = frames_to_events(scores, start, end, ["a"])
    (agreed,) = frames_to_events(scores, start, end, ["a"], windows="agree")

    assert span.onset_s <= agreed.onset_s < agreed.offset_s <= span.offset_s
    middle = (agreed.onset_s + agreed.offset_s) / 2
    assert abs(middle - (onset + offset) / 2) <= 0.5
    if offset - onset > 3.0 and holds == 0.5:  # long, windows active once half full
        assert abs(agreed.onset_s - onset) <= 0.5 and abs(agreed.offset_s - offset) <= 0.5
    elif offset - onset < 3.0 and holds == 1.0:
        assert abs(agreed.onset_s - onset) <= 0.5 and abs(agreed.offset_s - offset) <= 0.5
    # Frames that do not overlap are left as they are.
    (plain,) = frames_to_events(scores, start, start + 0.5, ["a"], windows="agree")
    assert (plain.onset_s, plain.offset_s) == (span.onset_s, start[np.flatnonzero(held)[-1]] + 0.5)
    with pytest.raises(ParameterError, match="windows"):
        frames_to_events(scores, start, end, ["a"], windows="middle")
