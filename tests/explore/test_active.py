"""Training on labels and margin sampling, on real MFCC embeddings of FSDD."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from earmark.exceptions import ParameterError
from earmark.explore.active import margin_sampling, margins, train_target
from earmark.explore.collection import Collection
from earmark.explore.labels import Label


def _key(path) -> str:
    return hashlib.blake2b(str(path).encode(), digest_size=16).hexdigest()


@pytest.fixture(scope="module")
def collection(fsdd):
    n = len(fsdd.paths)
    return Collection(
        backend_key="test",
        keys=[_key(path) for path in fsdd.paths],
        paths=[str(path) for path in fsdd.paths],
        start_s=np.full(n, np.nan),
        end_s=np.full(n, np.nan),
        duration_s=np.ones(n),
        X=fsdd.X,
        backend="mfcc",
    )


def _labels(collection, fsdd, rows, *, target="zero", digit="0"):
    return [
        Label(
            target=target,
            key=collection.keys[row],
            value="positive" if fsdd.y[row] == digit else "negative",
            path=collection.paths[row],
        )
        for row in rows
    ]


def test_margins():
    assert np.allclose(margins([[0.5, 0.5], [0.9, 0.1], [0.3, 0.7]]), [0.0, 0.8, 0.4])
    assert np.allclose(margins([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]), [0.2, 0.3])
    assert margins(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ParameterError, match="n_classes >= 2"):
        margins([[1.0], [1.0]])


class _Fixed:
    """A 'classifier' whose probabilities are given, to check the ranking itself."""

    def __init__(self, p):
        self.p = np.asarray(p)

    def predict_proba(self, X):
        rows = np.asarray(X)[:, 0].astype(int)
        return np.column_stack([1 - self.p[rows], self.p[rows]])


def test_margin_sampling_ranks_the_boundary_first_and_skips_excluded_rows():
    p = np.array([0.99, 0.52, 0.10, 0.45, 0.70, 0.50, 0.95])
    X = np.arange(len(p), dtype=float)[:, None]
    rows = margin_sampling(_Fixed(p), X, 3)
    assert rows.tolist() == [5, 1, 3]
    exclude = np.zeros(len(p), dtype=bool)
    exclude[[5, 1]] = True
    assert margin_sampling(_Fixed(p), X, 3, exclude=exclude).tolist() == [3, 4, 2]
    assert margin_sampling(_Fixed(p), X, 100, exclude=exclude).tolist() == [3, 4, 2, 6, 0]
    assert margin_sampling(_Fixed(p), X, 0).tolist() == []
    assert margin_sampling(_Fixed(p), X, 3, exclude=np.ones(len(p), bool)).tolist() == []
    with pytest.raises(ParameterError, match="exclude of shape"):
        margin_sampling(_Fixed(p), X, 3, exclude=[True])


def test_train_target_proposes_unlabelled_clips_nearest_the_boundary(
    collection, fsdd, one_blas_thread
):
    rng = np.random.default_rng(0)
    zeros = np.flatnonzero(fsdd.y == "0")
    others = np.flatnonzero(fsdd.y != "0")
    rows = list(rng.choice(zeros, 4, replace=False)) + list(rng.choice(others, 8, replace=False))
    labels = _labels(collection, fsdd, rows)
    skipped = int(rng.choice(np.setdiff1d(others, rows)))
    labels.append(Label("zero", collection.keys[skipped], "skip", collection.paths[skipped]))
    # Labels of another target and keys of another backend are not this training set's.
    labels.append(Label("one", collection.keys[int(zeros[-1])], "negative", "x.wav"))
    labels.append(Label("zero", "f" * 32, "positive", "elsewhere.wav"))

    trained = train_target(collection, labels, target="zero", n_uncertain=15)
    assert (trained.n_positive, trained.n_negative, trained.n_skipped) == (4, 8, 1)
    assert list(trained.estimator.classes_) == ["negative", "positive"]
    proposed = [clip["key"] for clip in trained.uncertain]
    assert len(proposed) == 15 == len(set(proposed))
    labelled = {collection.keys[row] for row in rows} | {collection.keys[skipped]}
    assert not labelled & set(proposed)

    # The proposals are exactly the 15 smallest margins among the unlabelled clips.
    proba = trained.estimator.predict_proba(collection.X)[:, 1]
    margin = np.abs(2 * proba - 1)
    free = np.array([key not in labelled for key in collection.keys])
    expected = np.flatnonzero(free)[np.argsort(margin[free], kind="stable")[:15]]
    assert proposed == [collection.keys[row] for row in expected]
    got = [(clip["margin"], clip["probability"]) for clip in trained.uncertain]
    assert np.allclose(got, np.column_stack([margin[expected], proba[expected]]), atol=1e-6)
    # Something was learnt: labelled zeros score higher than labelled others.
    assert proba[rows[:4]].mean() > proba[rows[4:]].mean()


def test_training_needs_a_positive_and_a_negative(collection, fsdd):
    zeros = np.flatnonzero(fsdd.y == "0")[:3]
    with pytest.raises(ParameterError, match="3 positive and 0 negative"):
        train_target(collection, _labels(collection, fsdd, zeros), target="zero")
    skips = [Label("zero", collection.keys[0], "skip", "a.wav")]
    with pytest.raises(ParameterError, match="0 positive and 0 negative"):
        train_target(collection, skips, target="zero")


def test_margin_sampling_finds_a_digit_faster_than_random_labelling(
    collection, fsdd, one_blas_thread
):
    """Active learning on held-out speakers: after the same number of labels, the
    classifier trained on margin-sampled clips ranks a digit better than the one trained
    on randomly chosen clips (average over seeds, train on 4 speakers, test on 2)."""
    from sklearn.metrics import average_precision_score

    test = np.isin(fsdd.speakers, ["theo", "yweweler"])
    pool = Collection(
        backend_key="test",
        keys=[key for key, held in zip(collection.keys, test) if not held],
        paths=[path for path, held in zip(collection.paths, test) if not held],
        start_s=collection.start_s[~test],
        end_s=collection.end_s[~test],
        duration_s=collection.duration_s[~test],
        X=collection.X[~test],
    )
    y_pool = fsdd.y[~test]
    y_test = fsdd.y[test] == "0"

    def labelled(rows):
        values = np.where(y_pool[rows] == "0", "positive", "negative")
        return [Label("zero", pool.keys[row], value, "") for row, value in zip(rows, values)]

    scores = {"margin": [], "random": []}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        start = [int(rng.choice(np.flatnonzero(y_pool == "0")))]
        start += [int(row) for row in rng.choice(np.flatnonzero(y_pool != "0"), 3, replace=False)]
        for strategy in scores:
            rows, rng_pick = list(start), np.random.default_rng(seed + 100)
            for _ in range(6):
                trained = train_target(pool, labelled(rows), target="zero", n_uncertain=4)
                if strategy == "margin":
                    rows += [pool.index_of(clip["key"]) for clip in trained.uncertain]
                else:
                    free = np.setdiff1d(np.arange(len(pool)), rows)
                    rows += [int(row) for row in rng_pick.choice(free, 4, replace=False)]
            estimator = train_target(pool, labelled(rows), target="zero", n_uncertain=0).estimator
            scores[strategy].append(
                average_precision_score(y_test, estimator.predict_proba(collection.X[test])[:, 1])
            )
    assert np.mean(scores["margin"]) > np.mean(scores["random"])
