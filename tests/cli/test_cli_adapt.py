"""``earmark evaluate --train-domain/--test-domain`` and ``earmark adapt`` on real FSDD clips.

The ``digits_dir`` fixture is FSDD in its own layout (4 digits x 3 speakers x 3 takes),
where each speaker is a domain. The mfcc backend keeps it fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _cli_data import DIGITS, PNG_SIGNATURE, TAKES

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _is_png(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == PNG_SIGNATURE


def test_evaluate_across_domains_reports_gap_shift_and_adaptation(cli, digits_dir, tmp_path):
    run = cli(
        "evaluate", digits_dir, "--backend", "mfcc", "--train-domain", "george",
        "--train-domain", "jackson", "--test-domain", "lucas", "--adapt", "standardize",
        "--adapt", "coral", "-o", tmp_path, "--json",
    )
    assert run.code == 0, run.stderr
    result = run.json()
    assert result["train_domains"] == ["george", "jackson"]
    assert result["test_domains"] == ["lucas"]
    assert result["n_train"] == 2 * len(DIGITS) * len(TAKES)
    assert result["n_test"] == len(DIGITS) * len(TAKES)
    assert result["gap"] == pytest.approx(
        result["in_domain_accuracy"] - result["cross_domain_accuracy"]
    )
    assert 0.5 <= result["shift"]["domain_accuracy"] <= 1.0
    assert result["shift"]["distinguishability"] == pytest.approx(
        2 * (result["shift"]["domain_accuracy"] - 0.5))
    assert result["gap_points"] == pytest.approx(100 * result["gap"])
    assert set(result["adapted"]) == {"standardize", "coral"}
    for row in result["adapted"].values():
        assert 0 <= row["accuracy"] <= 1 and row["shift"]["verdict"]
    assert _is_png(result["files"]["plot"])
    assert json.loads(open(result["files"]["json"]).read())["gap"] == result["gap"]


def test_evaluate_across_domains_prints_a_summary_for_people(cli, digits_dir, tmp_path):
    run = cli("evaluate", digits_dir, "-b", "mfcc", "--train-domain", "george",
              "--test-domain", "jackson", "-o", tmp_path)
    assert run.code == 0, run.stderr
    assert "in-domain" in run.stderr and "cross-domain" in run.stderr
    assert "points" in run.stderr and "%," not in run.stderr.split("gap")[1].split("\n")[0]
    assert "distinguishable" in run.stderr


def test_evaluate_auto_reports_its_accuracy_choice_and_every_estimate(cli, digits_dir, tmp_path):
    run = cli("evaluate", digits_dir, "-b", "mfcc", "--train-domain", "george",
              "--train-domain", "jackson", "--test-domain", "lucas", "--adapt", "auto",
              "--adapt", "selftrain", "--adapt", "priors", "-o", tmp_path, "--json")
    assert run.code == 0, run.stderr
    result = run.json()
    auto = result["adapted"]["auto"]
    assert 0 <= auto["accuracy"] <= 1
    assert auto["chosen"] in ("consensus", "none") and auto["reason"]
    assert set(auto["agreement"]) >= {"none", "standardize", "prototypes", "priors"}
    assert set(auto["target_priors_by_method"]) >= {"priors", "standardize+priors", "prototypes"}
    assert sum(result["adapted"]["priors"]["target_priors"].values()) == pytest.approx(1.0)
    assert sum(result["target_proportions"].values()) == pytest.approx(1.0)
    # Every method is in the before/after figure, which is in the output folder.
    assert _is_png(result["files"]["plot"])
    assert str(tmp_path) in result["files"]["plot"]


def test_evaluate_without_domains_keeps_its_old_behaviour(cli, digits_dir, tmp_path):
    run = cli("evaluate", digits_dir, "-b", "mfcc", "-o", tmp_path, "--json")
    assert run.code == 0, run.stderr
    assert run.json()["strategy"].startswith("leave one group out")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train-domain", "george"], "both --train-domain and --test-domain"),
        (["--train-domain", "george", "--test-domain", "paul"], "no item has domain 'paul'"),
        (["--adapt", "coral"], "--adapt needs --train-domain"),
        (["--train-domain", "george", "--test-domain", "lucas", "--adapt", "magic"],
         "unknown adaptation method"),
    ],
)
def test_evaluate_across_domains_says_what_is_wrong(cli, digits_dir, tmp_path, args, message):
    run = cli("evaluate", digits_dir, "-b", "mfcc", "-o", tmp_path, *args)
    assert run.code == 2
    assert message in run.stderr


@pytest.fixture
def trained(cli, digits_dir, tmp_path):
    """A logreg model trained on two speakers."""
    import shutil

    source = tmp_path / "source" / "recordings"
    source.mkdir(parents=True)
    for path in (digits_dir / "recordings").glob("*.wav"):
        if "_lucas_" not in path.name:
            shutil.copy(path, source / path.name)
    model = tmp_path / "model.earmark"
    run = cli("train", source.parent, "-b", "mfcc", "-o", model)
    assert run.code == 0, run.stderr
    return model, source.parent


def test_adapt_writes_a_model_that_loads_and_predicts_the_target(cli, trained, digits_dir, tmp_path):
    from earmark.models import EarmarkModel

    model_path, _ = trained
    adapted_path = tmp_path / "adapted.earmark"
    run = cli("adapt", model_path, "--target", digits_dir, "--target-domain", "lucas",
              "-o", adapted_path, "--json")
    assert run.code == 0, run.stderr
    payload = run.json()
    assert payload["method"] == "standardize" and payload["n_target"] == len(DIGITS) * len(TAKES)
    adapted = EarmarkModel.load(adapted_path)
    assert adapted.pipeline.steps[0][0] == "adapt"
    assert adapted.training["adaptation"]["n_target"] == payload["n_target"]

    target_files = sorted(str(p) for p in (digits_dir / "recordings").glob("*_lucas_*.wav"))
    run = cli("predict", adapted_path, *target_files, "--json")
    assert run.code == 0, run.stderr
    assert all(row["label"] in DIGITS for row in run.json())
    # The adapted model moves what it reads before the original classifier sees it.
    X = np.random.default_rng(0).normal(size=(3, 120))
    assert not np.allclose(adapted.pipeline.named_steps["adapt"].transform(X), X)
    original = EarmarkModel.load(model_path)
    np.testing.assert_allclose(
        adapted.pipeline[1:].predict_proba(X), original.pipeline.predict_proba(X), rtol=1e-6
    )


def test_adapt_with_the_source_draws_before_and_after(cli, trained, digits_dir, tmp_path):
    model_path, source = trained
    out = tmp_path / "coral.earmark"
    run = cli("adapt", model_path, "--target", digits_dir, "--target-domain", "lucas",
              "--method", "coral", "--source", source, "-o", out, "--json")
    assert run.code == 0, run.stderr
    payload = run.json()
    record = payload["adaptation"]
    assert record["shift_after"]["mmd2"] < record["shift_before"]["mmd2"]
    assert _is_png(payload["files"]["plot"])
    # The picture goes to the output folder, not beside the model.
    assert Path(payload["files"]["plot"]).parent != out.parent
    assert "none" in record["agreement"]


def test_adapt_auto_records_what_it_did_and_why(cli, trained, digits_dir, tmp_path):
    from earmark.model import EarmarkModel

    model_path, source = trained
    out = tmp_path / "auto.earmark"
    run = cli("adapt", model_path, "--target", digits_dir, "--target-domain", "lucas",
              "--method", "auto", "--source", source, "-o", out,
              "--figures", tmp_path / "figures", "--json")
    assert run.code == 0, run.stderr
    payload = run.json()
    assert payload["method"] == "auto" and payload["adaptation"]["auto"]["reason"]
    assert payload["files"]["plot"].startswith(str(tmp_path / "figures"))
    loaded = EarmarkModel.load(out)
    assert loaded.training["adaptation"]["auto"]["chosen"] in ("consensus", "none")


def test_adapt_says_when_a_method_needs_the_training_data(cli, trained, digits_dir, tmp_path):
    model_path, _ = trained
    run = cli("adapt", model_path, "--target", digits_dir, "--target-domain", "lucas",
              "--method", "dann", "-o", tmp_path / "x.earmark")
    assert run.code == 2
    assert "needs the training data" in run.stderr
    assert not (tmp_path / "x.earmark").exists()
