"""Shift scores and the aligners on real embeddings: MFCC statistics of FSDD, speakers as domains.

The ``fsdd`` fixture holds 240 recordings (6 speakers x 10 digits x 4 takes); a speaker
is a domain, and one speaker's recordings differ from another's far more than two takes
of one speaker do.
"""

from __future__ import annotations

import numpy as np
import pytest

from earmark.adaptation import CoralAligner, DomainStandardizer, domain_shift, mmd2
from earmark.exceptions import ParameterError

pytestmark = pytest.mark.usefixtures("one_blas_thread")

SOURCE = ("george", "jackson", "nicolas")
TARGET = "theo"


@pytest.fixture(scope="module")
def domains(fsdd):
    source = np.isin(fsdd.speakers, SOURCE)
    target = fsdd.speakers == TARGET
    return fsdd.X[source].astype(float), fsdd.X[target].astype(float)


def _correlation(X):
    return np.corrcoef(X, rowvar=False)


# ---------------------------------------------------------------------- shift score
def test_shift_score_tells_a_new_speaker_from_more_of_the_same_speakers(fsdd, domains):
    source, target = domains
    rng = np.random.default_rng(0)
    order = rng.permutation(len(source))
    half_a, half_b = source[order[: len(order) // 2]], source[order[len(order) // 2 :]]

    same = domain_shift(half_a, half_b, n_permutations=100)
    shifted = domain_shift(source, target, n_permutations=100)

    assert same.domain_accuracy < 0.65 and same.mmd_p_value > 0.05
    assert same.verdict == "no detectable shift"
    assert shifted.domain_accuracy > 0.9 and shifted.mmd_p_value < 0.02
    assert shifted.mmd2 > 5 * max(same.mmd2, 1e-3)
    assert shifted.verdict.startswith("strong shift")


def test_shift_score_needs_no_labels_and_is_symmetric_in_mmd(domains):
    source, target = domains
    assert mmd2(source, target) == pytest.approx(mmd2(target, source))


def test_shift_score_rejects_mismatched_dimensions(domains):
    source, target = domains
    with pytest.raises(ParameterError, match="dimension"):
        domain_shift(source, target[:, :10])


# --------------------------------------------------------------------- aligners
def test_standardizer_gives_the_target_the_source_mean_and_scale(domains):
    source, target = domains
    moved = DomainStandardizer().fit(source, X_target=target).transform(target)
    np.testing.assert_allclose(moved.mean(0), source.mean(0), atol=1e-8)
    np.testing.assert_allclose(moved.std(0), source.std(0), rtol=1e-8)


def test_standardizer_from_a_models_scaler_matches_one_fitted_on_the_source(domains):
    from sklearn.preprocessing import StandardScaler

    source, target = domains
    scaler = StandardScaler().fit(source)
    recorded = DomainStandardizer.from_source_statistics(scaler.mean_, scaler.scale_, target)
    fitted = DomainStandardizer().fit(source, X_target=target)
    np.testing.assert_allclose(recorded.transform(target), fitted.transform(target))


def test_coral_aligns_the_targets_correlations_with_the_sources(domains):
    source, target = domains
    aligner = CoralAligner(regularization=0.1).fit(source, X_target=target)
    moved = aligner.transform(target)

    before = np.linalg.norm(_correlation(target) - _correlation(source))
    after = np.linalg.norm(_correlation(moved) - _correlation(source))
    assert after < 0.5 * before
    np.testing.assert_allclose(moved.mean(0), source.mean(0), atol=1e-6)
    # Less regularisation follows the measured correlations more closely.
    looser = CoralAligner(regularization=1.0).fit(source, X_target=target).transform(target)
    assert after < np.linalg.norm(_correlation(looser) - _correlation(source)) < before


def test_coral_regularised_map_carries_the_target_covariance_onto_the_sources(domains):
    """The map A satisfies A Ct A = Cs for the regularised matrices, exactly."""
    source, target = domains
    aligner = CoralAligner(regularization=0.5).fit(source, X_target=target)
    standard_s = DomainStandardizer().fit(source)
    standard_t = DomainStandardizer().fit(target)
    Cs, _ = aligner._correlation(source, standard_s.source_mean_, standard_s.source_scale_)
    Ct, _ = aligner._correlation(target, standard_t.source_mean_, standard_t.source_scale_)
    A = aligner.matrix_ * standard_t.source_scale_[:, None] / standard_s.source_scale_[None, :]
    np.testing.assert_allclose(A.T @ Ct @ A, Cs, atol=1e-8)
    np.testing.assert_allclose(A, A.T, atol=1e-8)


def test_coral_auto_shrinkage_is_chosen_from_each_domain(domains):
    source, target = domains
    aligner = CoralAligner(regularization="auto").fit(source, X_target=target)
    assert all(0 < weight < 1 for weight in aligner.shrinkage_)
    assert aligner.shrinkage_[0] != aligner.shrinkage_[1]


def test_aligners_shrink_the_shift_score(domains):
    source, target = domains
    before = domain_shift(source, target, n_permutations=0)
    for aligner in (DomainStandardizer(), CoralAligner()):
        moved = aligner.fit(source, X_target=target).transform(target)
        after = domain_shift(source, moved, n_permutations=0)
        assert after.mmd2 < 0.5 * before.mmd2, type(aligner).__name__
