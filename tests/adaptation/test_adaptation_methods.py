"""Adaptation methods, adapted models and the cross-domain evaluation, on real embeddings.

MFCC statistics of 240 FSDD recordings (``fsdd`` fixture): three speakers are the
source, a fourth the target. The target's labels are used only to score.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from earmark.adaptation import (
    CHOICES,
    DANNClassifier,
    SelfTrainingPrototypes,
    adapt_model,
    evaluate_domains,
    fit_adapter,
)
from earmark.adaptation.plots import plot_domains
from earmark.exceptions import EarmarkError, ParameterError
from earmark.models import EarmarkModel

pytestmark = pytest.mark.usefixtures("one_blas_thread")

SOURCE = ("george", "jackson", "nicolas")
TARGET = "lucas"
SMALL_DANN = dict(hidden_units=32, epochs=15)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def split(fsdd):
    source = np.isin(fsdd.speakers, SOURCE)
    target = fsdd.speakers == TARGET
    return fsdd.X[source], fsdd.y[source], fsdd.X[target], fsdd.y[target]


@pytest.fixture(scope="module")
def model(fsdd, split):
    Xs, ys, _, _ = split
    return EarmarkModel.train(Xs, ys, backend=fsdd.identity)


# ------------------------------------------------------------- never the target labels
def test_shuffled_target_labels_change_no_adapted_prediction(fsdd):
    """The cross-domain evaluation scores with the target labels and adapts without them."""
    rng = np.random.default_rng(0)
    shuffled = fsdd.y.copy()
    target = fsdd.speakers == TARGET
    shuffled[target] = rng.permutation(shuffled[target])
    assert (shuffled[target] != fsdd.y[target]).mean() > 0.5
    kwargs = dict(train_domains=list(SOURCE), test_domains=[TARGET], methods=list(CHOICES),
                  n_permutations=0)
    # dann's network is small here only to keep the test fast.
    runs = []
    for labels in (fsdd.y, shuffled):
        result = evaluate_domains(fsdd.X, labels, fsdd.speakers, **kwargs)
        runs.append(result)
    for method in CHOICES:
        np.testing.assert_array_equal(runs[0].predictions[method], runs[1].predictions[method])
        # What each method reports from the target's audio: its proportions, its agreement.
        for key in ("target_priors", "agreement"):
            assert runs[0].adapted[method][key] == runs[1].adapted[method][key], (method, key)
    assert runs[0].adapted["auto"]["reason"] == runs[1].adapted["auto"]["reason"]
    # ...while the scores, which do read the labels, tell the shuffle.
    assert runs[1].cross_domain.accuracy < runs[0].cross_domain.accuracy


def test_no_method_accepts_target_labels(split):
    Xs, ys, Xt, yt = split
    with pytest.raises(TypeError):
        fit_adapter("standardize", Xs, ys, Xt, y_target=yt)


# ------------------------------------------------------------------- the methods
def test_cross_domain_evaluation_measures_the_gap_and_what_standardisation_wins_back(fsdd):
    result = evaluate_domains(
        fsdd.X, fsdd.y, fsdd.speakers, train_domains=list(SOURCE), test_domains=[TARGET],
        methods=["standardize", "coral"], n_permutations=20,
    )
    assert result.in_domain.accuracy_mean > 0.8
    assert result.gap > 0.3
    standardized = result.adapted["standardize"]
    assert standardized["accuracy"] > result.cross_domain.accuracy + 0.1
    assert 0 < standardized["gap_closed"] <= 1.5
    assert standardized["shift"].domain_accuracy < result.shift.domain_accuracy
    assert set(result.views) == {"before", "standardize", "coral"}
    data = result.to_dict()
    assert data["gap"] == pytest.approx(result.gap)
    assert data["adapted"]["standardize"]["shift"]["verdict"]


def test_cross_domain_evaluation_names_an_unknown_domain(fsdd):
    with pytest.raises(ParameterError, match="no item has domain 'paul'"):
        evaluate_domains(fsdd.X, fsdd.y, fsdd.speakers, train_domains=["george"],
                         test_domains=["paul"])
    with pytest.raises(ParameterError, match="both trained and tested"):
        evaluate_domains(fsdd.X, fsdd.y, fsdd.speakers, train_domains=["george", "theo"],
                         test_domains=["theo"])


def test_selftraining_moves_prototypes_towards_the_target_and_helps_it(split):
    Xs, ys, Xt, yt = split
    plain = SelfTrainingPrototypes(target_weight=0.0).fit(Xs, ys, X_target=Xt)
    adapted = SelfTrainingPrototypes().fit(Xs, ys, X_target=Xt)

    np.testing.assert_allclose(plain.model_.prototypes_, plain.source_prototypes_)
    assert not np.allclose(adapted.model_.prototypes_, adapted.source_prototypes_)
    # At most max_fraction of each predicted class (rounded up) is kept.
    assert 0 < adapted.n_pseudo_labelled_.sum() <= 0.6 * len(Xt) + len(adapted.classes_)
    assert (adapted.predict(Xt) == yt).mean() > (plain.predict(Xt) == yt).mean()


def test_dann_learns_features_that_hide_the_domain(split):
    from earmark.adaptation import domain_shift

    Xs, ys, Xt, _ = split
    plain = DANNClassifier(domain_weight=0.0, **SMALL_DANN).fit(Xs, ys, X_target=Xt)
    adversarial = DANNClassifier(domain_weight=1.0, **SMALL_DANN).fit(Xs, ys, X_target=Xt)
    assert adversarial.history_["domain_loss"][-1] > 0
    assert plain.history_["domain_loss"] == [0.0] * SMALL_DANN["epochs"]
    before = domain_shift(plain.features(Xs), plain.features(Xt), n_permutations=0)
    after = domain_shift(adversarial.features(Xs), adversarial.features(Xt), n_permutations=0)
    assert after.mmd2 < before.mmd2


def test_dann_is_repeatable_and_predicts_without_torch(split, monkeypatch):
    Xs, ys, Xt, _ = split
    first = DANNClassifier(random_state=3, **SMALL_DANN).fit(Xs, ys, X_target=Xt)
    second = DANNClassifier(random_state=3, **SMALL_DANN).fit(Xs, ys, X_target=Xt)
    np.testing.assert_array_equal(first.predict_proba(Xt), second.predict_proba(Xt))
    monkeypatch.setitem(sys.modules, "torch", None)
    assert first.predict(Xt[:3]).shape == (3,)


# ------------------------------------------------------------------ adapted models
def test_standardize_adapts_a_saved_model_without_its_training_data(model, split, tmp_path):
    Xs, ys, Xt, yt = split
    adapted = adapt_model(model, Xt)
    assert adapted.pipeline.steps[0][0] == "adapt"
    assert adapted.training["adaptation"]["source"] == "model's scaler statistics"
    assert (adapted.predict(Xt) == yt).mean() > (model.predict(Xt) == yt).mean() + 0.1
    # The original model is untouched and still serves the source.
    assert model.pipeline.steps[0][0] != "adapt"

    path = adapted.save(tmp_path / "adapted.earmark")
    loaded = EarmarkModel.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), adapted.predict_proba(Xt))
    assert loaded.training["adaptation"]["method"] == "standardize"


@pytest.mark.parametrize("method", ["coral", "dann", "selftrain"])
def test_every_method_makes_a_model_that_saves_and_loads(method, model, split, tmp_path):
    Xs, ys, Xt, _ = split
    params = SMALL_DANN if method == "dann" else {}
    adapted = adapt_model(model, Xt, method=method, X_source=Xs, y_source=ys, **params)
    record = adapted.training["adaptation"]
    assert record["n_target"] == len(Xt) and "shift_before" in record
    loaded = EarmarkModel.load(adapted.save(tmp_path / f"{method}.earmark"))
    np.testing.assert_array_equal(loaded.predict(Xt), adapted.predict(Xt))
    assert list(loaded.classes_) == list(model.classes_)


def test_adapting_needs_the_source_where_the_model_lacks_its_statistics(model, split):
    Xs, ys, Xt, _ = split
    with pytest.raises(EarmarkError, match="needs the training data"):
        adapt_model(model, Xt, method="coral")
    with pytest.raises(EarmarkError, match="already adapted"):
        adapt_model(adapt_model(model, Xt), Xt)
    with pytest.raises(ParameterError, match="dimension"):
        adapt_model(model, Xt[:, :5])
    # A prototype model standardises inside its classifier: no scaler to read.
    prototypes = EarmarkModel.train(Xs, ys, backend=model.backend_identity, learner="prototype")
    with pytest.raises(EarmarkError, match="does not record its training statistics"):
        adapt_model(prototypes, Xt)


def test_domain_plot_writes_a_png_with_one_panel_per_stage(split, tmp_path):
    Xs, _, Xt, _ = split
    path = plot_domains({"before": (Xs, Xt), "after": (Xs, Xt - Xt.mean(0) + Xs.mean(0))},
                        tmp_path / "domains.png", names=("three speakers", TARGET))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ParameterError):
        plot_domains({"bad": (Xs, Xt[:, :3])})
