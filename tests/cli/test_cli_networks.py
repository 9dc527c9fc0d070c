"""``earmark train/evaluate --finetune aisfx`` and ``--network``, and the few-data study
``earmark curve --compare``, end to end on a few real spoken digits."""

from __future__ import annotations

import shutil

import pytest
from _cli_data import PNG_SIGNATURE

from earmark.backends.aisfx import AisfxBackend

pytest.importorskip("torch")
needs_aisfx = pytest.mark.skipif(not AisfxBackend.is_available(), reason="fine-tuning needs the aisfx wheel")


@needs_aisfx
def test_train_finetune_aisfx_writes_a_model_that_predicts(cli, digits_dir, tmp_path):
    model = tmp_path / "digits.earmark"
    run = cli("train", digits_dir, "--finetune", "aisfx", "--epochs", "1", "-o", model, "--json")
    assert run.code == 0, run.stderr
    summary = run.json()
    assert summary["kind"] == "network" and summary["training"]["architecture"] == "aisfx-finetune"
    assert summary["training"]["epochs_run"] == 1 and summary["training"]["validation_groups"]
    clip = sorted((digits_dir / "recordings").glob("*.wav"))[0]
    predicted = cli("predict", model, clip, "-o", tmp_path / "labels.csv", "--json")
    assert predicted.code == 0, predicted.stderr
    assert predicted.json()[0]["label"] in summary["classes"]


@needs_aisfx
def test_finetune_refuses_a_class_with_one_clip_and_says_why(cli, digits_dir, tmp_path):
    data = tmp_path / "few" / "recordings"
    data.mkdir(parents=True)
    for clip in sorted((digits_dir / "recordings").glob("*.wav")):
        if clip.name.startswith(("0_", "1_")):
            shutil.copy(clip, data / clip.name)
    lonely = next(p for p in sorted((digits_dir / "recordings").glob("2_*.wav")))
    shutil.copy(lonely, data / lonely.name)
    run = cli("train", data.parent, "--finetune", "aisfx", "--epochs", "1", "-o", tmp_path / "m.earmark")
    assert run.code != 0
    assert "at least 2 training items per class" in run.stderr and "'2' has 1" in run.stderr
    assert "Traceback" not in run.stderr


def test_finetune_names_what_can_be_fine_tuned(cli, digits_dir, tmp_path):
    run = cli("train", digits_dir, "--finetune", "birdnet", "-o", tmp_path / "m.earmark")
    assert run.code == 2 and "only aisfx can be fine-tuned" in run.stderr


def test_evaluate_a_small_network_from_scratch(cli, digits_dir, tmp_path):
    run = cli("evaluate", digits_dir, "--network", "timbre", "--epochs", "2", "-o", tmp_path, "--json")
    assert run.code == 0, run.stderr
    result = run.json()
    assert result["network"] == "timbre" and len(result["splits"]) == 3  # one speaker out per split
    assert 0.0 <= result["accuracy_mean"] <= 1.0 and result["timing"]["train_and_test_s_per_split"] > 0
    assert (tmp_path / "evaluation-network-timbre-confusion.png").read_bytes().startswith(PNG_SIGNATURE)


@needs_aisfx
def test_curve_compare_draws_four_families_in_one_picture(cli, digits_dir, tmp_path):
    families = "mfcc-knn,cnn-small,mfcc-logreg,aisfx-finetune"
    run = cli("curve", digits_dir, "--compare", families, "--sizes", "1,2,all", "--draws", "1",
              "--epochs", "1", "-o", tmp_path, "--json")
    assert run.code == 0, run.stderr
    payload = run.json()
    assert list(payload["curves"]) == families.split(",")
    plots = list(tmp_path.glob("*.png"))
    assert len(plots) == 1 and plots[0].read_bytes().startswith(PNG_SIGNATURE)
    for name in ("cnn-small", "aisfx-finetune"):  # a network cannot learn from 1 per class
        curve = payload["curves"][name]
        assert [p["size"] for p in curve["points"]] == [2, "all"]
        assert "at least 2 training items per class" in curve["skipped"][0]["reason"]
    assert [p["size"] for p in payload["curves"]["mfcc-knn"]["points"]] == [1, 2, "all"]
