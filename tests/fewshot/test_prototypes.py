"""PrototypeClassifier on real MFCC embeddings of spoken digits (speakers kept apart)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.neighbors import NearestCentroid

from earmark.exceptions import ParameterError
from earmark.fewshot.prototypes import PrototypeClassifier
from earmark.fewshot.whitening import apply_whitening, shrunk_whitening

pytestmark = pytest.mark.usefixtures("one_blas_thread")

BASELINE = dict(metric="euclidean", normalize=False, standardize=False, whiten=False)


def _split(fsdd, held_out="theo"):
    train, test = fsdd.speakers != held_out, fsdd.speakers == held_out
    return fsdd.X[train], fsdd.y[train], fsdd.X[test], fsdd.y[test]


def test_plain_euclidean_prototypes_are_nearest_centroid(fsdd):
    X, y, Xq, _ = _split(fsdd)
    ours = PrototypeClassifier(**BASELINE).fit(X, y)
    theirs = NearestCentroid().fit(X, y)
    # NearestCentroid averages in float32, we in float64.
    np.testing.assert_allclose(ours.prototypes_, theirs.centroids_, rtol=1e-4, atol=1e-4)
    assert ours.predict(Xq).tolist() == theirs.predict(Xq).tolist()


def test_default_prototypes_recognise_an_unseen_speaker(fsdd):
    X, y, Xq, yq = _split(fsdd)
    model = PrototypeClassifier().fit(X, y)
    accuracy = np.mean(model.predict(Xq) == yq)
    assert accuracy > 0.5, f"{accuracy:.1%} on an unseen speaker (chance 10 %)"


def test_probabilities_agree_with_predictions_and_distances(fsdd):
    X, y, Xq, _ = _split(fsdd)
    model = PrototypeClassifier().fit(X, y)
    P = model.predict_proba(Xq)
    D = model.transform(Xq)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert (model.classes_[P.argmax(1)] == model.predict(Xq)).all()
    assert (P.argmax(1) == D.argmin(1)).all()
    np.testing.assert_allclose(model.decision_function(Xq), -(D**2) / model.temperature_)


def test_fitted_temperature_minimises_the_held_out_loss(fsdd):
    from earmark.fewshot.crossfit import cross_fitted_sq_distances
    from scipy.special import logsumexp

    X, y, _, _ = _split(fsdd)
    model = PrototypeClassifier().fit(X, y)
    assert model.temperature_source_ == "held-out items"
    codes = np.searchsorted(model.classes_, y)
    D2 = cross_fitted_sq_distances(model, X, codes)

    def loss(t):
        logits = -D2 / t
        return np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(codes)), codes])

    best = loss(model.temperature_)
    assert best < loss(model.temperature_ * 2) and best < loss(model.temperature_ / 2)


def test_probabilities_are_not_sure_of_a_new_speaker_they_get_wrong(fsdd):
    """Issue 16: prototypes answered 1.0000 on queries they got wrong. With the
    temperature fitted on held-out support items (of the support's own speakers), mean
    confidence on an unseen speaker stays within 0.3 of the accuracy: measured 0.26 on
    MFCC (BirdNET 5-way 5-shot episodes: 0.999 confidence at 51 % before, 0.81 after)."""
    X, y, Xq, yq = _split(fsdd)
    model = PrototypeClassifier().fit(X, y)
    P = model.predict_proba(Xq)
    accuracy = np.mean(model.classes_[P.argmax(1)] == yq)
    assert abs(P.max(axis=1).mean() - accuracy) < 0.3


def test_set_temperature_is_used():
    X = np.r_[np.zeros((3, 4)), np.ones((3, 4))] + np.arange(4) * 0.01
    model = PrototypeClassifier(temperature=0.5, **BASELINE).fit(X, [0, 0, 0, 1, 1, 1])
    assert model.temperature_ == 0.5 and model.temperature_source_ == "set"


@pytest.mark.parametrize("held_out_take", [0, 3])
def test_unknown_digits_are_rejected_and_known_ones_kept(fsdd, held_out_take):
    """Digits 0-4 known (three takes of each speaker), queries: the fourth take of 0-9."""
    from pathlib import Path

    take = np.array([int(Path(path).stem.split("_")[2]) for path in fsdd.paths])
    known = np.isin(fsdd.y, list("01234"))
    support, query = (take != held_out_take) & known, take == held_out_take
    model = PrototypeClassifier(unknown_coverage=0.9).fit(fsdd.X[support], fsdd.y[support])
    assert model.threshold_source_ == "held-out items"
    rejected_in = model.is_unknown(fsdd.X[query & known]).mean()
    rejected_out = model.is_unknown(fsdd.X[query & ~known]).mean()
    # Measured: 10 % / 3 % of known and 57 % / 50 % of unknown digits rejected.
    assert rejected_in <= 0.2, rejected_in
    assert rejected_out >= rejected_in + 0.3, (rejected_in, rejected_out)
    strict = clone(model).set_params(unknown_coverage=0.5).fit(fsdd.X[support], fsdd.y[support])
    assert strict.threshold_ < model.threshold_
    assert strict.is_unknown(fsdd.X[query & known]).mean() > rejected_in


def test_own_threshold_keeps_the_asked_share_of_exchangeable_queries(fsdd):
    """5-way 5-shot episodes with support and queries drawn at random (exchangeable, as
    ESC-50's folds make them): the support-calibrated threshold keeps about the asked 90 %
    of in-set queries. Calibrating on distances to the item's own prototype instead of
    the nearest one kept 98 % here."""
    from earmark.fewshot.episodes import EpisodeSampler

    sampler = EpisodeSampler(fsdd.y, shots=5, ways=5, queries=15, seed=0)
    kept = []
    for index in range(60):
        episode = sampler.episode(index)
        model = PrototypeClassifier(unknown_coverage=0.9).fit(
            fsdd.X[episode.support], fsdd.y[episode.support]
        )
        kept.append(1.0 - model.is_unknown(fsdd.X[episode.query]).mean())
    assert 0.86 <= np.mean(kept) <= 0.94, np.mean(kept)


def test_threshold_held_out_by_speaker_keeps_the_asked_share_of_a_new_speaker(fsdd):
    """Issue 16: the 'unknown' threshold must keep the asked share of known queries from
    held-out groups. Digits 0-4 of five speakers as support, the sixth speaker's as
    queries, each speaker in turn. Measured: 43 % kept held out by item (the threshold
    knows only the support's speakers), 96 % held out by speaker, where 90 % was asked."""
    known = np.isin(fsdd.y, list("01234"))
    by_item, by_group = [], []
    for speaker in np.unique(fsdd.speakers):
        support, query = (fsdd.speakers != speaker) & known, (fsdd.speakers == speaker) & known
        X, y, groups = fsdd.X[support], fsdd.y[support], fsdd.speakers[support]
        plain = PrototypeClassifier(unknown_coverage=0.9).fit(X, y)
        grouped = PrototypeClassifier(unknown_coverage=0.9).fit(X, y, groups=groups)
        assert plain.threshold_source_ == "held-out items"
        assert grouped.threshold_source_ == "held-out groups"
        assert grouped.threshold_ > plain.threshold_
        # Groups change the threshold and the temperature, not the classifier.
        np.testing.assert_array_equal(grouped.prototypes_, plain.prototypes_)
        np.testing.assert_array_equal(grouped.predict(fsdd.X[query]), plain.predict(fsdd.X[query]))
        by_item.append(1.0 - plain.is_unknown(fsdd.X[query]).mean())
        by_group.append(1.0 - grouped.is_unknown(fsdd.X[query]).mean())
    assert 0.85 <= np.mean(by_group) <= 0.99, by_group
    assert np.mean(by_item) < np.mean(by_group) - 0.3, (by_item, by_group)


def test_a_temperature_held_out_by_speaker_is_as_sure_as_it_is_right_on_a_new_one(fsdd):
    """Leave one speaker out, all ten digits: held out by item, the temperature knows only
    the support's speakers and the new speaker's digits are answered with 0.81 mean
    confidence at 53 % accuracy; held out by speaker, 0.45 (measured, MFCC)."""
    sure, right = {"items": [], "groups": []}, []
    for speaker in np.unique(fsdd.speakers):
        support, query = fsdd.speakers != speaker, fsdd.speakers == speaker
        X, y, groups = fsdd.X[support], fsdd.y[support], fsdd.speakers[support]
        plain = PrototypeClassifier().fit(X, y)
        grouped = PrototypeClassifier().fit(X, y, groups=groups)
        assert (plain.temperature_source_, grouped.temperature_source_) == (
            "held-out items", "held-out groups")
        right.append(np.mean(plain.predict(fsdd.X[query]) == fsdd.y[query]))
        sure["items"].append(plain.predict_proba(fsdd.X[query]).max(axis=1).mean())
        sure["groups"].append(grouped.predict_proba(fsdd.X[query]).max(axis=1).mean())
    accuracy = np.mean(right)
    assert np.mean(sure["items"]) > accuracy + 0.2, (sure, accuracy)
    assert abs(np.mean(sure["groups"]) - accuracy) < 0.15, (sure, accuracy)


def test_threshold_source_says_which_classes_were_held_out_by_group(fsdd):
    X, y, _, _ = _split(fsdd)
    speakers = fsdd.speakers[fsdd.speakers != "theo"]
    # Each digit's support from one speaker: nothing on the support can tell how far a
    # new speaker lies, and the model says so.
    one = np.zeros(len(y), dtype=bool)
    for index, digit in enumerate(np.unique(y)):
        one |= (y == digit) & (speakers == np.unique(speakers)[index % 5])
    single = PrototypeClassifier().fit(X[one], y[one], groups=speakers[one])
    assert single.threshold_source_.startswith("held-out items; each class's support is from one")
    assert single.threshold_ == PrototypeClassifier().fit(X[one], y[one]).threshold_
    assert single.temperature_source_ == "held-out items"
    # Digits 0-4 from every speaker, 5-9 from one each: the latter's distances are
    # scaled by how much farther held-out speakers were for the former.
    mixed = one | np.isin(y, list("01234"))
    model = PrototypeClassifier().fit(X[mixed], y[mixed], groups=speakers[mixed])
    assert model.threshold_source_.startswith("held-out groups for 5 of 10 classes; held-out items x")
    ratio = float(model.threshold_source_.split(" x ")[1].split()[0])
    assert ratio >= 1.0
    assert model.temperature_source_ == "held-out items"  # only when every class spans groups
    with pytest.raises(ParameterError, match="one group per support item"):
        PrototypeClassifier().fit(X, y, groups=speakers[:-1])


def test_one_shot_uses_between_prototype_distances(fsdd):
    X, y, _, _ = _split(fsdd)
    first = np.unique(y, return_index=True)[1]
    model = PrototypeClassifier().fit(X[first], y[first])
    assert model.threshold_source_ == "between-prototypes"
    assert model.temperature_source_ == "between-prototypes"
    assert np.isfinite(model.threshold_) and model.threshold_ > 0
    assert model.predict(X[first]).tolist() == y[first].tolist()


def test_a_collection_centre_given_as_items_or_as_its_mean_is_the_same_model(fsdd):
    X, y, X_test, _ = _split(fsdd)
    collection = np.r_[X, X_test]
    from_items = PrototypeClassifier(center=collection).fit(X, y)
    from_mean = PrototypeClassifier(center=from_items.center_of(collection)).fit(X, y)
    assert np.allclose(from_items.center_, from_mean.center_)
    assert np.allclose(from_items.transform(X_test), from_mean.transform(X_test))
    assert from_items.threshold_ == pytest.approx(from_mean.threshold_)
    # Not the support mean: a different space, so different distances.
    own = PrototypeClassifier().fit(X, y)
    assert own.center_ is None
    assert not np.allclose(own.transform(X_test), from_items.transform(X_test))
    with pytest.raises(ParameterError, match="center of 120 finite values"):
        PrototypeClassifier(center=np.ones(7)).fit(X, y)
    with pytest.raises(ParameterError, match="needs standardize"):
        PrototypeClassifier(center=collection, standardize=False).fit(X, y)


def test_one_shot_centred_on_the_collection_rejects_some_unknowns_not_all_queries(fsdd):
    """With one example per class there is no whitening: its total-covariance fallback
    made the between-prototype threshold reject every query (or none)."""
    from earmark.fewshot.episodes import EpisodeSampler

    sampler = EpisodeSampler(fsdd.y, shots=1, ways=5, queries=15, unknown_ways=5, seed=0)
    center = PrototypeClassifier().center_of(fsdd.X)
    kept, rejected = [], []
    for index in range(60):
        episode = sampler.episode(index)
        model = PrototypeClassifier(center=center).fit(
            fsdd.X[episode.support], fsdd.y[episode.support]
        )
        assert model.whitening_ is None
        kept.append(1.0 - model.is_unknown(fsdd.X[episode.query]).mean())
        rejected.append(model.is_unknown(fsdd.X[episode.unknown_query]).mean())
    # Measured: 83 % kept, where 90 % is asked; more unknowns rejected than knowns.
    assert 0.75 <= np.mean(kept) <= 0.95, np.mean(kept)
    assert np.mean(rejected) > 1.0 - np.mean(kept)


def test_factored_whitening_equals_the_inverse_square_root_of_the_shrunk_covariance():
    from sklearn.covariance import ledoit_wolf_shrinkage

    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 6)) @ rng.normal(size=(6, 6))
    codes = np.repeat([0, 1, 2], 3)
    whitening = shrunk_whitening(X, codes)
    means = np.stack([X[codes == c].mean(0) for c in range(3)])
    Z = X - means[codes]
    dof = len(X) - 3
    alpha = ledoit_wolf_shrinkage(Z, assume_centered=True)
    mu = np.trace(Z.T @ Z / dof) / X.shape[1]
    covariance = alpha * mu * np.eye(6) + (1 - alpha) * Z.T @ Z / dof
    values, vectors = np.linalg.eigh(covariance)
    inverse_root = vectors @ np.diag(values**-0.5) @ vectors.T
    Q = rng.normal(size=(4, 6))
    np.testing.assert_allclose(apply_whitening(whitening, Q), Q @ inverse_root, atol=1e-10)


def test_errors_say_what_was_expected(fsdd):
    X, y, _, _ = _split(fsdd)
    with pytest.raises(ParameterError, match="at least 2 classes"):
        PrototypeClassifier().fit(X[:3], ["a"] * 3)
    with pytest.raises(ParameterError, match="metric"):
        PrototypeClassifier(metric="manhattan").fit(X, y)
    with pytest.raises(ParameterError, match="temperature"):
        PrototypeClassifier(temperature=0).fit(X, y)
    model = PrototypeClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :10])
