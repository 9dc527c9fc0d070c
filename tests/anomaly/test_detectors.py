"""Detectors are scikit-learn estimators; thresholds and evaluation do what they say."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from earmark.anomaly import (
    DETECTORS, HighPassBaseline, band_levels, evaluate_scores, fit_section, make_detector,
    threshold_at,
)
from earmark.exceptions import ParameterError


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_contract_and_state_round_trip(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    detector = make_detector(name)
    assert not hasattr(detector, "mean_")  # __init__ stores parameters only
    assert detector.fit(X) is detector
    outliers = rng.normal(size=(20, 6)) + 4
    inliers = rng.normal(size=(20, 6))
    assert detector.score_samples(outliers).min() > np.median(detector.score_samples(inliers))
    rebuilt = type(detector).from_state(detector.get_params(), detector.get_state())
    np.testing.assert_allclose(rebuilt.score_samples(outliers), detector.score_samples(outliers))
    assert clone(detector).get_params() == detector.get_params()


def test_threshold_is_held_out_and_group_aware():
    rng = np.random.default_rng(1)
    # Two recordings per group, near-duplicates: held out together, they cannot vouch
    # for each other, so out-of-fold scores are not near zero.
    centres = rng.normal(size=(10, 4)) * 3
    bags = [centres[i // 2] + 0.01 * rng.normal(size=(3, 4)) for i in range(20)]
    grouped = fit_section("s", bags, detector=make_detector("knn"), groups=np.arange(20) // 2)
    loose = fit_section("s", bags, detector=make_detector("knn"))
    assert grouped.clip_location > 10 * loose.clip_location
    assert np.mean(grouped.out_of_fold > grouped.clip_threshold) <= 0.15


def test_too_few_items_and_one_group_are_refused():
    bags = [np.zeros((2, 3))] * 3
    with pytest.raises(ParameterError, match="section 'pump' has 3 usable normal"):
        fit_section("pump", bags, detector=make_detector("knn"))
    with pytest.raises(ParameterError, match="one group"):
        fit_section("pump", [np.ones((2, 3))] * 5, detector=make_detector("knn"), groups=[0] * 5)


def test_auc_and_pauc_per_section():
    scores = [0.1, 0.2, 0.3, 0.9, 0.1, 0.5, 0.4, 0.3]
    labels = [0, 0, 1, 1, 0, 0, 1, 1]
    result = evaluate_scores(scores, labels, ["a"] * 4 + ["b"] * 4)
    assert result.sections["a"]["auc"] == 1.0
    assert result.sections["b"]["auc"] == 0.5
    assert result.auc == 0.75 and result.auc_hmean == pytest.approx(2 / (1 / 1.0 + 1 / 0.5))
    with pytest.raises(ParameterError, match="section 'a'"):
        evaluate_scores([0.1, 0.2], [0, 0], ["a", "a"])
    assert threshold_at(np.arange(11.0), 0.2) == 8.0


def test_high_pass_baseline_finds_added_high_frequency_energy():
    rng = np.random.default_rng(0)
    sr = 22050
    t = np.arange(sr) / sr

    def note(extra=0.0):
        y = np.sin(2 * np.pi * rng.uniform(200, 400) * t) + 0.01 * rng.normal(size=sr)
        return y + extra * rng.normal(size=sr)

    baseline = HighPassBaseline().fit(np.stack([band_levels(note(), sr) for _ in range(10)]))
    normal = baseline.score_samples(np.stack([band_levels(note(), sr) for _ in range(5)]))
    noisy = baseline.score_samples(np.stack([band_levels(note(0.2), sr) for _ in range(5)]))
    assert noisy.min() > normal.max()
    assert baseline.cutoff_hz_ >= 1000  # above the notes: where normal levels are steady
