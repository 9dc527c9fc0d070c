"""Reliability checks: they must pass good explanations and catch bad ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _explain_data import BAND, N_BANDS, N_TIME, SR, digit_model, tone_model
from earmark.exceptions import ParameterError
from earmark.interpret.explain import explain, explain_file
from earmark.interpret.reliability import assess, deletion_insertion, stability


@pytest.fixture(scope="module")
def tone(one_blas_thread):
    return tone_model()


@pytest.fixture(scope="module")
def tone_explanation(tone):
    return explain(tone.model, tone.clip, SR, n_time=N_TIME, n_bands=N_BANDS,
                   backend=tone.backend)


def test_curves_run_from_the_whole_clip_to_nothing_and_back(tone, tone_explanation):
    deletion, insertion = deletion_insertion(
        tone_explanation, tone.model, backend=tone.backend, n_steps=8, n_random=3
    )
    e = tone_explanation
    for curve in (deletion, insertion):
        assert curve.fraction.tolist() == pytest.approx(np.linspace(0, 1, 9).tolist())
        assert curve.explained.shape == curve.random.shape == curve.random_std.shape == (9,)
    # The same waveform scored in another batch may differ in the last bits.
    assert deletion.explained[0] == pytest.approx(e.base_score) == deletion.random[0]
    assert deletion.explained[-1] == pytest.approx(e.empty_score, abs=1e-9)
    assert insertion.explained[0] == pytest.approx(e.empty_score, abs=1e-9)
    assert insertion.explained[-1] == pytest.approx(e.base_score)
    # Removing the burst first kills the score at once; random order keeps it a while.
    assert deletion.explained[1] < 0.1 < deletion.random[1]
    assert deletion.beats_random and deletion.auc < 0.5 * deletion.random_auc
    assert insertion.beats_random and insertion.auc > insertion.random_auc


def test_a_wrong_explanation_is_caught(tone, tone_explanation):
    """The reversed ranking puts the burst last: deletion must then lose to random."""
    wrong = dataclasses.replace(tone_explanation, importance=-tone_explanation.importance)
    deletion, insertion = deletion_insertion(wrong, tone.model, backend=tone.backend,
                                             n_steps=8, n_random=3)
    assert not deletion.beats_random and not insertion.beats_random
    report = assess(wrong, tone.model, backend=tone.backend, n_steps=8, n_random=3, n_noise=1)
    assert report.verdict == "unreliable" and report.faithfulness < 0 and report.score == 0
    assert report.evidence_score < 0.1, "the 'evidence' of a wrong explanation is not evidence"


def test_a_right_explanation_is_reliable_and_stable(tone, tone_explanation):
    report = assess(tone_explanation, tone.model, backend=tone.backend, n_steps=8,
                    n_random=3, n_noise=2)
    assert report.verdict == "reliable"
    assert report.faithfulness > 0.5 and 0.5 < report.score <= 1
    # The burst stays on top under noise; the many near-zero regions may reshuffle.
    assert report.noise_stability > 0.3
    assert report.seed_stability is None, "occlusion has no seed"
    # Far above the clip with nothing left (and the wrong explanation's evidence): the
    # burst carries the class, though this small model also leans on the background.
    assert report.evidence_score > 0.3 > 1000 * tone_explanation.empty_score
    as_dict = report.to_dict()
    assert as_dict["verdict"] == "reliable" and len(as_dict["deletion"]["explained"]) == 9
    assert "deletion AUC" in report.summary()


def test_lime_stability_is_measured_across_seeds(tone):
    lime = explain(tone.model, tone.clip, SR, method="lime", n_time=N_TIME, n_bands=N_BANDS,
                   n_samples=96, seed=0, backend=tone.backend)
    noise, seeds = stability(lime, tone.model, backend=tone.backend, n_noise=1, n_seeds=2)
    assert np.isfinite(noise) and seeds is not None and -1 <= seeds <= 1
    # The burst dominates, so its region keeps the top rank across seeds.
    again = explain(tone.model, tone.clip, SR, method="lime", n_time=N_TIME, n_bands=N_BANDS,
                    n_samples=96, seed=1, backend=tone.backend)
    assert again.top_regions(1)[0]["band"] == lime.top_regions(1)[0]["band"] == BAND


def test_deletion_beats_random_on_most_held_out_speech_clips(fsdd_dir, one_blas_thread):
    """The issue's bar on real speech: a digit model, a speaker it never heard."""
    digits = digit_model(fsdd_dir)
    paths = digits.test_paths[::5]  # 8 clips, every digit represented
    wins = 0
    for path in paths:
        e = explain_file(digits.model, path, backend=digits.backend)
        deletion, _ = deletion_insertion(e, digits.model, backend=digits.backend,
                                         n_steps=8, n_random=3)
        wins += deletion.beats_random
    assert wins >= 0.8 * len(paths), f"deletion beat random on only {wins} of {len(paths)}"


def test_bad_settings_are_refused(tone, tone_explanation):
    with pytest.raises(ParameterError, match="n_random"):
        deletion_insertion(tone_explanation, tone.model, backend=tone.backend, n_random=0)
    with pytest.raises(ParameterError, match="n_steps"):
        deletion_insertion(tone_explanation, tone.model, backend=tone.backend, n_steps=0)


def test_a_flat_map_is_unreliable(tone, tone_explanation):
    from earmark.interpret.reliability import is_flat

    flat = dataclasses.replace(tone_explanation, importance=np.zeros_like(tone_explanation.importance))
    assert is_flat(flat.importance) and not is_flat(tone_explanation.importance)
    report = assess(flat, tone.model, backend=tone.backend, n_steps=8, n_random=3, n_noise=1)
    assert report.verdict == "unreliable"
