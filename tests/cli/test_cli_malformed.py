"""The malformed-file corpus (tests/_malformed.py) through embed, train, evaluate, predict,
detect and explain: every bad file named once with its reason, every good file processed
exactly once, no traceback, and bounded memory on the headers that lie."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _malformed import write_corpus


@pytest.fixture(scope="module")
def corpus(fsdd_dir, philharmonia_dir, tmp_path_factory):
    made = write_corpus(tmp_path_factory.mktemp("corpus") / "data", fsdd_dir, philharmonia_dir)
    assert len(made) >= 50 and len(made.bad) >= 40 and len(made.good) >= 40
    return made


@pytest.fixture
def wide(monkeypatch):
    """Long names on one line: no wrapping of the 244-character ones."""
    from earmark.cli import _common

    monkeypatch.setenv("COLUMNS", "100000")
    monkeypatch.setattr(_common.console, "width", 100000)


#: Runs earmark's CLI and, at exit, writes the process's own peak resident memory
#: (VmHWM, kB) to $EARMARK_TEST_PEAK_FILE. Not wait4's ru_maxrss: Linux carries the
#: parent's peak across fork and exec into it, and pytest's own is large.
_MEASURED = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as status, open(os.environ["EARMARK_TEST_PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(_peak)
sys.argv = ["earmark", *sys.argv[1:]]
from earmark.cli import main
main()
"""


def _run_measured(args, env) -> tuple[int, str, str, float]:
    """Run ``python -m earmark ARGS``: (exit code, stdout, stderr, peak RSS of that process
    in MiB, or -1 where /proc is not there to ask)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        peak_file = os.path.join(folder, "peak")
        measured = os.path.exists("/proc/self/status")
        command = [sys.executable, "-c", _MEASURED] if measured else [sys.executable, "-m", "earmark"]
        done = subprocess.run(
            [*command, *map(str, args)], capture_output=True, text=True, timeout=600,
            env={**os.environ, **env, "EARMARK_TEST_PEAK_FILE": peak_file},
        )
        peak = float(open(peak_file).read()) / 1024 if measured else -1.0
        return done.returncode, done.stdout, done.stderr, peak


def _assert_named_once(text: str, corpus) -> None:
    for path, word in corpus.bad.items():
        lines = [line for line in text.splitlines() if str(path) in line]
        assert len(lines) == 1, (path.name, lines)
        assert word in lines[0].lower(), (path.name, lines[0])
    for path in corpus.good:
        assert not any(
            str(path) in line for line in text.splitlines() if "skipped" in line
        ), path.name


def test_embed_names_each_bad_file_once_and_embeds_each_good_one_once(corpus, tmp_path):
    env = {"EARMARK_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "100000"}
    code, out, err, peak_mib = _run_measured(
        ["embed", corpus.root, "-b", "mfcc", "--json"], env
    )
    assert code == 0, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["items"] == len(corpus)
    assert report["computed"] == len(corpus.good) and report["reused"] == 0
    failed = {item["path"]: item["reason"] for item in report["failed"]}
    assert len(report["failed"]) == len(failed) == len(corpus.bad)
    for path, word in corpus.bad.items():
        assert word in failed[str(path)].lower(), (path.name, failed[str(path)])
    assert peak_mib < 1024, f"embed peaked at {peak_mib:.0f} MiB"

    # Run again: everything good is reused, nothing embedded twice, the same files named.
    code, out, err, _ = _run_measured(["embed", corpus.root, "-b", "mfcc", "--json"], env)
    again = json.loads(out)
    assert (again["computed"], again["reused"]) == (0, len(corpus.good))
    assert {item["path"] for item in again["failed"]} == set(failed)


def test_the_lying_headers_alone_stay_under_a_gibibyte(corpus, tmp_path):
    folder = tmp_path / "lying" / "only"
    folder.mkdir(parents=True)
    for path in corpus.lying:
        (folder / path.name).write_bytes(path.read_bytes())
    env = {"EARMARK_CACHE_DIR": str(tmp_path / "cache")}
    code, out, err, peak_mib = _run_measured(
        ["embed", folder.parent, "-b", "mfcc", "--json"], env
    )
    assert code == 1  # nothing could be embedded
    assert len(json.loads(out)["failed"]) == len(corpus.lying)
    assert peak_mib < 1024, f"peaked at {peak_mib:.0f} MiB"


@pytest.fixture(scope="module")
def model_path(corpus, tmp_path_factory):
    """`earmark train CORPUS -b mfcc`, run once: the model predict, detect and explain use."""
    folder = tmp_path_factory.mktemp("model")
    env = {"EARMARK_CACHE_DIR": str(folder / "cache"), "COLUMNS": "100000"}
    path = folder / "corpus.earmark"
    code, _, err, _ = _run_measured(["train", corpus.root, "-b", "mfcc", "-o", path], env)
    assert code == 0, err
    assert "Traceback" not in err
    _assert_named_once(err, corpus)
    return path


@pytest.mark.usefixtures("wide")
def test_evaluate_names_each_bad_file_once(cli, corpus, model_path, tmp_path):
    run = cli("evaluate", corpus.root, "-b", "mfcc", "-o", tmp_path / "results")
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    _assert_named_once(run.stderr, corpus)
    assert f"{len(corpus.bad)} file(s) skipped" in run.stderr


def test_predict_labels_each_good_file_and_names_each_bad_one(cli, corpus, model_path):
    run = cli("predict", model_path, corpus.root, "--json")
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    rows = run.json()
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(corpus)
    for path, word in corpus.bad.items():
        row = by_path[str(path)]
        assert row["label"] is None and word in row["error"].lower(), (path.name, row["error"])
    for path, label in corpus.good.items():
        row = by_path[str(path)]
        assert row["error"] is None and row["label"] in ("zero", "one"), path.name


def test_detect_scans_each_good_file_and_names_each_bad_one(cli, corpus, model_path, tmp_path):
    out = tmp_path / "events"
    run = cli("detect", model_path, corpus.root, "-o", out, "--no-plot", "--json")
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    rows = {row["path"]: row for row in run.json()}
    assert len(rows) == len(corpus)
    for path, word in corpus.bad.items():
        error = rows[str(path)]["error"]
        assert error and word in error.lower() and path.name in error, (path.name, error)
        assert rows[str(path)]["outputs"] == {}
    written = []
    for path in corpus.good:
        row = rows[str(path)]
        assert row["error"] is None, (path.name, row["error"])
        written.append(row["outputs"]["csv"])
    assert len(set(written)) == len(corpus.good)  # no two inputs share an output
    assert all(os.path.isfile(path) for path in written)


def test_explain_refuses_each_bad_file_with_its_reason(cli, corpus, model_path, tmp_path):
    for path, word in corpus.bad.items():
        run = cli("explain", model_path, path, "-o", tmp_path / "why", "--no-check")
        assert run.code != 0, path.name
        assert "Traceback" not in run.stderr, path.name
        assert word in run.stderr.lower(), (path.name, run.stderr)
    good = [p for p in corpus.good if p.suffix in (".m4a", ".opus")][:2]
    good += [max(corpus.good, key=lambda p: len(p.name))]  # ~240 characters
    assert len(good[-1].name) > 230
    for path in good:
        run = cli("explain", model_path, path, "-o", tmp_path / "why", "--no-check",
                  "--segments", "2", "--bands", "2", "--json")
        assert run.code == 0, (path.name, run.stderr)
        answer = run.json()
        assert answer["explanation"]["path"] == str(path)
        assert all(len(os.path.basename(f).encode()) <= 255 for f in answer["files"].values())
