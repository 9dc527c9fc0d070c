"""``earmark fewshot`` end to end on real spoken digits (FSDD layout, speakers as groups)."""

from __future__ import annotations

import json

import pytest

from _cli_data import DIGITS, PNG_SIGNATURE, SPEAKERS, TAKES


def test_fewshot_json_reports_each_method_and_writes_the_files(cli, digits_dir, tmp_path):
    out = tmp_path / "out"
    run = cli(
        "fewshot", digits_dir, "--backend", "mfcc", "--method", "prototype-euclidean",
        "--method", "logreg", "--ways", "3", "--shots", "1,2", "--episodes", "40",
        "--unknown-ways", "1",
        "-o", out, "--json",
    )

    assert run.code == 0, run.stderr
    assert run.stderr == "", "--json keeps messages and progress off"
    payload = run.json()
    assert payload["backend"]["backend"] == "mfcc"
    results = payload["results"]
    assert [r["method"] for r in results] == ["prototype-euclidean", "logreg"]
    # Prototypes say where they were centred (the whole folder, by default); logreg does not centre.
    assert results[0]["center"].startswith("the mean of all ") and results[1]["center"] is None
    for result in results:
        assert result["strategy"] == f"support and query from disjoint groups ({len(SPEAKERS)} groups)"
        assert [(p["shots"], p["ways"], p["n_episodes"]) for p in result["points"]] == [
            (1, 3, 40), (2, 3, 40),
        ]
        for point in result["points"]:
            # 3 speakers: support takes one, queries are the other two speakers' takes.
            assert point["queries_per_class"] == 2 * len(TAKES)
            assert 0.0 <= point["rejection"]["mean"] <= 1.0
            assert 0.0 <= point["mean"] - point["ci95"] <= point["mean"] + point["ci95"] <= 1.0
        assert any("fewer than 15 queries" in w for w in result["warnings"])
    # MFCC tells spoken digits apart above chance (1/3), even from another speaker.
    for result in results:
        assert result["points"][1]["mean"] > 0.4
    written = json.loads((out / "fewshot.json").read_text())
    assert [r["method"] for r in written["results"]] == ["prototype-euclidean", "logreg"]
    assert payload["files"] == {"json": str(out / "fewshot.json"), "plot": str(out / "fewshot.png")}
    assert (out / "fewshot.png").read_bytes()[:8] == PNG_SIGNATURE


def test_fewshot_table_with_all_ways_and_a_taxonomy(cli, digits_dir, tmp_path):
    taxonomy = tmp_path / "parity.yaml"
    taxonomy.write_text("even: ['0', '2']\nodd: ['1', '3']\n")
    run = cli(
        "fewshot", digits_dir, "--backend", "mfcc", "--method", "knn", "--ways", "all",
        "--shots", "1", "--episodes", "10", "--taxonomy", taxonomy, "-o", tmp_path / "out",
    )

    assert run.code == 0, run.stderr
    assert run.stdout == ""
    assert "support and query from disjoint groups" in run.stderr
    row = next(line for line in run.stderr.splitlines() if line.strip("│ ").startswith("knn"))
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:3] == ["knn", str(len(DIGITS)), "1"]
    assert "coarse" in run.stderr and "rejected" not in run.stderr
    assert "fewshot.json" in run.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "magic"], "unknown few-shot method 'magic'"),
        (["--ways", "1"], "--ways"),
        (["--shots", "1,x"], "shots"),
        (["--taxonomy", "no-such-taxonomy"], "taxonomy"),
        (["--center", "queries"], "--center collection or support"),
    ],
)
def test_fewshot_bad_options_end_in_one_line_before_any_embedding(cli, tmp_path, args, message):
    run = cli("fewshot", tmp_path / "missing-folder", "--backend", "placeholder", *args)

    assert run.code == 2
    assert run.stdout == ""
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_fewshot_query_fold_needs_folds(cli, digits_dir):
    run = cli("fewshot", digits_dir, "--backend", "placeholder", "--query-fold", "1", "--quiet")

    assert run.code == 2
    assert "--query-fold needs official folds" in run.stderr
