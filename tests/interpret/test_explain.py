"""Local explanations: removing regions, scoring them, and pointing at known evidence."""

from __future__ import annotations

import numpy as np
import pytest
from _explain_data import (
    BAND,
    BURST_S,
    N_BANDS,
    N_TIME,
    SR,
    clip_with_burst,
    digit_model,
    tone_model,
)

from earmark.exceptions import AudioError, ParameterError
from earmark.interpret.explain import Explanation, explain, explain_file
from earmark.interpret.perturb import ClassScorer, MaskedClip, RegionGrid
from earmark.models import predict_files


@pytest.fixture(scope="module")
def tone(one_blas_thread):
    return tone_model()


def band_power(y: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    frequencies = np.fft.rfftfreq(y.size, 1 / SR)
    return float(spectrum[(frequencies >= low_hz) & (frequencies < high_hz)].sum())


# ------------------------------------------------------------------ removing regions
def test_grid_covers_the_clip_with_mel_spaced_bands_up_to_its_nyquist():
    grid = RegionGrid.for_clip(2.0, 4000.0, n_time=5, n_bands=6)
    assert grid.shape == (5, 6) and grid.n_regions == 30
    assert grid.time_edges_s[0] == 0 and grid.time_edges_s[-1] == 2.0
    assert grid.band_edges_hz[0] == 0 and grid.band_edges_hz[-1] == 4000.0
    widths = np.diff(grid.band_edges_hz)
    # Mel spacing (Slaney's): equal widths below 1 kHz, widening above.
    assert np.all(np.diff(widths) >= -1e-9) and widths[-1] > 2 * widths[0]
    with pytest.raises(ParameterError, match="n_bands"):
        RegionGrid.for_clip(1.0, 4000.0, n_bands=0)


@pytest.mark.parametrize("baseline", ["floor", "zero"])
def test_removing_a_region_takes_its_energy_and_leaves_the_rest(tone, baseline):
    y = tone.clip
    grid = RegionGrid.for_clip(y.size / SR, SR / 2, n_time=N_TIME, n_bands=N_BANDS)
    clip = MaskedClip(y, SR, grid, baseline=baseline)
    keep = np.ones((2, N_TIME, N_BANDS), dtype=bool)
    keep[1, 1, BAND] = False  # the burst's region
    whole, without = clip.render(keep)
    np.testing.assert_allclose(whole, y, atol=1e-4)
    low, high = tone.band_edges_hz[BAND], tone.band_edges_hz[BAND + 1]
    segment = slice(int(0.25 * SR), int(0.5 * SR))
    assert band_power(without[segment], low, high) < 0.02 * band_power(y[segment], low, high)
    # Another band in the same segment, and the band in another segment, are untouched.
    lower = tone.band_edges_hz[2], tone.band_edges_hz[3]
    assert band_power(without[segment], *lower) == pytest.approx(
        band_power(y[segment], *lower), rel=0.1
    )
    late = slice(int(0.55 * SR), int(0.95 * SR))
    np.testing.assert_allclose(without[late], y[late], atol=1e-3)


def test_the_floor_baseline_keeps_the_background_where_zero_cuts_a_hole(tone):
    grid = RegionGrid.for_clip(1.0, SR / 2, n_time=N_TIME, n_bands=N_BANDS)
    nothing = np.zeros((1, N_TIME, N_BANDS), dtype=bool)
    floor = MaskedClip(tone.clip, SR, grid, baseline="floor").render(nothing)[0]
    zero = MaskedClip(tone.clip, SR, grid, baseline="zero").render(nothing)[0]
    background = clip_with_burst(np.random.default_rng(1), None, 0, 0)
    rms = lambda y: float(np.sqrt(np.mean(y**2)))  # noqa: E731
    assert rms(zero) < 1e-6
    # Lowered to its floor, the clip is about as loud as its own background noise.
    assert 0.3 * rms(background) < rms(floor) < 1.0 * rms(background)


def test_scorer_embeds_a_batch_exactly_as_files_are_embedded(digit_paths, digits):
    from earmark import audio
    from earmark.embedding import embed_file

    backend = digits.backend
    waveforms = [audio.load(path, sr=backend.sample_rate)[0] for path in digit_paths[:3]]
    n = min(len(w) for w in waveforms)
    scorer = ClassScorer(digits.model, 0, backend=backend)
    # Same-length copies so they batch together; the first is the whole file.
    batch = np.stack([waveforms[0][:n], waveforms[1][:n], waveforms[2][:n]])
    bags = scorer.embed(batch)
    expected = embed_file(backend, digit_paths[0], end_s=n / backend.sample_rate)
    np.testing.assert_allclose(bags[0], expected.X, rtol=1e-5, atol=1e-5)
    P = scorer.proba(batch)
    np.testing.assert_allclose(
        P[0], digits.model.predict_proba(expected.clip[None])[0], atol=1e-5
    )
    assert not np.allclose(P[0], P[1]), "clips of different digits scored alike"


def test_scorer_cuts_a_long_clip_into_several_windows(philharmonia_dir, digits):
    from earmark import audio
    from earmark.embedding import embed_file

    path = max(sorted(philharmonia_dir.rglob("*.mp3")), key=lambda p: p.stat().st_size)
    y, _ = audio.load(path, sr=digits.backend.sample_rate)
    bags = ClassScorer(digits.model, 0, backend=digits.backend).embed(y[None])
    expected = embed_file(digits.backend, path)
    assert bags[0].shape == expected.X.shape and expected.X.shape[0] > 1
    np.testing.assert_allclose(bags[0], expected.X, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------- the known evidence
@pytest.mark.parametrize("method", ["occlusion", "lime"])
def test_explanation_points_at_the_tone_burst(tone, method):
    explanation = explain(
        tone.model, tone.clip, SR, method=method, n_time=N_TIME, n_bands=N_BANDS,
        backend=tone.backend,
    )
    assert explanation.label == "tone" and explanation.base_score > 0.9
    assert explanation.empty_score < 0.1
    top = explanation.top_regions(1)[0]
    assert (top["segment"], top["band"]) == (1, BAND)
    assert top["start_s"] <= BURST_S[0] and BURST_S[1] <= top["end_s"]
    assert top["low_hz"] <= tone.tone_hz <= top["high_hz"]
    # The burst's region stands out from every other one.
    others = np.delete(explanation.importance.ravel(), 1 * N_BANDS + BAND)
    assert top["importance"] > 2 * others.max()


def test_explanation_moves_with_the_evidence(tone):
    """Same model, burst later and at another pitch in the band: the top region follows."""
    low, high = tone.band_edges_hz[BAND], tone.band_edges_hz[BAND + 1]
    moved = clip_with_burst(np.random.default_rng(5), low + 0.3 * (high - low), 0.80, 0.95)
    explanation = explain(tone.model, moved, SR, n_time=N_TIME, n_bands=N_BANDS,
                          backend=tone.backend)
    top = explanation.top_regions(1)[0]
    assert (top["segment"], top["band"]) == (3, BAND)


def test_explaining_the_other_class_gives_the_burst_negative_importance(tone):
    explanation = explain(tone.model, tone.clip, SR, label="noise", n_time=N_TIME,
                          n_bands=N_BANDS, backend=tone.backend)
    assert explanation.label == "noise" and explanation.base_score < 0.1
    assert explanation.importance[1, BAND] == explanation.importance.min() < 0


def test_lime_is_reproducible_with_its_seed_and_varies_without(tone):
    kwargs = dict(method="lime", n_time=N_TIME, n_bands=N_BANDS, n_samples=64,
                  backend=tone.backend)
    a = explain(tone.model, tone.clip, SR, seed=3, **kwargs)
    b = explain(tone.model, tone.clip, SR, seed=3, **kwargs)
    c = explain(tone.model, tone.clip, SR, seed=4, **kwargs)
    np.testing.assert_array_equal(a.importance, b.importance)
    assert not np.allclose(a.importance, c.importance)
    assert a.params["n_samples"] == 64 and a.params["seed"] == 3
    assert 0 <= a.params["surrogate_r2"] <= 1 and a.params["n_scored"] == 64 + 2


def test_explanation_records_what_it_did(tone):
    e = explain(tone.model, tone.clip, SR, n_time=N_TIME, n_bands=N_BANDS, backend=tone.backend)
    assert isinstance(e, Explanation)
    assert e.importance.shape == (N_TIME, N_BANDS)
    assert e.time_edges_s.shape == (N_TIME + 1,) and e.band_edges_hz.shape == (N_BANDS + 1,)
    assert e.params["n_scored"] == N_TIME * N_BANDS + 2 and e.params["runtime_s"] > 0
    rows = e.top_regions(5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(a["importance"] >= b["importance"] for a, b in zip(rows, rows[1:]))
    mask = e.top_mask(0.25)
    assert mask[1, BAND] and mask.sum() <= 8
    # Only positive importances are evidence: here the burst alone.
    assert mask.sum() == (e.importance[mask] > 0).sum()
    as_dict = e.to_dict()
    assert as_dict["label"] == "tone" and len(as_dict["importance"]) == N_TIME


# ---------------------------------------------------------------- real speech model
@pytest.fixture(scope="module")
def digits(fsdd_dir, one_blas_thread):
    return digit_model(fsdd_dir)


@pytest.fixture(scope="module")
def digit_paths(digits):
    return digits.test_paths[::7]


def test_explain_file_on_real_speech_reads_the_file_at_its_own_rate(digits, digit_paths):
    path = digit_paths[0]
    e = explain_file(digits.model, path, backend=digits.backend)
    # An 8 kHz file through a 22.05 kHz backend: bands stop at 4 kHz.
    assert e.band_edges_hz[-1] == 4000.0 and e.sr == 22050
    assert e.path == str(path)
    predicted = [p.to_dict() for p in predict_files(digits.model, [path], backend=digits.backend)][0]
    assert e.label == predicted["label"]
    assert e.base_score == pytest.approx(predicted["score"], abs=0.02)
    by_text = explain_file(digits.model, path, label="3", backend=digits.backend)
    assert by_text.label == "3"


def test_explain_refuses_bad_input_with_clear_messages(digits, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="broken.wav"):
        explain_file(digits.model, bad, backend=digits.backend)
    y = np.zeros(8000, dtype=np.float32)
    with pytest.raises(ParameterError, match="no class 'eleven'"):
        explain(digits.model, y, 8000, label="eleven", backend=digits.backend)
    with pytest.raises(ParameterError, match="method"):
        explain(digits.model, y, 8000, method="shap", backend=digits.backend)
    with pytest.raises(ParameterError, match="baseline"):
        explain(digits.model, y, 8000, baseline="mean", backend=digits.backend)
    with pytest.raises(ParameterError, match="NaN"):
        explain(digits.model, np.full(800, np.nan), 8000, backend=digits.backend)


def test_importance_is_in_log_odds_so_a_sure_model_still_gets_a_map(tone):
    """The model is sure of the tone (p > 0.9): removing the burst costs at most one unit
    of probability, but several of log-odds, and the rest of the map is not all zero."""
    from earmark.interpret.explain import log_odds

    e = explain(tone.model, tone.clip, SR, n_time=N_TIME, n_bands=N_BANDS, backend=tone.backend)
    assert e.params["score"] == "log-odds"
    assert e.importance[1, BAND] > 2.0
    assert float(log_odds(0.5)) == 0.0 and np.isfinite(log_odds([0.0, 1.0])).all()
