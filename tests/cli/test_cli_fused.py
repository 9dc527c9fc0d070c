"""A fused backend (``-b placeholder+mfcc``) through embed, evaluate, train and predict."""

from __future__ import annotations

import csv

from _cli_data import DIGITS


def test_evaluate_train_and_predict_with_a_fused_backend(cli, digits_dir, tmp_path, cache_dir):
    from earmark.backends import get_backend
    from earmark.learners import PartsClassifier
    from earmark.models import load_model
    from earmark.store import open_store

    # Each part is cached under its own key; the second part's parameter comes as PART.NAME.
    embedded = cli("embed", digits_dir, "-b", "placeholder+mfcc", "-p", "mfcc.n_mfcc=13", "--json")
    assert embedded.code == 0, embedded.stderr
    assert embedded.json()["backend"]["dimension"] == 16 + 6 * 13
    store = open_store(cache_dir)
    n_files = embedded.json()["items"]
    assert store.count(get_backend("mfcc", n_mfcc=13).cache_key()) == n_files
    assert store.count(get_backend("placeholder").cache_key()) == n_files

    evaluated = cli("evaluate", digits_dir, "-b", "placeholder+mfcc", "-p", "mfcc.n_mfcc=13",
                    "-o", tmp_path / "eval", "--json")
    assert evaluated.code == 0, evaluated.stderr
    result = evaluated.json()
    assert result["learner_params"]["blocks"] == [16, 78]
    assert result["accuracy_mean"] > 1 / len(DIGITS)

    model_path = tmp_path / "fused.earmark"
    trained = cli("train", digits_dir, "-b", "placeholder+mfcc", "-p", "mfcc.n_mfcc=13",
                  "-o", model_path, "-q")
    assert trained.code == 0, trained.stderr
    model = load_model(model_path)
    # logreg on a fused backend: one regression per part, log-probabilities averaged.
    parts = model.pipeline.named_steps["classifier"].estimators_[0]
    assert isinstance(parts, PartsClassifier) and tuple(parts.blocks) == (16, 78)
    assert len(parts.estimators_) == 2
    assert model.backend().cache_key() == get_backend(
        "placeholder+mfcc", **{"mfcc.n_mfcc": 13}).cache_key()

    files = sorted((digits_dir / "recordings").glob("*.wav"))[:4]
    out = tmp_path / "predictions.csv"
    predicted = cli("predict", model_path, *files, "-o", out, "-q")
    assert predicted.code == 0, predicted.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and all(row["label"] in DIGITS for row in rows)


def test_a_bad_part_parameter_is_one_clean_message(cli, digits_dir):
    run = cli("embed", digits_dir, "-b", "placeholder+mfcc", "-p", "hop_s=1")
    assert run.code != 0
    assert "names no part" in run.stderr and "Traceback" not in run.stderr
