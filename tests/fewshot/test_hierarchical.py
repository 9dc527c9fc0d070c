"""Hierarchical prototypes on real embeddings: digits grouped by parity, instruments by family."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.exceptions import ParameterError
from earmark.fewshot.hierarchical import HierarchicalPrototypeClassifier
from earmark.fewshot.prototypes import PrototypeClassifier

pytestmark = pytest.mark.usefixtures("one_blas_thread")

PARITY = {str(d): "even" if d % 2 == 0 else "odd" for d in range(10)}
DEEP = {**PARITY, "even": "number", "odd": "number"}


def _split(fsdd, held_out="theo"):
    train, test = fsdd.speakers != held_out, fsdd.speakers == held_out
    return fsdd.X[train], fsdd.y[train], fsdd.X[test], fsdd.y[test]


def test_group_prototypes_are_means_of_their_childrens_prototypes(fsdd):
    X, y, _, _ = _split(fsdd)
    model = HierarchicalPrototypeClassifier(DEEP).fit(X, y)
    leaf = model.leaf_.prototypes_
    even = [i for i, label in enumerate(model.classes_) if int(label) % 2 == 0]
    assert model.level_classes_[0].tolist() == ["even", "odd"]
    np.testing.assert_allclose(model.level_prototypes_[0][0], leaf[even].mean(axis=0))
    np.testing.assert_allclose(
        model.level_prototypes_[1][0], model.level_prototypes_[0].mean(axis=0)
    )


def test_leaf_weight_alone_is_flat_prototypes(fsdd):
    X, y, Xq, _ = _split(fsdd)
    flat = PrototypeClassifier().fit(X, y)
    model = HierarchicalPrototypeClassifier(PARITY, level_weights=(1.0,)).fit(X, y)
    assert model.predict(Xq).tolist() == flat.predict(Xq).tolist()
    np.testing.assert_allclose(model.predict_proba(Xq), flat.predict_proba(Xq))


def test_by_default_the_leaf_is_flat_and_combined_groups_use_every_level(fsdd):
    X, y, Xq, _ = _split(fsdd)
    flat = PrototypeClassifier().fit(X, y)
    model = HierarchicalPrototypeClassifier(PARITY, group_rule="combined").fit(X, y)
    assert model.predict(Xq).tolist() == flat.predict(Xq).tolist()
    combined = HierarchicalPrototypeClassifier(PARITY, combine_leaf=True).fit(X, y)
    np.testing.assert_allclose(
        model.predict_levels_proba(Xq)["level 1"], combined.predict_levels_proba(Xq)["level 1"]
    )
    assert not np.allclose(model.predict_proba(Xq), combined.predict_proba(Xq))


def test_levels_are_reported_and_consistent(fsdd):
    X, y, Xq, yq = _split(fsdd)
    model = HierarchicalPrototypeClassifier(PARITY, combine_leaf=True).fit(X, y)
    levels = model.predict_levels(Xq)
    assert list(levels) == ["leaf", "level 1"]
    probabilities = model.predict_levels_proba(Xq)
    np.testing.assert_allclose(probabilities["level 1"].sum(axis=1), 1.0)
    # Group probability is the sum of its leaves' probabilities.
    odd = np.isin(model.classes_, list("13579"))
    np.testing.assert_allclose(
        probabilities["level 1"][:, 1], probabilities["leaf"][:, odd].sum(axis=1)
    )
    parity = np.array([PARITY[label] for label in yq])
    leaf_accuracy = np.mean(levels["leaf"] == yq)
    coarse_accuracy = np.mean(levels["level 1"] == parity)
    assert leaf_accuracy > 0.4 and coarse_accuracy > 0.6, (leaf_accuracy, coarse_accuracy)


def test_backoff_answers_coarse_when_the_leaf_is_uncertain(fsdd):
    X, y, Xq, _ = _split(fsdd)
    model = HierarchicalPrototypeClassifier(PARITY).fit(X, y)
    sure = model.predict_backoff(Xq, min_proba=1e-9)
    assert sure.tolist() == model.predict(Xq).tolist()
    unsure = model.predict_backoff(Xq, min_proba=1.0)
    assert set(unsure) <= {"even", "odd"}
    middle = model.predict_backoff(Xq, min_proba=0.6)
    leaf_p = model.predict_proba(Xq).max(axis=1)
    assert all((label in PARITY) == (p >= 0.6) for label, p in zip(middle, leaf_p))


def test_shipped_family_taxonomy_on_real_instruments(philharmonia_dir):
    from earmark.backends import get_backend
    from earmark.datasets import load_dataset
    from earmark.pipeline import clip_embeddings
    from earmark.store import MemoryStore

    manifest = load_dataset(philharmonia_dir)
    keep = np.zeros(len(manifest), dtype=bool)
    for label in manifest.classes:
        keep[np.flatnonzero(manifest.y == label)[:6]] = True
    manifest = manifest.subset(keep)
    X, ok, _ = clip_embeddings(manifest, get_backend("mfcc"), MemoryStore())
    model = HierarchicalPrototypeClassifier("philharmonia").fit(X, manifest.y)
    assert set(model.level_classes_[0]) == {"woodwinds", "brass", "bowed strings"}


def test_classes_outside_the_taxonomy_are_named(fsdd):
    X, y, _, _ = _split(fsdd)
    with pytest.raises(ParameterError, match="no parent for 2 of 10 classes"):
        HierarchicalPrototypeClassifier({k: v for k, v in PARITY.items() if k not in "01"}).fit(X, y)
    with pytest.raises(ParameterError, match="needs a taxonomy"):
        HierarchicalPrototypeClassifier().fit(X, y)
    with pytest.raises(ParameterError, match="level_weights"):
        HierarchicalPrototypeClassifier(PARITY, level_weights=(0.0, 1.0)).fit(X, y)


def test_groups_by_default_sum_the_leaf_probabilities(fsdd):
    """A group's probability is the sum of its leaves' (the flat answer mapped to its
    group, softly), so the group answer cannot contradict a confident leaf."""
    X, y, Xq, _ = _split(fsdd)
    model = HierarchicalPrototypeClassifier(PARITY).fit(X, y)
    leaf = model.predict_proba(Xq)
    parity = model.predict_levels_proba(Xq)["level 1"]
    even = np.isin(model.classes_, [d for d, p in PARITY.items() if p == "even"])
    np.testing.assert_allclose(parity[:, list(model.level_classes_[0]).index("even")],
                               leaf[:, even].sum(axis=1))
    confident = leaf.max(axis=1) > 0.5
    parents = np.array([PARITY[label] for label in model.predict(Xq)])
    assert (model.predict_levels(Xq)["level 1"][confident] == parents[confident]).all()
    with pytest.raises(ParameterError, match="group_rule"):
        HierarchicalPrototypeClassifier(PARITY, group_rule="vote").fit(X, y).predict_levels(Xq)
