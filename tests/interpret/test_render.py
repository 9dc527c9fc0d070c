"""Pictures, sound and the page of an explanation."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile

from _explain_data import BAND, N_BANDS, N_TIME, SR, tone_model
from earmark.interpret._html import escape, page, png_data_uri, wav_data_uri
from earmark.interpret.explain import explain
from earmark.interpret.reliability import assess
from earmark.interpret.render import (
    explanation_page, plot_curves, plot_explanation, write_explanation,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explained(one_blas_thread):
    tone = tone_model()
    explanation = explain(tone.model, tone.clip, SR, n_time=N_TIME, n_bands=N_BANDS,
                          backend=tone.backend, path="/data/a <b> & c.wav")
    reliability = assess(explanation, tone.model, backend=tone.backend, n_steps=8,
                         n_random=2, n_noise=1)
    return explanation, reliability


def decode_wav(uri: str) -> tuple[np.ndarray, int]:
    assert uri.startswith("data:audio/wav;base64,")
    y, sr = soundfile.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return y, sr


def test_wav_data_uri_round_trips_16_bit_audio_and_clips_overload():
    y = np.sin(np.linspace(0, 100, 8000)) * 0.5
    decoded, sr = decode_wav(wav_data_uri(y, 8000))
    assert sr == 8000 and decoded.shape == y.shape
    np.testing.assert_allclose(decoded, y, atol=1 / 2**15 * 2)
    loud, _ = decode_wav(wav_data_uri(np.array([3.0, -3.0, np.nan]), 8000))
    np.testing.assert_allclose(loud, [1.0, -1.0, 0.0], atol=1e-4)


def test_png_data_uri_and_page_escape_what_they_are_given():
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([0, 1])
    uri = png_data_uri(figure)
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    html = page('<script>alert("x")</script>', "<p>body</p>")
    assert html.startswith("<!DOCTYPE html>") and "<p>body</p>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert escape('"a" & <b>') == "&quot;a&quot; &amp; &lt;b&gt;"


def test_heat_map_covers_the_grid_and_outlines_the_top_regions(explained, tmp_path):
    explanation, _ = explained
    figure = plot_explanation(explanation, top_k=3)
    spectrogram, heat = figure.axes[0], figure.axes[1]
    meshes = heat.collections
    importance = np.asarray(meshes[-1].get_array()).reshape(N_BANDS, N_TIME)
    np.testing.assert_allclose(importance, explanation.importance.T)
    # Only regions of positive importance are outlined.
    n_positive = int((np.sort(explanation.importance.ravel())[::-1][:3] > 0).sum())
    assert len(heat.patches) == n_positive >= 1
    outlined = heat.patches[0]
    assert outlined.get_x() == explanation.time_edges_s[1]
    assert outlined.get_y() == pytest.approx(explanation.band_edges_hz[BAND])
    assert spectrogram.get_ylim() == (0.0, explanation.band_edges_hz[-1])
    path = plot_explanation(explanation, tmp_path / "sub" / "heat.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_curves_plot_both_curves_against_random(explained):
    _, reliability = explained
    figure = plot_curves(reliability)
    deletion_axes, insertion_axes = figure.axes
    explained_line = deletion_axes.get_lines()[-1]
    np.testing.assert_allclose(explained_line.get_ydata(), reliability.deletion.explained)
    assert "AUC" in deletion_axes.get_legend().get_texts()[-1].get_text()
    np.testing.assert_allclose(insertion_axes.get_lines()[-1].get_ydata(),
                               reliability.insertion.explained)


def test_page_holds_pictures_table_and_two_playable_sounds(explained):
    explanation, reliability = explained
    html = explanation_page(explanation, reliability, top_k=4)
    # The file name is escaped, in the title and everywhere else.
    assert "a <b> & c" not in html and "a &lt;b&gt; &amp; c.wav" in html
    sources = dict(re.findall(r'<audio id="(\w+)"[^>]*src="([^"]+)"', html))
    assert set(sources) == {"original", "evidence"}
    original, sr = decode_wav(sources["original"])
    evidence, sr_evidence = decode_wav(sources["evidence"])
    assert sr == sr_evidence == SR and len(original) == len(evidence) == explanation.y.size
    np.testing.assert_allclose(original, explanation.y, atol=1e-3)
    # The evidence keeps the burst and loses part of the rest.
    burst = slice(int(0.30 * SR), int(0.45 * SR))
    assert np.sqrt(np.mean(evidence[burst] ** 2)) > 0.5 * np.sqrt(np.mean(original[burst] ** 2))
    assert np.sum(evidence**2) < np.sum(original**2)
    assert html.count('src="data:image/png;base64,') == 2
    table = html[html.index("Top evidence"):]
    assert table.count("<tr><td class=\"num\">") == 4
    top = explanation.top_regions(1)[0]
    assert f"{top['low_hz']:.0f}&ndash;{top['high_hz']:.0f}" in table
    assert reliability.verdict in html


def test_page_without_reliability_and_low_rate_audio(explained, tmp_path):
    explanation, reliability = explained
    # An 8 kHz file explained through a 22.05 kHz backend plays back at 8 kHz.
    narrow = explain(tone_model().model, explanation.y[::2].copy(), SR // 2,
                     backend=tone_model().backend, n_time=2, n_bands=4)
    html = explanation_page(narrow)
    sources = re.findall(r'<audio id="\w+"[^>]*src="([^"]+)"', html)
    assert [decode_wav(uri)[1] for uri in sources] == [11025, 11025]
    assert "Can this explanation be trusted?" not in html and "the model gives it" not in html
    written = write_explanation(explanation, tmp_path / "out", reliability=reliability)
    assert set(written) == {"png", "curves_png", "html"}
    assert written["html"].name == "a <b> & c.explanation.html"
    assert written["curves_png"].read_bytes().startswith(PNG_SIGNATURE)
