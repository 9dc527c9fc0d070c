"""``earmark evaluate --learner graph`` and ``earmark train --learner graph``: a graph
tagger over aiSFX's frozen maps, from the command line, on real Philharmonia notes."""

from __future__ import annotations

import json
import shutil

import pytest

from earmark.backends.aisfx import AisfxBackend

pytestmark = pytest.mark.skipif(
    not AisfxBackend.is_available(), reason="the graph tagger reads aiSFX maps"
)
INSTRUMENTS = ("flute", "trombone", "cello")


@pytest.fixture
def notes_dir(philharmonia_dir, tmp_path):
    root = tmp_path / "notes"
    for name in INSTRUMENTS:
        (root / name).mkdir(parents=True)
        for path in sorted((philharmonia_dir / name).glob("*.mp3"))[:6]:
            shutil.copy(path, root / name / path.name)
    return root


def test_evaluate_cross_validates_the_graph_learner(cli, notes_dir, tmp_path):
    run = cli("evaluate", notes_dir, "--learner", "graph", "--splits", "3", "-o", tmp_path / "out", "--json")

    assert run.code == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["learner"] == "graph" and report["encoder"] == "aisfx"
    assert len(report["splits"]) == 3
    assert report["ece"] is not None  # calibrated out-of-fold probabilities were scored
    assert report["accuracy_mean"] > 0.5  # three instruments: chance is a third
    assert 0 < report["learned_parameters"] < 94_364  # the prototype network's, on 12 classes
    for name in ("json", "confusion_matrix", "reliability"):
        assert (tmp_path / "out").joinpath(report["files"][name]).exists()


def test_train_writes_a_graph_tagger_that_predict_reads(cli, notes_dir, tmp_path):
    model = tmp_path / "tagger.earmark"
    run = cli("train", notes_dir, "--learner", "graph", "-o", model, "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["kind"] == "graph-tagger"

    clip = sorted(notes_dir.glob("flute/*.mp3"))[0]
    run = cli("predict", model, clip, "--json")
    assert run.code == 0, run.stderr
    assert "flute" in run.stdout


def test_graph_learner_refuses_domains(cli, notes_dir):
    run = cli("evaluate", notes_dir, "--learner", "graph", "--train-domain", "a", "--test-domain", "b")
    assert run.code != 0 and "cross-validated only" in run.stderr
