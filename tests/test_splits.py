"""Split planning on real FSDD labels: official folds, then groups, then random (warned)."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.exceptions import ParameterError
from earmark.splits import Split, SplitPlan, make_splits


def _assert_groups_apart(splits, groups):
    for split in splits:
        assert set(groups[split.train]).isdisjoint(groups[split.test]), split.name
        assert np.intersect1d(split.train, split.test).size == 0


def _takes(fsdd):
    return np.array([path.stem.split("_")[2] for path in fsdd.paths])


def test_few_speakers_are_each_left_out_once(fsdd):
    plan = make_splits(fsdd.y, groups=fsdd.speakers, n_splits=6)
    assert isinstance(plan, SplitPlan) and all(isinstance(s, Split) for s in plan.splits)
    assert plan.strategy == "leave one group out (6 groups)"
    assert [s.name for s in plan.splits] == [f"group {s}" for s in sorted(set(fsdd.speakers))]
    _assert_groups_apart(plan.splits, fsdd.speakers)
    for split in plan.splits:
        assert len(set(fsdd.speakers[split.test])) == 1
        assert split.train.size + split.test.size == len(fsdd.y)
    assert plan.warnings == []


def test_more_speakers_than_folds_gives_grouped_folds(fsdd):
    plan = make_splits(fsdd.y, groups=fsdd.speakers, n_splits=3)
    assert plan.strategy.startswith("stratified group 3-fold")
    assert len(plan.splits) == 3
    _assert_groups_apart(plan.splits, fsdd.speakers)
    tested = np.concatenate([split.test for split in plan.splits])
    assert sorted(tested.tolist()) == list(range(len(fsdd.y)))


def test_official_folds_are_each_held_out_once(fsdd):
    takes = _takes(fsdd)
    plan = make_splits(fsdd.y, folds=takes)
    assert plan.strategy == "official folds, each held out once (4 folds)"
    assert [split.name for split in plan.splits] == ["fold 0", "fold 1", "fold 2", "fold 3"]
    for split in plan.splits:
        assert set(takes[split.test]) == {split.name.split()[-1]}
    # Folds win over groups, which are then only checked: takes put every speaker on
    # both sides, and the plan says so rather than regrouping.
    checked = make_splits(fsdd.y, folds=takes, groups=fsdd.speakers)
    assert [s.name for s in checked.splits] == [s.name for s in plan.splits]
    assert len(checked.warnings) == 4 and "6 group(s) on both sides" in checked.warnings[0]


def test_official_train_test_lists_give_one_split(fsdd):
    role = np.where(fsdd.speakers == "george", "test", "train")
    role[fsdd.speakers == "lucas"] = "validation"
    plan = make_splits(fsdd.y, folds=role)
    assert plan.strategy == "official train/test split (40 test items)"
    assert "40 validation items were used for training" in plan.warnings[0]
    (split,) = plan.splits
    np.testing.assert_array_equal(split.test, np.flatnonzero(role == "test"))
    np.testing.assert_array_equal(split.train, np.flatnonzero(role != "test"))


def test_train_only_items_are_never_tested(fsdd):
    takes = _takes(fsdd).astype(object)
    takes[fsdd.speakers == "theo"] = None
    plan = make_splits(fsdd.y, folds=takes)
    assert plan.strategy == "official folds, each held out once (4 folds); 40 items only ever train"
    tested = np.concatenate([split.test for split in plan.splits])
    assert not set(tested.tolist()) & set(np.flatnonzero(fsdd.speakers == "theo").tolist())


def test_a_random_split_is_the_last_resort_and_warns(fsdd):
    plan = make_splits(fsdd.y)
    assert plan.strategy == "stratified 5-fold at random (may leak)"
    assert any("leak" in warning for warning in plan.warnings)
    # Only 2 items per class: the folds shrink to fit, and the plan says so.
    small = make_splits(["a", "a", "b", "b"])
    assert small.strategy == "stratified 2-fold at random (may leak)"
    assert "n_splits lowered from 5 to 2" in small.warnings[1]


def test_a_class_missing_from_training_is_warned_about():
    plan = make_splits(["a", "a", "b", "b", "c"], groups=[1, 1, 2, 2, 3])
    assert any("class(es) c have no training example" in w for w in plan.warnings)


def test_bad_input_is_refused_with_what_was_expected(fsdd):
    with pytest.raises(ParameterError, match="groups of shape"):
        make_splits(fsdd.y, groups=fsdd.speakers[:5])
    with pytest.raises(ParameterError, match="folds of shape"):
        make_splits(fsdd.y, folds=fsdd.speakers[:5])
    with pytest.raises(ParameterError, match="at least 2 distinct groups"):
        make_splits(fsdd.y, groups=np.zeros(240))
    with pytest.raises(ParameterError, match="at least 2 distinct folds"):
        make_splits(fsdd.y, folds=np.zeros(240))
    with pytest.raises(ParameterError, match="nothing is left to train on"):
        make_splits(fsdd.y, folds=["test"] * 240)
    with pytest.raises(ParameterError, match="n_splits >= 2"):
        make_splits(fsdd.y, n_splits=1)
    with pytest.raises(ParameterError, match="at least 2 labels"):
        make_splits(fsdd.y[:1])
    with pytest.raises(ParameterError, match="single item"):
        make_splits(["a", "b", "b"])
