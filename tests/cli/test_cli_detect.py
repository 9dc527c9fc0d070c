"""``earmark detect`` end to end: real clips in soundscapes, every output format, bad files."""

from __future__ import annotations

import csv
import os
import json
from pathlib import Path

import pytest

from _cli_data import PNG_SIGNATURE
from _soundscapes import Placement, clips, trained_model, write_soundscape
from earmark.detection.events import RAVEN_COLUMNS, read_events


@pytest.fixture(scope="module")
def model_path(speech_commands_dir, philharmonia_dir, tmp_path_factory):
    """A saved mfcc clip model: speech, music or background."""
    path = tmp_path_factory.mktemp("model") / "scape.earmark"
    trained_model(speech_commands_dir, philharmonia_dir).save(path)
    return path


@pytest.fixture(scope="module")
def recordings(speech_commands_dir, philharmonia_dir, tmp_path_factory):
    """Two soundscapes of the same name in two folders (a word; a word and a note)."""
    _, test = clips(speech_commands_dir, philharmonia_dir)
    root = tmp_path_factory.mktemp("recordings")
    truth = {}
    for day, picks in (("day1", [(4.0, test[3])]), ("day2", [(3.0, test[5]), (11.0, test[28])])):
        (root / day).mkdir()
        truth[day] = write_soundscape(
            root / day / "site.wav", sr=22050, duration_s=16.0,
            placements=[Placement(label, t, clip) for t, (label, clip) in picks],
        )
    return root, truth


def test_detect_writes_every_format_per_file_and_reports_bad_files_by_name(
    cli, model_path, recordings, tmp_path, write_bad_files
):
    root, truth = recordings
    bad = write_bad_files(tmp_path / "bad", root / "day1" / "site.wav")
    out = tmp_path / "out"

    run = cli(
        "detect", model_path, root, *bad.values(), "-o", out,
        "-f", "csv", "-f", "json", "-f", "audacity", "-f", "raven",
        "--threshold", "background=1.1", "--median-s", "1", "--json",
    )

    assert run.code == 0, run.stderr
    assert run.stderr == "", "--json keeps progress and messages off"
    rows = {row["path"]: row for row in run.json()}
    assert len(rows) == 5
    for kind, path in bad.items():
        assert path.name in rows[str(path)]["error"], kind
        assert rows[str(path)]["outputs"] == {}
    for day, placements in truth.items():
        row = rows[str(root / day / "site.wav")]
        assert row["error"] is None
        assert [e["label"] for e in row["events"]] == [p.label for p in placements]
        for event, placement in zip(row["events"], placements):
            # The word sounds somewhere in its 1 s clip (placed at onset_s, leading silence
            # included): the event starts within one hop of the clip, or inside it.
            assert placement.onset_s - 0.5 <= event["onset_s"] <= placement.onset_s + 1.0
        outputs = row["outputs"]
        assert outputs == {
            "csv": str(out / root.name / day / "site.events.csv"),
            "json": str(out / root.name / day / "site.events.json"),
            "audacity": str(out / root.name / day / "site.labels.txt"),
            "raven": str(out / root.name / day / "site.selections.txt"),
            "plot": str(out / root.name / day / "site.detections.png"),
            "html": str(out / root.name / day / "site.detections.html"),
        }
        from_csv = read_events(outputs["csv"])
        assert [(e.label, e.onset_s, e.offset_s) for e in from_csv] == [
            (e["label"], round(e["onset_s"], 6), round(e["offset_s"], 6)) for e in row["events"]
        ]
        assert json.loads(open(outputs["json"]).read()) == row["events"]
        labels = [line.split("\t") for line in open(outputs["audacity"]).read().splitlines()]
        assert [label for _, _, label in labels] == [p.label for p in placements]
        raven = list(csv.reader(open(outputs["raven"]), delimiter="\t"))
        assert tuple(raven[0]) == RAVEN_COLUMNS
        assert [r[1:3] + r[6:8] for r in raven[1:]] == [
            ["Spectrogram 1", "1", "11025.0", p.label] for p in placements
        ]
        with open(outputs["plot"], "rb") as picture:
            assert picture.read(8) == PNG_SIGNATURE
        page = open(outputs["html"], encoding="utf-8").read()
        # The page reaches the recording by its path relative to the page.
        relative = os.path.relpath(root / day / "site.wav", out / root.name / day)
        assert f'<audio id="player" controls preload="metadata" src="{relative}">' in page
        assert all(f'"{p.label}"' in page for p in placements)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))


def test_detect_tells_people_what_it_found_and_what_failed(
    cli, model_path, recordings, tmp_path, write_bad_files
):
    root, _ = recordings
    bad = write_bad_files(tmp_path / "bad", root / "day1" / "site.wav")

    run = cli("detect", model_path, root / "day1" / "site.wav", bad["text"], "-o", tmp_path,
              "--no-plot", "-t", "background=1.1")

    assert run.code == 0 and run.stdout == ""
    assert "text-as-audio.wav" in run.stderr and "1 file(s) skipped" in run.stderr
    assert "event(s) in 1 file(s)" in run.stderr
    assert sorted(p.name for p in tmp_path.rglob("*.events.csv")) == [
        "all.events.csv", "site.events.csv"
    ]
    assert [e.path for e in read_events(tmp_path / "all.events.csv")] == [
        e.path for e in read_events(next(tmp_path.rglob("site.events.csv")))
    ], "the file that failed is not in the combined table"
    assert not list(tmp_path.rglob("*.png"))


def test_detect_with_windows_off_the_backend_grid_fails_with_one_clean_line(
    cli, model_path, recordings, tmp_path
):
    root, _ = recordings
    run = cli("detect", model_path, root, "--window", "1.2", "-o", tmp_path / "out")

    assert run.code == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "window must be the mfcc backend's window (1 s)" in run.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())

    unknown = cli("detect", model_path, root, "-t", "owl=0.3", "-o", tmp_path / "out")
    assert unknown.code == 2 and unknown.stderr.count("\n") == 1
    assert "unknown classes ['owl']" in unknown.stderr and "'speech'" in unknown.stderr


def test_detect_fails_when_no_file_can_be_read(
    cli, model_path, recordings, tmp_path, write_bad_files
):
    root, _ = recordings
    bad = write_bad_files(tmp_path / "bad", root / "day1" / "site.wav")

    run = cli("detect", model_path, tmp_path / "bad", "-q", "-o", tmp_path / "out")

    assert run.code == 1
    assert all(path.name in run.stderr for path in bad.values())


def test_detect_with_longer_windows_scores_fewer_rows(cli, model_path, recordings, tmp_path):
    root, _ = recordings
    one = cli("detect", model_path, root / "day1", "--json", "--no-plot", "-o", tmp_path / "a")
    two = cli("detect", model_path, root / "day1", "--json", "--no-plot", "-o", tmp_path / "b",
              "--window", "2", "--hop", "1")

    assert one.code == 0 and two.code == 0, one.stderr + two.stderr
    (first,), (second,) = one.json(), two.json()
    assert (first["hop_s"], second["hop_s"]) == (0.5, 1.0)
    assert (first["n_rows"], second["n_rows"]) == (31, 15)


def test_detect_cells_shorten_events_of_overlapping_windows(cli, model_path, recordings, tmp_path):
    """mfcc windows are 1 s at hop 0.5 s: runs of windows, on the frames' edges, give
    events at least a window long; cells (min over the windows covering each 0.5 s)
    never make them longer."""
    root, _ = recordings
    runs = {}
    for name, extra in (("windows", ()), ("cells", ("--cells", "min"))):
        run = cli("detect", model_path, root / "day1", "--json", "--no-plot", "-t", "0.3",
                  "--boundaries", "frames", "-o", tmp_path / name, *extra)
        assert run.code == 0, run.stderr
        (report,) = run.json()
        runs[name] = sum(e["offset_s"] - e["onset_s"] for e in report["events"])
    assert runs["windows"] > 0
    assert runs["cells"] < runs["windows"]

    bad = cli("detect", model_path, root / "day1", "--cells", "median", "-o", tmp_path / "x")
    assert bad.code == 2 and "cells" in bad.stderr and "Traceback" not in bad.stderr


def test_detect_a_forged_rate_and_a_long_name_fail_alone_and_names_never_collide(
    cli, model_path, recordings, tmp_path
):
    """A 2^31 Hz header, a legal 244-character name whose temporary output name would pass
    the 255-byte limit, and ``a.wav`` beside ``a.wav.wav``: each file is its own case."""
    import struct

    root, truth = recordings
    source = root / "day1" / "site.wav"
    folder = tmp_path / "in"
    folder.mkdir()
    data = bytearray(source.read_bytes())
    struct.pack_into("<I", data, data.find(b"fmt ") + 12, 2**31)
    (folder / "forged.wav").write_bytes(bytes(data))
    long_name = folder / ("x" * 240 + ".wav")
    assert len(long_name.name) == 244
    long_name.write_bytes(source.read_bytes())
    (folder / "a.wav").write_bytes(source.read_bytes())
    (folder / "a.wav.wav").write_bytes(source.read_bytes())
    out = tmp_path / "out"

    run = cli("detect", model_path, folder, "-o", out, "-f", "csv", "-f", "raven", "--json")

    assert run.code == 0, run.stderr
    rows = {row["path"]: row for row in run.json()}
    assert len(rows) == 4
    forged = rows[str(folder / "forged.wav")]
    assert forged["error"] and "forged.wav" in forged["error"] and "Hz" in forged["error"]
    good = [row for path, row in rows.items() if not path.endswith("forged.wav")]
    assert all(row["error"] is None for row in good), [row["error"] for row in good]
    written = [path for row in good for path in row["outputs"].values()]
    assert len(written) == len(set(written)) == 3 * 4  # csv, raven, picture, page for each
    assert all(len(os.path.basename(path).encode()) <= 255 for path in written)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("a.")) == sorted([
        "a.detections.html", "a.detections.png", "a.events.csv", "a.selections.txt",
        "a.wav.detections.html", "a.wav.detections.png", "a.wav.events.csv",
        "a.wav.selections.txt",
    ])
    # Both a.wav's and a.wav.wav's events were written from their own scan.
    for name in ("a.wav", "a.wav.wav"):
        events = read_events(rows[str(folder / name)]["outputs"]["csv"])
        assert events and {event.path for event in events} == {str(folder / name)}


def test_detect_writes_one_combined_table_of_every_file_and_rewrites_it_on_a_rerun(
    cli, model_path, recordings, tmp_path
):
    """all.events.csv holds every scanned file's rows; all.selections.txt places each
    selection in its file (Begin Path, File Offset) on a time line that runs on across
    files, as Raven opens them; an input named all.wav never overwrites either table."""
    import shutil

    import soundfile as sf

    root, truth = recordings
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(root / "day2" / "site.wav", folder / "all.wav")
    shutil.copy(root / "day1" / "site.wav", folder / "b.wav")
    shutil.copy(root / "day2" / "site.wav", folder / "c.wav")
    out = tmp_path / "out"

    run = cli("detect", model_path, folder, "-o", out, "--no-plot", "--no-html",
              "--json", "-t", "background=1.1")

    assert run.code == 0, run.stderr
    reports = run.json()
    assert [Path(r["path"]).name for r in reports] == ["all.wav", "b.wav", "c.wav"]
    per_file = [read_events(r["outputs"]["csv"]) for r in reports]
    assert [len(events) for events in per_file] == [2, 1, 2]
    assert reports[0]["outputs"]["csv"] == str(out / "all.wav.events.csv")
    combined = read_events(out / "all.events.csv")
    assert combined == [event for events in per_file for event in events]

    raven = list(csv.DictReader(open(out / "all.selections.txt"), delimiter="\t"))
    assert [row["Selection"] for row in raven] == ["1", "2", "3", "4", "5"]
    # The sound files to open in Raven as one sequence, in the table's order.
    assert (out / "all.files.txt").read_text().splitlines() == [
        os.path.abspath(r["path"]) for r in reports
    ]
    durations = [sf.info(r["path"]).duration for r in reports]
    starts = [0.0, durations[0], durations[0] + durations[1]]
    expected = [(start, event) for start, events in zip(starts, per_file) for event in events]
    for row, (start, event) in zip(raven, expected):
        assert row["Begin Path"] == os.path.abspath(event.path)
        assert float(row["File Offset (s)"]) == pytest.approx(event.onset_s, abs=1e-6)
        assert float(row["Begin Time (s)"]) == pytest.approx(start + event.onset_s, abs=1e-6)
        assert float(row["End Time (s)"]) == pytest.approx(start + event.offset_s, abs=1e-6)
        assert row["Annotation"] == event.label
    # Read back, the table gives each event in its own file's time.
    assert [(e.path, e.label, round(e.onset_s, 4), round(e.offset_s, 4))
            for e in read_events(out / "all.selections.txt")] == [
        (os.path.abspath(e.path), e.label, round(e.onset_s, 4), round(e.offset_s, 4))
        for events in per_file for e in events
    ]
    # evaluate-events reads the run's folder without counting the combined rows again.
    truth_csv = tmp_path / "truth.csv"
    truth_csv.write_text("path,label,onset_s,offset_s\n" + "".join(
        f"{e.path},{e.label},{e.onset_s},{e.offset_s}\n" for events in per_file for e in events
    ))
    scored = cli("evaluate-events", truth_csv, out, "--json")
    assert scored.code == 0, scored.stderr
    assert scored.json()["overall"]["detected"] == 5

    # A rerun over the same folder in which b.wav cannot be read: the tables are
    # rewritten from this run's files, and b.wav is reported, not listed.
    (folder / "b.wav").write_text("not audio")
    again = cli("detect", model_path, folder, "-o", out, "--no-plot", "--no-html", "--json",
                "-t", "background=1.1")
    assert again.code == 0, again.stderr
    assert [bool(r["error"]) for r in again.json()] == [False, True, False]
    rerun = read_events(out / "all.events.csv")
    assert rerun == per_file[0] + per_file[2]
    raven = list(csv.DictReader(open(out / "all.selections.txt"), delimiter="\t"))
    assert (out / "all.files.txt").read_text().splitlines() == [
        os.path.abspath(folder / "all.wav"), os.path.abspath(folder / "c.wav")
    ]
    assert float(raven[2]["Begin Time (s)"]) == pytest.approx(
        durations[0] + per_file[2][0].onset_s, abs=1e-6
    )
    assert not list(out.rglob("*.tmp"))
