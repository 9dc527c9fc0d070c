"""Answers at every taxonomy level from a flat model's probabilities (real instruments)."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.exceptions import ParameterError
from earmark.levels import level_answers

BIRDS = {"robin": "thrush", "blackbird": "thrush", "crow": "corvid", "thrush": "bird",
         "corvid": "bird"}


def test_groups_sum_their_leaves_and_backoff_climbs_until_sure():
    proba = np.array([[0.40, 0.35, 0.25], [0.9, 0.05, 0.05], [0.35, 0.2, 0.45]])
    answers = level_answers(proba, ["robin", "blackbird", "crow"], BIRDS, min_proba=0.6)
    assert answers.levels == ["leaf", "level 1", "level 2"]
    assert answers.labels["leaf"].tolist() == ["robin", "robin", "crow"]
    assert answers.labels["level 1"].tolist() == ["thrush", "thrush", "thrush"]
    assert answers.scores["level 1"].tolist() == pytest.approx([0.75, 0.95, 0.55])
    assert answers.backoff.tolist() == ["thrush", "robin", "bird"]
    assert answers.backoff_level.tolist() == ["level 1", "leaf", "level 2"]
    assert answers.rows()[0]["level 1 score"] == pytest.approx(0.75)


def test_a_flat_model_on_real_instruments_answers_by_family(philharmonia_dir):
    """Logistic regression on MFCC of Philharmonia, families from the shipped taxonomy:
    family accuracy is at least the instrument accuracy (a right instrument is a right
    family), on held-out instrument+dynamic groups."""
    from earmark.backends import get_backend
    from earmark.datasets import load_dataset
    from earmark.learners import fit_learner, make_learner
    from earmark.pipeline import clip_embeddings
    from earmark.store import MemoryStore
    from earmark.taxonomy import load_taxonomy

    manifest = load_dataset(philharmonia_dir)
    keep = np.arange(len(manifest.y)) % 3 == 0  # 160 clips: fast on 2 shared cores
    manifest = manifest.subset(keep)
    X, ok, _ = clip_embeddings(manifest, get_backend("mfcc"), MemoryStore(), progress=False)
    y, groups = manifest.y[ok], manifest.groups[ok]
    test = np.isin(groups, np.unique(groups)[::4])
    model, _ = fit_learner(make_learner("logreg"), X[~test], y[~test], groups=groups[~test])
    taxonomy = load_taxonomy("philharmonia")
    answers = level_answers(model.predict_proba(X[test]), model.classes_, taxonomy)
    family = np.array([taxonomy.at_level(label, 1) for label in y[test]], dtype=object)
    leaf_accuracy = np.mean(answers.labels["leaf"] == y[test])
    family_accuracy = np.mean(answers.labels["level 1"] == family)
    assert family_accuracy >= leaf_accuracy and family_accuracy > 0.5


def test_bad_input_is_refused():
    with pytest.raises(ParameterError, match="min_proba"):
        level_answers([[1.0]], ["robin"], BIRDS, min_proba=0)
    with pytest.raises(ParameterError, match="shape"):
        level_answers([[0.5, 0.5]], ["robin"], BIRDS)
