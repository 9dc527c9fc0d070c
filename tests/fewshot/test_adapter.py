"""The prototypical adapter: trained episodically with torch, used with numpy alone.

Real embeddings: MFCC statistics of 240 FSDD recordings (10 digits, 6 speakers as
groups). Fits are tiny (a few epochs of a few episodes) so the file runs in seconds.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from earmark.exceptions import EarmarkError, ParameterError
from earmark.fewshot.adapter import PrototypicalAdapter, _torch_forward
from earmark.fewshot.episodes import EpisodeSampler

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_blas_thread", "one_torch_thread")

SMALL = dict(dim=16, n_way=4, n_shot=2, n_query=3, episodes_per_epoch=10, max_epochs=4)


@pytest.fixture(scope="module")
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def fitted(fsdd):
    adapter = PrototypicalAdapter(hidden_units=8, **SMALL)
    return adapter.fit(fsdd.X, fsdd.y, groups=fsdd.speakers)


def _episode_loss(Z, y, episodes, scale):
    """Prototypical loss written out again in numpy, as a check on the training code."""
    losses = []
    for episode in episodes:
        classes = np.sort(episode.classes)
        support, labels = Z[episode.support], y[episode.support]
        prototypes = np.stack([support[labels == c].mean(0) for c in classes])
        squared = ((Z[episode.query][:, None, :] - prototypes[None]) ** 2).sum(-1)
        logits = -scale * squared
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        target = np.searchsorted(classes, y[episode.query])
        losses.append(-log_p[np.arange(len(target)), target].mean())
    return float(np.mean(losses))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("hidden_units", [0, 8])
def test_numpy_transform_equals_the_torch_forward_pass(fsdd, normalize, hidden_units):
    adapter = PrototypicalAdapter(
        normalize=normalize, hidden_units=hidden_units, **{**SMALL, "max_epochs": 2}
    ).fit(fsdd.X, fsdd.y, groups=fsdd.speakers)
    if hidden_units:
        # Training must have grown the residual branch, or the test checks nothing.
        assert np.abs(adapter.output_weight_).max() > 0
    tensors = {name: torch.from_numpy(value) for name, value in adapter._params().items()}
    standardized = torch.from_numpy(((fsdd.X - adapter.mean_) / adapter.scale_).astype(np.float32))
    with torch.no_grad():
        expected = _torch_forward(torch, tensors, standardized, normalize).numpy()
    Z = adapter.transform(fsdd.X)
    assert Z.shape == (len(fsdd.X), SMALL["dim"]) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-5)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_model_and_another_seed_another(fsdd):
    def fit(seed):
        return PrototypicalAdapter(random_state=seed, **SMALL).fit(
            fsdd.X, fsdd.y, groups=fsdd.speakers
        )

    first, again, other = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(first.weight_, again.weight_)
    np.testing.assert_array_equal(first.transform(fsdd.X), again.transform(fsdd.X))
    assert first.history_ == again.history_
    assert first.validation_classes_.tolist() == again.validation_classes_.tolist()
    assert not np.array_equal(first.weight_, other.weight_)


def test_training_lowers_the_episodic_loss_on_its_own_training_classes(fsdd):
    params = dict(SMALL, max_epochs=8, validation_fraction=0.0)
    trained = PrototypicalAdapter(**params).fit(fsdd.X, fsdd.y, groups=fsdd.speakers)
    # Learning rate 0: the same starting projection and scale, never moved.
    untrained = PrototypicalAdapter(**{**params, "learning_rate": 0.0}).fit(
        fsdd.X, fsdd.y, groups=fsdd.speakers
    )
    sampler = EpisodeSampler(fsdd.y, shots=2, groups=fsdd.speakers, ways=4, queries=3, seed=99)
    episodes = [sampler.episode(i) for i in range(60)]
    before = _episode_loss(untrained.transform(fsdd.X), fsdd.y, episodes, untrained.distance_scale_)
    after = _episode_loss(trained.transform(fsdd.X), fsdd.y, episodes, trained.distance_scale_)
    assert after < 0.8 * before, (before, after)
    assert trained.history_["train_loss"][-1] < trained.history_["train_loss"][0]


def test_early_stopping_keeps_the_best_validation_epoch(fsdd):
    adapter = PrototypicalAdapter(**{**SMALL, "max_epochs": 30, "patience": 2}).fit(
        fsdd.X, fsdd.y, groups=fsdd.speakers
    )
    losses = adapter.history_["validation_loss"]
    assert len(losses) == adapter.n_epochs_ + 1  # epoch 0 is the untrained projection
    assert adapter.best_epoch_ == int(np.argmin(losses))
    assert adapter.n_epochs_ - adapter.best_epoch_ <= 2 or adapter.n_epochs_ == 30
    # Validation classes come from the classes given to fit, apart from training ones.
    assert set(adapter.validation_classes_).isdisjoint(adapter.train_classes_)
    assert set(adapter.validation_classes_) | set(adapter.train_classes_) == set(fsdd.y)
    assert len(adapter.validation_classes_) == 2  # 20 % of 10 digits


def test_without_validation_it_trains_every_epoch(fsdd):
    adapter = PrototypicalAdapter(**{**SMALL, "validation_fraction": 0.0}).fit(fsdd.X, fsdd.y)
    assert adapter.validation_classes_.size == 0
    assert adapter.n_epochs_ == adapter.best_epoch_ == SMALL["max_epochs"]
    assert adapter.history_["validation_loss"] == []


def test_fit_restores_the_torch_thread_count(fsdd):
    torch.set_num_threads(2)
    try:
        PrototypicalAdapter(**{**SMALL, "max_epochs": 1}).fit(fsdd.X, fsdd.y)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_clone_get_params_and_a_pipeline(fitted, fsdd):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "weight_")
    from earmark.fewshot.prototypes import PrototypeClassifier

    pipeline = make_pipeline(clone(fitted), PrototypeClassifier())
    pipeline.fit(fsdd.X, fsdd.y)
    assert pipeline.predict(fsdd.X[:5]).shape == (5,)
    names = fitted.get_feature_names_out()
    assert len(names) == SMALL["dim"] and names[0] == "prototypicaladapter0"


def test_a_fitted_adapter_needs_no_torch_to_transform_or_load(fitted, fsdd, monkeypatch):
    import skops.io

    data = skops.io.dumps(fitted)
    # Only numpy arrays, builtins and the adapter itself may be in the file.
    assert skops.io.get_untrusted_types(data=data) == [
        "earmark.fewshot.adapter.PrototypicalAdapter"
    ]
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now fails
    loaded = skops.io.loads(data, trusted=["earmark.fewshot.adapter.PrototypicalAdapter"])
    np.testing.assert_array_equal(loaded.transform(fsdd.X), fitted.transform(fsdd.X))


def test_fitting_without_torch_says_how_to_install_it(fsdd, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EarmarkError, match=r"pip install torch==2\.13\.0"):
        PrototypicalAdapter(**SMALL).fit(fsdd.X, fsdd.y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dim": 0}, r"dim must be an int >= 1, got 0"),
        ({"n_way": 1}, r"n_way must be an int >= 2"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\)"),
        ({"init": "zeros"}, r"init must be 'pca' or 'random', got 'zeros'"),
        ({"learning_rate": -1.0}, r"learning_rate must be a non-negative number"),
    ],
)
def test_invalid_parameters_are_named(fsdd, params, message):
    with pytest.raises(ParameterError, match=message):
        PrototypicalAdapter(**{**SMALL, **params}).fit(fsdd.X, fsdd.y)


def test_too_few_classes_for_a_validation_split(fsdd):
    three = np.isin(fsdd.y, ["0", "1", "2"])
    with pytest.raises(ParameterError, match="validation_fraction=0 to train without"):
        PrototypicalAdapter(**SMALL).fit(fsdd.X[three], fsdd.y[three])
    # ... and with validation_fraction=0 the same data trains.
    PrototypicalAdapter(**{**SMALL, "validation_fraction": 0.0}).fit(fsdd.X[three], fsdd.y[three])


def test_classes_too_small_for_an_episode_are_left_out_with_a_warning(fsdd):
    keep = fsdd.y != "9"
    keep[np.flatnonzero(fsdd.y == "9")[0]] = True  # one "9" left: no episode can use it
    with pytest.warns(UserWarning, match=r"1 classes have too few items .*: 9"):
        adapter = PrototypicalAdapter(**SMALL).fit(fsdd.X[keep], fsdd.y[keep])
    assert "9" not in adapter.train_classes_ and "9" not in adapter.validation_classes_


def test_transform_checks_the_number_of_features(fitted, fsdd):
    with pytest.raises(ValueError, match="X has 10 features"):
        fitted.transform(fsdd.X[:, :10])


@parametrize_with_checks(
    [PrototypicalAdapter(
        validation_fraction=0.0, n_shot=1, n_query=1, dim=2, max_epochs=1, episodes_per_epoch=2
    )]
)
def test_scikit_learn_compliance(estimator, check):
    check(estimator)
