"""``earmark search``: nearest stored clips or segments of an example, and its errors.

A store is filled with ``earmark embed`` (MFCC) over a small FSDD tree, then searched.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def store_dir(cli, digits_dir, tmp_path):
    store = tmp_path / "store"
    run = cli("embed", digits_dir, "--backend", "mfcc", "--cache-dir", store, "--json")
    assert run.code == 0, run.stderr
    return store


def _error_line(run) -> str:
    assert run.code == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_search_json_puts_the_file_itself_first(cli, store_dir, digits_dir):
    query = digits_dir / "recordings" / "2_lucas_1.wav"
    run = cli("search", query, "--in", store_dir, "-k", "4", "--json")

    assert run.code == 0, run.stderr
    answer = run.json()
    assert answer["backend"] == "mfcc" and answer["level"] == "clip"
    hits = answer["hits"]
    assert [hit["rank"] for hit in hits] == [1, 2, 3, 4]
    assert hits[0]["path"] == str(query) and hits[0]["distance"] == pytest.approx(0, abs=1e-5)
    assert hits[0]["start_s"] is None and hits[0]["frame"] is None
    assert all(a["distance"] <= b["distance"] for a, b in zip(hits, hits[1:]))

    exact = cli("search", query, "--in", store_dir, "-k", "4", "--json", "--exact").json()
    assert [hit["key"] for hit in exact["hits"]] == [hit["key"] for hit in hits]


def test_search_segments_have_spans(cli, store_dir, digits_dir):
    query = digits_dir / "recordings" / "3_george_0.wav"
    run = cli("search", query, "--in", store_dir, "--segments", "--json")

    assert run.code == 0, run.stderr
    hits = run.json()["hits"]
    assert len(hits) == 10
    for hit in hits:
        assert hit["frame"] >= 0 and 0 <= hit["start_s"] < hit["end_s"]


def test_search_table_names_files_and_spans(cli, store_dir, digits_dir):
    query = digits_dir / "recordings" / "0_jackson_2.wav"
    run = cli("search", query, "--in", store_dir, "-k", "3")

    assert run.code == 0, run.stderr
    assert run.stdout == ""  # the table is for people, on stderr
    assert "3 clips nearest 0_jackson_2.wav" in run.stderr
    assert "0_jackson_2.wav" in run.stderr and "whole file" in run.stderr


def test_search_errors_are_one_clear_line(cli, store_dir, digits_dir, tmp_path):
    query = digits_dir / "recordings" / "1_lucas_0.wav"

    missing = tmp_path / "no-store"
    assert str(missing) in _error_line(cli("search", query, "--in", missing))
    assert not missing.exists()  # a mistyped path is not created as an empty store

    line = _error_line(cli("search", query, "--in", store_dir, "--backend", "birdnet"))
    assert "no embeddings of backend 'birdnet'" in line and "mfcc" in line

    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    assert "notes.wav" in _error_line(cli("search", text, "--in", store_dir))

    empty = tmp_path / "empty-store"
    empty.mkdir()
    assert "holds no embeddings" in _error_line(cli("search", query, "--in", empty))
