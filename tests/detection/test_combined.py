"""The combined tables of a run: every file's events, Raven's times running on across files."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from earmark.backends import get_backend
from earmark.detection.combined import COMBINED_RAVEN_COLUMNS, event_files, write_combined
from earmark.detection.events import read_events
from earmark.detection.stream import detect_file


class Loud:
    """A frame scorer: "loud" where the placeholder backend's band energies are high."""

    classes_ = np.array(["loud\tnoise"])

    def segment_proba(self, X):
        return (X.mean(axis=1, keepdims=True) > -2).astype(float)


def recording(path, duration_s, tones, sr=16000):
    y = np.zeros(int(duration_s * sr), dtype=np.float32)
    for onset, offset in tones:
        y[int(onset * sr):int(offset * sr)] = np.sin(np.arange(int((offset - onset) * sr)) * 0.3)
    sf.write(path, y, sr)
    return str(path)


def test_a_file_without_events_keeps_its_place_in_ravens_time_line(tmp_path):
    paths = [
        recording(tmp_path / "a.wav", 4.0, [(1.0, 1.5)]),
        recording(tmp_path / "quiet.wav", 6.0, []),
        recording(tmp_path / "c.wav", 5.0, [(0.5, 1.0), (3.0, 4.0)]),
    ]
    results = [detect_file(Loud(), get_backend("placeholder"), path) for path in paths]
    assert [len(r.events) for r in results] == [1, 0, 2]

    written = write_combined(results, tmp_path / "out")

    rows = list(csv.DictReader(open(written["raven"]), delimiter="\t"))
    assert tuple(rows[0]) == COMBINED_RAVEN_COLUMNS
    begins = [float(row["Begin Time (s)"]) for row in rows]
    offsets = [float(row["File Offset (s)"]) for row in rows]
    assert begins == pytest.approx([1.0, 4.0 + 6.0 + 0.5, 4.0 + 6.0 + 3.0])
    assert offsets == pytest.approx([1.0, 0.5, 3.0])
    assert [row["Begin Path"] for row in rows] == [os.path.abspath(p) for p in np.take(paths, [0, 2, 2])]
    assert {row["Annotation"] for row in rows} == {"loud noise"}, "a tab in a label is a space"
    assert written["files"].read_text().splitlines() == [os.path.abspath(p) for p in paths]
    back = read_events(written["raven"])
    assert [(e.path, e.onset_s, e.offset_s) for e in back] == [
        (os.path.abspath(e.path), e.onset_s, e.offset_s) for r in results for e in r.events
    ]
    assert read_events(written["csv"]) == [e for r in results for e in r.events]


def test_event_files_skip_the_combined_tables(tmp_path):
    for name in ("all.events.csv", "all.events.json", "a.events.csv", "sub/all.events.csv",
                 "b.events.json", "a.selections.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    found = event_files([tmp_path, tmp_path / "all.events.csv"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.events.csv", "all.events.json", "b.events.json", "sub/all.events.csv",
        "all.events.csv",  # named on its own, a file is read as given
    ]
