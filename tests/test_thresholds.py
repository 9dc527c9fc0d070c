"""Per-class thresholds chosen on held-out scores keep their promise on a new speaker."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from earmark.calibration import CalibratedLearner
from earmark.exceptions import ParameterError
from earmark.thresholds import apply_thresholds, choose_thresholds, operating_curves

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_precision_target_buys_precision_on_held_out_speakers(fsdd):
    """Thresholds chosen for precision 0.9 on the training speakers' held-out scores
    (20 items per class here, so several classes get none): pooled over every speaker
    held out in turn, the answers given are more often right than plain top-1 answers.
    Measured: 0.64 top-1, higher under thresholds."""
    given, plain = [], []
    for speaker in np.unique(fsdd.speakers):
        train, test = fsdd.speakers != speaker, fsdd.speakers == speaker
        model = CalibratedLearner(LogisticRegression(max_iter=5000), target_precision=0.9)
        model.fit(fsdd.X[train], fsdd.y[train], groups=fsdd.speakers[train])
        answers = model.predict_thresholded(fsdd.X[test])
        kept = answers != "unknown"
        given += list(answers[kept] == fsdd.y[test][kept])
        plain += list(model.predict(fsdd.X[test]) == fsdd.y[test])
    assert 20 <= len(given) < len(plain)
    assert np.mean(given) > np.mean(plain) + 0.05


def test_small_classes_get_no_threshold_and_a_reason():
    y = np.array(["a"] * 30 + ["b"] * 5)
    p = np.r_[np.linspace(0.5, 1, 30), np.linspace(0, 0.5, 5)]
    chosen = choose_thresholds(y, np.c_[p, 1 - p], ["a", "b"], target_precision=0.9)
    assert np.isfinite(chosen.thresholds[0]) and np.isnan(chosen.thresholds[1])
    assert "fewer than 20" in chosen.notes["b"]
    assert chosen.table()[1]["threshold"] is None


def test_recall_target_and_curves():
    y = np.array(["a"] * 30 + ["b"] * 30)
    p = np.r_[np.linspace(0.3, 1, 30), np.linspace(0, 0.7, 30)]
    chosen = choose_thresholds(y, np.c_[p, 1 - p], ["a", "b"], target_recall=0.5)
    assert chosen.expected[0, 1] >= 0.5
    curves = operating_curves(y, np.c_[p, 1 - p], ["a", "b"])
    assert curves[0]["support"] == 30
    assert len(curves[0]["thresholds"]) == len(curves[0]["precision"])


def test_apply_and_errors():
    labels = apply_thresholds([[0.7, 0.3], [0.4, 0.6]], ["a", "b"], [0.8, np.nan])
    assert labels.tolist() == ["unknown", "b"]
    with pytest.raises(ParameterError):
        choose_thresholds(["a"], [[1.0]], ["a"])


def test_precision_target_holds_within_each_speaker_not_only_in_the_pool():
    """Four speakers; on one of them class b scores like a (its false alarms sit where the
    pool's a items do). On the pool, 0.9 precision allows a low threshold; within that
    speaker it does not, and with groups the threshold rises until it holds there too."""
    rng = np.random.default_rng(0)
    y, score, speaker = [], [], []
    for s in range(4):
        for label in ("a", "b"):
            n = 60
            y += [label] * n
            speaker += [s] * n
            if label == "a":
                score += list(rng.uniform(0.5, 1.0, n))
            elif s == 3:  # the speaker whose b sounds like a
                score += list(rng.uniform(0.4, 0.8, n))
            else:
                score += list(rng.uniform(0.0, 0.55, n))
    y, score, speaker = np.array(y), np.array(score), np.array(speaker)
    proba = np.c_[score, 1 - score]

    pooled = choose_thresholds(y, proba, ["a", "b"], target_precision=0.9)
    grouped = choose_thresholds(y, proba, ["a", "b"], target_precision=0.9, groups=speaker)

    def precision_within(threshold, s):
        claimed = (score >= threshold) & (speaker == s)
        return (y[claimed] == "a").mean()

    assert precision_within(pooled.thresholds[0], 3) < 0.85
    assert grouped.thresholds[0] > pooled.thresholds[0]
    assert all(precision_within(grouped.thresholds[0], s) >= 0.9 for s in range(4)
               if ((score >= grouped.thresholds[0]) & (speaker == s)).sum() >= 5)
    # Groups that hold one class each (an instrument's dynamic) change nothing.
    pure = np.char.add(y.astype(str), speaker.astype(str))
    same = choose_thresholds(y, proba, ["a", "b"], target_precision=0.9, groups=pure)
    np.testing.assert_array_equal(same.thresholds, pooled.thresholds)


def test_a_class_whose_precision_target_is_out_of_reach_is_never_answered():
    """b is on top of every item and right on half of them: no threshold gives it 0.9
    precision, so it gets an infinite one and is never answered (answering it freely
    would break the promise the user asked for); a keeps its finite threshold."""
    y = np.array(["a"] * 40 + ["b"] * 40)
    p_a = np.r_[np.linspace(0.95, 1.0, 20), np.full(20, 0.3), np.full(40, 0.3)]
    proba = np.c_[p_a, 1 - p_a]
    chosen = choose_thresholds(y, proba, ["a", "b"], target_precision=0.9)
    assert np.isfinite(chosen.thresholds[0])
    assert chosen.thresholds[1] == np.inf and "never answered" in chosen.notes["b"]
    assert chosen.table()[1]["threshold"] is None
    answers = apply_thresholds(proba, ["a", "b"], chosen)
    assert set(answers[:20]) == {"a"} and set(answers[20:]) == {"unknown"}
    # A recall target is always reachable at some threshold: nothing is withheld.
    assert not np.isinf(choose_thresholds(y, proba, ["a", "b"],
                                          target_recall=0.9).thresholds).any()
