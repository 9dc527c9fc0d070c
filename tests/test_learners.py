"""Learners: plain scikit-learn pipelines that learn digits from real MFCC embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

from earmark.exceptions import ParameterError
from earmark.learners import LEARNERS, fit_learner, make_learner


# Small fits on the FSDD embeddings: one BLAS thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_blas_thread")

#: The hierarchical prototype learner needs a taxonomy: digits grouped by parity.
PARITY = {str(d): "even" if d % 2 == 0 else "odd" for d in range(10)}


def _params(name: str) -> dict:
    return {"taxonomy": PARITY} if name == "prototype-hierarchical" else {}


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_clone_keeps_parameters(name):
    learner = make_learner(name, random_state=7, **_params(name))
    copy = clone(learner)
    assert repr(copy.get_params()) == repr(learner.get_params())


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_tells_an_unseen_speaker_digits_apart(fsdd, name):
    """Trained on five speakers, each learner beats chance (10 %) fourfold on the sixth.

    Measured: 57.5 % (knn) to 87.5 % (logreg) on theo.
    """
    train, test = fsdd.speakers != "theo", fsdd.speakers == "theo"
    fitted, notes = fit_learner(make_learner(name, **_params(name)), fsdd.X[train], fsdd.y[train])
    assert notes == []
    accuracy = np.mean(fitted.predict(fsdd.X[test]) == fsdd.y[test])
    assert accuracy > 0.4, f"{name}: {accuracy:.1%} on an unseen speaker"
    P = fitted.predict_proba(fsdd.X[test])
    assert P.shape == (test.sum(), 10)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    assert fitted.classes_.tolist() == [str(d) for d in range(10)]


def test_grid_search_runs_on_a_learner(fsdd):
    search = GridSearchCV(make_learner("logreg"), {"classifier__estimator__C": [0.1, 1.0]}, cv=GroupKFold(3))
    search.fit(fsdd.X, fsdd.y, groups=fsdd.speakers)
    # Scored on held-out speakers only (GroupKFold), and well above chance (10 %).
    assert search.best_score_ > 0.3


def test_unknown_learner_lists_the_choices():
    with pytest.raises(ParameterError, match="unknown learner 'xgboost'.*logreg.*random-forest"):
        make_learner("xgboost")


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match="'n_trees'.*n_estimators"):
        make_learner("random-forest", n_trees=10)


def test_hierarchical_prototypes_need_a_taxonomy():
    with pytest.raises(ParameterError, match="needs taxonomy"):
        make_learner("prototype-hierarchical")


def test_parameters_reach_the_classifier():
    assert make_learner("logreg", C=0.01).named_steps["classifier"].estimator.C == 0.01
    assert make_learner("svm-rbf", C=3.0).named_steps["classifier"].estimator.C == 3.0


def _per_class(fsdd, k):
    index = np.concatenate([np.flatnonzero(fsdd.y == d)[:k] for d in np.unique(fsdd.y)])
    return fsdd.X[index], fsdd.y[index]


def test_knn_with_fewer_examples_than_neighbours_is_adapted_and_says_so(fsdd):
    X, y = _per_class(fsdd, 1)[0][:3], _per_class(fsdd, 1)[1][:3]
    learner = make_learner("knn")
    fitted, notes = fit_learner(learner, X, y)
    assert fitted.named_steps["classifier"].estimator.n_neighbors == 3
    assert learner.named_steps["classifier"].estimator.n_neighbors == 5  # the template is untouched
    assert any("n_neighbors lowered from 5 to 3" in note for note in notes)
    assert fitted.predict(X).tolist() == y.tolist()


def test_svm_with_two_examples_per_class_calibrates_on_two_folds(fsdd):
    X, y = _per_class(fsdd, 2)
    fitted, notes = fit_learner(make_learner("svm-rbf"), X, y)
    assert notes == ["calibration folds lowered from 5 to 2 (smallest class)"]
    np.testing.assert_allclose(fitted.predict_proba(fsdd.X[:5]).sum(axis=1), 1.0, rtol=1e-6)


def test_one_class_with_one_example_is_named_and_the_rest_calibrated(fsdd):
    keep = (fsdd.y != "0") | (np.arange(len(fsdd.y)) == np.flatnonzero(fsdd.y == "0")[0])
    X, y, speakers = fsdd.X[keep], fsdd.y[keep], fsdd.speakers[keep]
    fitted, notes = fit_learner(make_learner("logreg"), X, y, groups=speakers)
    single = ("1 class with 1 training example: probabilities calibrated by one temperature "
              "on the other classes' held-out scores")
    n_speakers = np.unique(speakers).size
    lowered = [f"calibration folds lowered from 5 to {n_speakers} (groups)"] * (n_speakers < 5)
    assert notes == [single, *lowered]
    assert fitted.named_steps["classifier"].method_ == "temperature"


def test_svm_with_one_example_per_class_says_its_probabilities_are_uncalibrated(fsdd):
    X, y = _per_class(fsdd, 1)
    fitted, notes = fit_learner(make_learner("svm-linear"), X, y)
    assert notes == ["10 classes with 1 training example: probabilities not calibrated"]
    assert fitted.named_steps["classifier"].method_ == "none"
    assert set(fitted.predict(fsdd.X)) <= set(y)


def test_a_single_class_is_refused(fsdd):
    with pytest.raises(ParameterError, match="at least 2 classes"):
        fit_learner(make_learner("logreg"), fsdd.X[:4], ["0"] * 4)


def test_fused_blocks_choose_late_fusion_for_logreg_and_block_scaling_for_others():
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from earmark.learners import BlockScaler, PartsClassifier, make_learner

    logreg = make_learner("logreg", blocks=[2, 6])
    assert isinstance(logreg.named_steps["scale"], StandardScaler)
    assert isinstance(logreg.named_steps["classifier"].estimator, PartsClassifier)
    svm = make_learner("svm-linear", blocks=[2, 6])
    assert isinstance(svm.named_steps["scale"], BlockScaler)
    assert "scale" not in make_learner("random-forest", blocks=[2, 6]).named_steps
    # One informative 2-d part beside a 6-d part of noise: each part has its own say.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    X = np.c_[y[:, None] * 2.0 + rng.normal(size=(60, 2)), rng.normal(size=(60, 6)) * 100]
    model = PartsClassifier(blocks=(2, 6)).fit(X, y)
    assert (model.predict(X) == y).mean() > 0.9
    with pytest.raises(ValueError, match="summing to 8 columns"):
        PartsClassifier(blocks=(2, 5)).fit(X, y)
