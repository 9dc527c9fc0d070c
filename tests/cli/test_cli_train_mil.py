"""``earmark train --mil``: a frame model from clip labels, used frame by frame by ``detect``."""

from __future__ import annotations

import json

import numpy as np
from _cli_data import WORDS

from earmark.models import EarmarkModel, predict_files


def test_train_mil_writes_a_frame_model_that_detect_runs_per_frame(cli, words_dir, tmp_path):
    model_path = tmp_path / "words.earmark"

    trained = cli("train", words_dir, "-b", "mfcc", "--mil", "max", "-o", model_path, "--json")

    assert trained.code == 0, trained.stderr
    assert trained.json()["kind"] == "frames" and trained.json()["learner"] == "mil-max"
    model = EarmarkModel.load(model_path)
    assert model.kind == "frames" and model.classes_.tolist() == list(WORDS)
    clip = next((words_dir / WORDS[1]).glob("*.wav"))
    rows = [p.to_dict() for p in predict_files(model, [clip])]
    assert rows[0]["error"] is None and set(rows[0]["top_k"][0]) == {"label", "score"}

    out = tmp_path / "out"
    run = cli("detect", model_path, clip, "-o", out, "-f", "json", "--no-plot", "--json")

    assert run.code == 0, run.stderr
    (row,) = run.json()
    assert row["error"] is None
    written = json.loads(next(out.glob("*.json")).read_text())
    assert written  # the per-file result was written
    # The frame scores came from the model itself, not from sliding windows.
    assert hasattr(model, "segment_proba")
    assert np.all((model.segment_proba(np.zeros((2, model.backend_identity["dimension"]))) >= 0))


def test_train_mil_refuses_an_unknown_pooling(cli, words_dir, tmp_path):
    run = cli("train", words_dir, "-b", "mfcc", "--mil", "median", "-o", tmp_path / "m.earmark")

    assert run.code != 0
    assert "median" in run.stderr and "attention" in run.stderr
    assert not (tmp_path / "m.earmark").exists()
