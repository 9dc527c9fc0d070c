"""NetworkClassifier: refusals, the group-aware early-stopping split, and evaluation on
the same splits as any learner."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from earmark.evaluation import cross_validate  # noqa: E402
from earmark.exceptions import ParameterError, TooFewExamplesError  # noqa: E402
from earmark.networks import NetworkClassifier, validation_split  # noqa: E402


def _toy(n_per_class=12, frames=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(["a", "b"], n_per_class)
    X = rng.normal(size=(len(y), 1, frames, 16)).astype(np.float32)
    X[y == "b", :, :, :6] += 2.0
    groups = np.tile(np.arange(6), len(y) // 6)
    return X, y, groups


def test_refuses_a_class_with_one_example_and_names_it():
    X, y, _ = _toy()
    y = y.astype(object)
    y[0] = "lonely"
    with pytest.raises(TooFewExamplesError, match=r"at least 2 training items per class.*'lonely' has 1"):
        NetworkClassifier("timbre", epochs=1).fit(X, y)


def test_refusal_is_a_parameter_error_for_callers_that_catch_those():
    assert issubclass(TooFewExamplesError, ParameterError)


def test_validation_takes_whole_groups_and_keeps_every_class_trained():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, size=200)
    groups = rng.integers(0, 20, size=200)
    fit, held = validation_split(targets, groups, size=0.2, seed=3)
    assert not set(fit) & set(held) and len(fit) + len(held) == 200
    assert not set(groups[fit]) & set(groups[held])
    assert set(targets[fit]) == set(range(4))
    assert 20 <= len(held) <= 60


def test_a_single_group_leaves_nothing_to_validate_on_and_training_still_runs():
    X, y, _ = _toy(n_per_class=4)
    net = NetworkClassifier("timbre", epochs=2).fit(X, y, groups=np.zeros(len(y)))
    assert net.training["validation_rows"] == [] and net.training["epochs_run"] == 2


def test_cross_validation_never_stops_early_on_a_test_group(monkeypatch):
    """The split the trainer used, read back from each fitted network: its validation
    rows hold groups of the training part only, none of the test fold, and none of the
    rows it trained on."""
    X, y, groups = _toy(n_per_class=18)
    seen = []
    original = NetworkClassifier.fit

    def spy(self, X_part, y_part, *, groups=None):
        out = original(self, X_part, y_part, groups=groups)
        seen.append((X_part, np.asarray(groups), self.training))
        return out

    monkeypatch.setattr(NetworkClassifier, "fit", spy)
    learner = NetworkClassifier("timbre", input_shape=X.shape[1:], epochs=2)
    result = cross_validate(X.reshape(len(X), -1), y, groups=groups, learner=learner, n_splits=3)
    assert len(seen) == len(result.splits) == 3
    for split, (X_part, part_groups, summary) in zip(result.splits, seen):
        assert len(X_part) == len(split.train)
        held = np.asarray(summary["validation_rows"], dtype=int)
        trained = np.asarray(summary["fit_rows"], dtype=int)
        assert held.size > 0
        assert not set(held) & set(trained) and len(held) + len(trained) == len(split.train)
        held_groups = set(groups[split.train][held].tolist())
        assert held_groups == set(part_groups[held].tolist())
        assert not held_groups & set(groups[split.test].tolist()), "a test group decided when to stop"
        assert not held_groups & set(groups[split.train][trained].tolist()), "a group on both sides"
        assert sorted(map(str, held_groups)) == sorted(map(str, summary["validation_groups"]))


def test_flattened_inputs_need_their_shape():
    X, y, _ = _toy()
    with pytest.raises(ParameterError, match="input_shape"):
        NetworkClassifier("timbre", epochs=1).fit(X.reshape(len(X), -1), y)


def test_learns_an_easy_difference():
    X, y, groups = _toy(n_per_class=30)
    net = NetworkClassifier("vgg-small", epochs=15, random_state=0).fit(X, y, groups=groups)
    assert (net.predict(X) == y).mean() > 0.8
