"""The ``earmark`` commands end to end on real recordings: what they print and what they write.

Most tests run the entry point in this process (the ``cli`` fixture) with the fast
``placeholder`` and ``mfcc`` backends; ``tests/cli/test_cli_errors.py`` runs it as a
subprocess for exit codes and error output.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from _cli_data import CLIPS_PER_WORD, DIGITS, PNG_SIGNATURE, SPEAKERS, TAKES, WORDS

N_DIGIT_FILES = len(DIGITS) * len(SPEAKERS) * len(TAKES)
N_WORD_FILES = len(WORDS) * CLIPS_PER_WORD


def _is_png(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == PNG_SIGNATURE


# ----------------------------------------------------------------------- backends
def test_backends_json_lists_every_user_backend_with_licence_and_size(cli_subprocess):
    from earmark.backends.registry import DEFAULT_BACKEND, registered

    run = cli_subprocess("backends", "--json")

    assert run.code == 0, run.stderr
    rows = {row["name"]: row for row in run.json()}
    expected = [spec.name for spec in registered(include_test_backends=False)]
    assert list(rows) == expected
    assert "placeholder" not in rows, "a test-only backend must not be offered to users"
    for name, row in rows.items():
        assert isinstance(row["installed"], bool), name
        assert row["licence"], f"{name} has no licence text"
        assert row["commercial_use"] in (True, False, None), name
        if row["dimension"] is None:  # a backend that needs parameters says why
            assert row["note"], name
        else:
            assert row["dimension"] > 0 and row["sample_rate"] >= 8000, name
    assert [name for name, row in rows.items() if row["default"]] == [DEFAULT_BACKEND]
    birdnet = rows["birdnet"]
    assert birdnet["default"] is True
    assert birdnet["commercial_use"] is False
    assert "non-commercial" in birdnet["licence"]
    assert (birdnet["dimension"], birdnet["sample_rate"]) == (1024, 48000)
    assert (rows["mfcc"]["commercial_use"], rows["mfcc"]["installed"]) == (True, True)


def test_backends_table_marks_the_default_and_writes_nothing_on_stdout(cli):
    run = cli("backends")

    assert run.code == 0
    assert run.stdout == ""
    assert "birdnet (default)" in run.stderr
    assert "non-commercial" in run.stderr


# -------------------------------------------------------------------------- embed
def test_embed_counts_then_reuses_everything_on_a_second_run(cli, words_dir, cache_dir):
    from earmark.store import open_store

    first = cli("embed", words_dir, "--backend", "placeholder", "--json")
    second = cli("embed", words_dir, "--backend", "placeholder", "--json")

    assert first.code == 0 and second.code == 0, first.stderr + second.stderr
    assert first.stderr == "", "--json must keep messages and progress off"
    one, two = first.json(), second.json()
    assert (one["items"], one["computed"], one["reused"], one["failed"]) == (
        N_WORD_FILES, N_WORD_FILES, 0, [],
    )
    assert (two["items"], two["computed"], two["reused"], two["failed"]) == (
        N_WORD_FILES, 0, N_WORD_FILES, [],
    )
    assert two["computed_audio_s"] == 0
    assert one["backend"]["backend"] == "placeholder"
    assert Path(one["store"]) == cache_dir
    assert open_store(cache_dir).count() == N_WORD_FILES

    # --cache-dir wins over $EARMARK_CACHE_DIR: another cache starts empty.
    other = cache_dir.parent / "other-cache"
    third = cli("embed", words_dir, "-b", "placeholder", "--cache-dir", other, "--json")
    assert (third.json()["computed"], Path(third.json()["store"])) == (N_WORD_FILES, other)


def test_embed_names_bad_files_and_embeds_the_rest(cli, words_dir, write_bad_files):
    good = sorted((words_dir / WORDS[0]).glob("*.wav"))[0]
    bad = write_bad_files(words_dir / WORDS[1], good)

    run = cli("embed", words_dir, "--backend", "placeholder", "--json")

    assert run.code == 0, run.stderr
    payload = run.json()
    assert payload["items"] == N_WORD_FILES + 3
    assert payload["computed"] == N_WORD_FILES
    failed = {Path(item["path"]).name: item["reason"] for item in payload["failed"]}
    assert sorted(failed) == sorted(path.name for path in bad.values())
    assert "empty" in failed["empty.wav"]
    assert "truncated" in failed["truncated.wav"]
    assert "not readable as audio" in failed["text-as-audio.wav"]

    # A person sees the same files named, and the good ones come from the cache.
    human = cli("embed", words_dir, "--backend", "placeholder")
    assert human.code == 0
    assert human.stdout == ""
    for path in bad.values():
        assert str(path) in human.stderr
    assert f"{N_WORD_FILES + 3} items: 0 embedded, {N_WORD_FILES} reused from the cache, 3 failed" in (
        human.stderr
    )


def test_embed_fails_when_no_file_can_be_embedded(cli, tmp_path, digits_dir, write_bad_files):
    good = next((digits_dir / "recordings").glob("*.wav"))
    write_bad_files(tmp_path / "broken" / "a", good)
    write_bad_files(tmp_path / "broken" / "b", good)

    run = cli("embed", tmp_path / "broken", "--backend", "placeholder", "--json")

    assert run.code != 0
    assert len(run.json()["failed"]) == 6


# ----------------------------------------------------------------------- evaluate
def test_evaluate_holds_speakers_out_and_writes_json_and_confusion_png(
    cli, digits_dir, tmp_path
):
    out = tmp_path / "out"
    run = cli("evaluate", digits_dir, "-b", "mfcc", "-o", out, "--json")

    assert run.code == 0, run.stderr
    payload = run.json()
    # FSDD's speakers are groups: never a random split, one speaker per split here.
    assert payload["strategy"] == f"leave one group out ({len(SPEAKERS)} groups)"
    assert not any("random" in warning for warning in payload["warnings"])
    assert [split["n_test"] for split in payload["splits"]] == [len(DIGITS) * len(TAKES)] * 3
    assert payload["classes"] == list(DIGITS)
    assert payload["n_items"] == payload["n_tested"] == N_DIGIT_FILES
    # A real backend on held-out speakers: well above chance (1 / 4 digits).
    assert payload["accuracy"] > 0.4
    assert sum(map(sum, payload["confusion_matrix"])) == N_DIGIT_FILES
    assert payload["backend"]["backend"] == "mfcc"

    written = json.loads(Path(payload["files"]["json"]).read_text())
    assert written["accuracy"] == pytest.approx(payload["accuracy"])
    assert len(written["y_pred"]) == N_DIGIT_FILES
    assert Path(payload["files"]["json"]).parent == out
    assert _is_png(payload["files"]["confusion_matrix"])
    # Issue 16: calibration of the held-out probabilities, top level, with pictures.
    assert 0.0 <= payload["ece"] <= 1.0 and 0.0 <= payload["brier"] <= 2.0
    assert 0.0 < payload["ece_floor"] < 1.0
    assert _is_png(payload["files"]["reliability"]) and _is_png(payload["files"]["thresholds"])
    assert [row["label"] for row in payload["operating_points"]] == list(DIGITS)


def test_evaluate_says_which_layout_it_detected(cli, digits_dir, tmp_path):
    run = cli("evaluate", digits_dir, "-b", "placeholder", "-o", tmp_path / "out")

    assert run.code == 0, run.stderr
    assert run.stdout == ""
    assert (
        f"detected layout fsdd, {N_DIGIT_FILES} items, {len(DIGITS)} classes, groups" in run.stderr
    )
    assert "leave one group out" in run.stderr
    assert "licence: MIT" in run.stderr


def test_evaluate_warns_when_nothing_keeps_related_clips_apart(cli, words_dir, tmp_path):
    run = cli("evaluate", words_dir, "-b", "placeholder", "-o", tmp_path / "out", "--json")

    assert run.code == 0, run.stderr
    payload = run.json()
    assert "at random" in payload["strategy"]
    assert any("leaks" in warning for warning in payload["warnings"])


# -------------------------------------------------------------------------- curve
def test_curve_draws_backend_and_baseline_on_the_same_splits(cli, digits_dir, tmp_path):
    out = tmp_path / "curve"
    run = cli(
        "curve", digits_dir, "-b", "placeholder", "--baseline", "mfcc", "--draws", "2",
        "--sizes", "1,2,all", "-o", out, "--json",
    )

    assert run.code == 0, run.stderr
    payload = run.json()
    curves = payload["curves"]
    assert sorted(curves) == ["mfcc", "placeholder"]
    assert curves["mfcc"]["strategy"] == curves["placeholder"]["strategy"]
    assert "group" in curves["mfcc"]["strategy"]
    for name, curve in curves.items():
        assert curve["n_draws"] == 2
        assert [point["size"] for point in curve["points"]] == [1, 2, "all"], name
        for point in curve["points"]:
            assert 0.0 <= point["min"] <= point["mean"] <= point["max"] <= 1.0
        # Two draws per split for the subsets; 'all' is one fixed training set.
        assert curve["points"][0]["n_fits"] == 2 * len(SPEAKERS)
    assert json.loads(Path(payload["files"]["json"]).read_text()).keys() == curves.keys()
    assert Path(payload["files"]["plot"]).parent == out
    assert _is_png(payload["files"]["plot"])


# ------------------------------------------------------------------ train, predict
def test_train_then_predict_labels_files_reusing_the_cache(
    cli, digits_dir, fsdd_dir, tmp_path, cache_dir, monkeypatch, write_bad_files
):
    import earmark.embedding
    from earmark.backends import get_backend
    from earmark.models import EarmarkModel
    from earmark.store import open_store

    model_path = tmp_path / "digits.earmark"
    trained = cli("train", digits_dir, "-b", "mfcc", "-o", model_path, "--json")
    assert trained.code == 0, trained.stderr
    assert trained.json()["classes"] == list(DIGITS)
    assert EarmarkModel.load(model_path).classes_.tolist() == list(DIGITS)
    backend_key = get_backend("mfcc").cache_key()
    assert open_store(cache_dir).count(backend_key) == N_DIGIT_FILES

    seen = [digits_dir / "recordings" / f"{d}_{s}_0.wav" for d, s in (("1", "george"), ("3", "lucas"))]
    unseen = fsdd_dir / "recordings" / "2_jackson_7.wav"  # not in the training subset
    bad = write_bad_files(tmp_path / "bad", seen[0])["text"]
    files = [seen[0], bad, seen[1], unseen]

    # Only the file never embedded may reach the backend: the rest come from the cache.
    embedded = []
    original = earmark.embedding.embed_file

    def counting_embed_file(backend, path, **kwargs):
        embedded.append(Path(path))
        return original(backend, path, **kwargs)

    monkeypatch.setattr(earmark.embedding, "embed_file", counting_embed_file)
    csv_path = tmp_path / "predictions.csv"
    run = cli("predict", model_path, *files, "-o", csv_path)

    assert run.code == 0, run.stderr
    assert embedded == [unseen]
    assert open_store(cache_dir).count(backend_key) == N_DIGIT_FILES + 1
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["path"]) for row in rows] == files
    labelled = [row for row in rows if Path(row["path"]) != bad]
    assert all(row["label"] in DIGITS and row["error"] == "" for row in labelled)
    # Training clips are labelled as they were taught (a 120-d logreg fits 36 clips).
    assert [row["label"] for row in labelled[:2]] == ["1", "3"]
    bad_row = rows[1]
    assert bad_row["label"] == "" and bad.name in bad_row["error"]
    assert bad.name in run.stderr and "could not be labelled" in run.stderr

    # Without -o the CSV goes to stdout, and only the CSV: `earmark predict ... > out.csv`.
    piped = cli("predict", model_path, *files)
    assert piped.code == 0, piped.stderr
    assert list(csv.DictReader(piped.stdout.splitlines())) == rows

    again = cli("predict", model_path, *files, "--json")
    assert again.code == 0, again.stderr
    assert embedded == [unseen], "the second prediction must embed nothing"
    json_rows = again.json()
    assert [row["label"] for row in json_rows] == [row["label"] or None for row in rows]
    assert json_rows[1]["error"] and json_rows[1]["top_k"] == []
    for row in json_rows[::2]:
        scores = [item["score"] for item in row["top_k"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert row["score"] == scores[0]


def test_predict_fails_when_no_file_can_be_labelled(
    cli, words_dir, tmp_path, write_bad_files
):
    model_path = tmp_path / "words.earmark"
    assert cli("train", words_dir, "-b", "placeholder", "-o", model_path, "-q").code == 0
    good = next((words_dir / WORDS[0]).glob("*.wav"))
    bad = write_bad_files(tmp_path / "bad", good)

    run = cli("predict", model_path, tmp_path / "bad", "--json")

    assert run.code != 0
    rows = run.json()
    assert sorted(Path(row["path"]).name for row in rows) == sorted(p.name for p in bad.values())
    assert all(row["label"] is None and row["error"] for row in rows)
