"""Label shift: the target's class proportions estimated without labels, class-weighted
alignment, prototype adaptation, and ``auto`` choosing a method or none.

MFCC statistics of 240 FSDD recordings (``fsdd`` fixture). A target with a known label
shift and no change of recording conditions is cut from the source speakers' own
takes: takes 0-1 train, takes 2-3 of a few digits only are the target, so the true
proportions are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from earmark.adaptation import (
    DomainStandardizer,
    LabelShiftAdapter,
    PrototypeAdapter,
    ConsensusAdapter,
    adapt_model,
    consensus,
    correct_posteriors,
    estimate_target_priors,
    fit_adapter,
)
from earmark.exceptions import ParameterError
from earmark.model import EarmarkModel

pytestmark = pytest.mark.usefixtures("one_blas_thread")

SPEAKERS = ("george", "jackson", "nicolas", "theo")
#: Target share per digit: three digits make up 80 % of it.
SHARE = {"0": 8, "1": 8, "2": 8, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1, "8": 1, "9": 1}


@pytest.fixture(scope="module")
def label_shift(fsdd):
    """(Xs, ys, Xt, yt): same speakers, other takes, proportions changed."""
    takes = np.array([int(path.stem.split("_")[2]) for path in fsdd.paths])
    mine = np.isin(fsdd.speakers, SPEAKERS)
    source = mine & (takes < 2)
    rng = np.random.default_rng(0)
    target = []
    for digit, count in SHARE.items():
        members = np.flatnonzero(mine & (takes >= 2) & (fsdd.y == digit))
        target += list(rng.choice(members, count, replace=False))
    target = np.array(sorted(target))
    return fsdd.X[source], fsdd.y[source], fsdd.X[target], fsdd.y[target]


def _proportions(y, classes):
    return np.array([np.mean(y == label) for label in classes])


# ------------------------------------------------------------------ the estimate
def test_em_recovers_the_proportions_of_a_label_shifted_target(label_shift):
    Xs, ys, Xt, yt = label_shift
    model = LabelShiftAdapter(align=None).fit(Xs, ys, X_target=Xt)
    true = _proportions(yt, model.classes_)
    before = np.abs(model.source_priors_ - true).sum() / 2
    after = np.abs(model.target_priors_ - true).sum() / 2
    assert after < 0.5 * before
    assert model.target_priors_.sum() == pytest.approx(1.0)
    # The three common digits are found to be the common ones.
    assert set(model.classes_[np.argsort(-model.target_priors_)[:3]]) == {"0", "1", "2"}


def test_em_and_bayes_correction_on_hand_made_posteriors():
    P = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8]] * 2)
    priors, n_iter = estimate_target_priors(P, np.array([0.5, 0.5]))
    assert priors[0] > 0.8 and n_iter >= 1
    corrected = correct_posteriors(P, [0.5, 0.5], [0.8, 0.2])
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)
    assert corrected[-1, 1] < P[-1, 1]
    with pytest.raises(ParameterError, match="posteriors of shape"):
        estimate_target_priors(P, np.array([0.3, 0.3, 0.4]))


def test_weighted_source_statistics_are_those_of_the_target_proportions(label_shift):
    Xs, ys, Xt, yt = label_shift
    classes = np.unique(ys)
    source, target = _proportions(ys, classes), _proportions(yt, classes)
    weights = (target / source)[np.searchsorted(classes, ys)]
    weighted = DomainStandardizer().fit(Xs, X_target=Xt, sample_weight=weights)
    # The source's mean with the target's proportions: the target-weighted class means.
    class_means = np.array([Xs[ys == label].mean(0) for label in classes])
    np.testing.assert_allclose(weighted.source_mean_, target @ class_means, rtol=1e-6, atol=1e-6)
    plain = DomainStandardizer().fit(Xs, X_target=Xt)
    np.testing.assert_allclose(plain.source_mean_, source @ class_means, rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError, match="sample weights"):
        DomainStandardizer().fit(Xs, X_target=Xt, sample_weight=-weights)


def test_class_weighted_standardisation_beats_plain_under_label_shift(label_shift):
    """Plain standardisation drags an imbalanced target onto a balanced mean; weighting
    the source to the estimated proportions does not."""
    from earmark.learners import make_learner

    Xs, ys, Xt, yt = label_shift
    probe = make_learner("logreg").fit(Xs, ys)
    plain = (probe.predict(DomainStandardizer().fit(Xs, X_target=Xt).transform(Xt)) == yt).mean()
    adapter = LabelShiftAdapter(align="standardize").fit(Xs, ys, X_target=Xt)
    weighted = (adapter.predict(Xt) == yt).mean()
    assert weighted > plain
    assert len(adapter.prior_history_) == adapter.n_rounds


# ------------------------------------------------------------------- prototypes
def test_prototype_adapter_estimates_proportions_and_moves_prototypes(label_shift):
    Xs, ys, Xt, yt = label_shift
    model = PrototypeAdapter().fit(Xs, ys, X_target=Xt)
    true = _proportions(yt, model.classes_)
    assert np.abs(model.target_priors_ - true).sum() < np.abs(model.source_priors_ - true).sum()
    assert not np.allclose(model.prototypes_, model.model_.prototypes_)
    unmoved = PrototypeAdapter(n_iter=0).fit(Xs, ys, X_target=Xt)
    np.testing.assert_allclose(unmoved.prototypes_, unmoved.model_.prototypes_)


def test_prototype_adapter_follows_a_new_speaker(fsdd):
    source = np.isin(fsdd.speakers, ("george", "jackson", "nicolas"))
    target = fsdd.speakers == "lucas"
    Xs, ys, Xt, yt = fsdd.X[source], fsdd.y[source], fsdd.X[target], fsdd.y[target]
    adapted = PrototypeAdapter().fit(Xs, ys, X_target=Xt)
    unmoved = PrototypeAdapter(n_iter=0).fit(Xs, ys, X_target=Xt)
    assert (adapted.predict(Xt) == yt).mean() > (unmoved.predict(Xt) == yt).mean()


# ------------------------------------------------------------------------- auto
def test_consensus_changes_a_label_only_where_most_methods_agree():
    votes = {
        "none": np.array(["a", "a", "a", "a"]),
        "x": np.array(["b", "b", "c", "a"]),
        "y": np.array(["b", "c", "c", "b"]),
        "z": np.array(["b", "a", "b", "c"]),
    }
    labels, choice = consensus(votes)
    # item 0: b wins 3-1; item 1: a tie goes to none; item 2: c wins 2-1-1; item 3: a, b
    # and c tie, so the unadapted label stays.
    assert labels.tolist() == ["b", "a", "c", "a"]
    assert choice.method == "consensus" and choice.changed == pytest.approx(0.5)
    assert choice.agreement["x"] == pytest.approx(0.75)
    assert choice.hurting() == []
    unchanged, nothing = consensus({"none": votes["none"], "x": votes["x"]})
    assert nothing.method == "none" and unchanged.tolist() == votes["none"].tolist()
    with pytest.raises(ParameterError, match="unadapted"):
        consensus({"x": votes["x"]})


def test_auto_adapts_across_speakers_and_explains_why(fsdd):
    source = np.isin(fsdd.speakers, ("george", "jackson", "nicolas"))
    target = fsdd.speakers == "lucas"
    Xs, ys, Xt, yt = fsdd.X[source], fsdd.y[source], fsdd.X[target], fsdd.y[target]
    auto = ConsensusAdapter().fit(Xs, ys, X_target=Xt)
    plain = auto.members_["none"]
    assert auto.choice_["chosen"] == "consensus"
    assert "closest single method" in auto.choice_["reason"]
    assert (auto.predict(Xt) == yt).mean() > (plain.predict(Xt) == yt).mean() + 0.1
    P = auto.predict_proba(Xt)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(auto.classes_[P.argmax(axis=1)], auto.predict(Xt))
    with pytest.raises(ParameterError, match="cannot let"):
        ConsensusAdapter(candidates=("dann",)).fit(Xs, ys, X_target=Xt)


@pytest.mark.parametrize("method", ["priors", "standardize+priors", "prototypes", "auto"])
def test_new_methods_make_models_that_save_load_and_record_proportions(method, fsdd, tmp_path):
    source = np.isin(fsdd.speakers, ("george", "jackson", "nicolas"))
    target = fsdd.speakers == "lucas"
    Xs, ys, Xt = fsdd.X[source], fsdd.y[source], fsdd.X[target]
    model = EarmarkModel.train(Xs, ys, backend=fsdd.identity)
    adapted = adapt_model(model, Xt, method=method, X_source=Xs, y_source=ys)
    record = adapted.training["adaptation"]
    assert record["method"] == method
    if method == "auto":
        assert record["auto"]["chosen"] == "consensus" and record["auto"]["reason"]
        assert set(record["target_priors_by_method"]) >= {"priors", "prototypes"}
    else:
        assert set(record["target_priors"]) == set(model.classes_.tolist())
        assert sum(record["target_priors"].values()) == pytest.approx(1.0)
        assert "none" in record["agreement"] and method in record["agreement"]
    loaded = EarmarkModel.load(adapted.save(tmp_path / f"{method}.earmark"))
    np.testing.assert_array_equal(loaded.predict(Xt), adapted.predict(Xt))
    assert list(loaded.classes_) == list(model.classes_)


def test_label_shift_methods_read_no_target_labels(label_shift):
    Xs, ys, Xt, _ = label_shift
    with pytest.raises(TypeError):
        fit_adapter("standardize+priors", Xs, ys, Xt, y_target=ys[: len(Xt)])
