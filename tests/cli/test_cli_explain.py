"""``earmark explain``: PNG + HTML for one clip, reliability printed, clean errors."""

from __future__ import annotations

import json

import pytest
from _cli_data import PNG_SIGNATURE


@pytest.fixture(scope="module")
def digit_model_path(digits_dir, tmp_path_factory):
    """What `earmark train DIGITS -b mfcc` writes, made once for the module."""
    import numpy as np

    from earmark.backends import get_backend
    from earmark.embedding import embed_file
    from earmark.models import EarmarkModel

    backend = get_backend("mfcc")
    paths = sorted((digits_dir / "recordings").glob("*.wav"))
    X = np.stack([embed_file(backend, path).clip for path in paths])
    labels = [path.name.split("_")[0] for path in paths]
    path = tmp_path_factory.mktemp("model") / "digits.earmark"
    return EarmarkModel.train(X, labels, backend=backend).save(path)


def test_explain_writes_png_and_page_and_reports_reliability(
    cli, digit_model_path, digits_dir, tmp_path
):
    clip = digits_dir / "recordings" / "2_lucas_0.wav"
    out = tmp_path / "why"
    run = cli("explain", digit_model_path, clip, "-o", out, "--json")
    assert run.code == 0, run.stderr
    payload = json.loads(run.stdout)
    explanation, reliability = payload["explanation"], payload["reliability"]
    assert explanation["method"] == "occlusion" and explanation["path"] == str(clip)
    assert len(explanation["importance"]) == 8 and len(explanation["importance"][0]) == 8
    assert explanation["band_edges_hz"][-1] == 4000.0  # FSDD is 8 kHz
    assert reliability["verdict"] in {"reliable", "weak", "unreliable"}
    assert reliability["deletion"]["auc"] < reliability["deletion"]["random_auc"]
    png, html = out / "2_lucas_0.explanation.png", out / "2_lucas_0.explanation.html"
    assert payload["files"] == {
        "png": str(png), "curves_png": str(out / "2_lucas_0.curves.png"), "html": str(html)
    }
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    text = html.read_text()
    assert text.count("<audio ") == 2 and "data:audio/wav;base64," in text


def test_explain_for_people_with_lime_a_chosen_class_and_no_check(
    cli, digit_model_path, digits_dir, tmp_path
):
    clip = digits_dir / "recordings" / "1_george_2.wav"
    run = cli("explain", digit_model_path, clip, "--method", "lime", "--class", "3",
              "--samples", "32", "--segments", "4", "--bands", "4", "--no-check",
              "-o", tmp_path / "out")
    assert run.code == 0, run.stderr
    assert "lime: evidence for 3" in run.stderr and "reliability" not in run.stderr
    assert "wrote" in run.stderr and run.stdout == ""
    assert (tmp_path / "out" / "1_george_2.explanation.html").is_file()
    assert not (tmp_path / "out" / "1_george_2.curves.png").exists()


def test_explain_errors_are_one_clean_line(cli, digit_model_path, digits_dir, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    run = cli("explain", digit_model_path, broken, "-o", tmp_path / "out")
    assert run.code == 2 and "broken.wav" in run.stderr and "Traceback" not in run.stderr
    clip = digits_dir / "recordings" / "1_george_2.wav"
    run = cli("explain", digit_model_path, clip, "--class", "eleven", "--no-check")
    assert run.code == 2 and "no class 'eleven'" in run.stderr
    run = cli("explain", digit_model_path, clip, "--method", "shap")
    assert run.code == 2 and "method" in run.stderr


@pytest.fixture(scope="module")
def long_recording(digits_dir, tmp_path_factory):
    """25 minutes of real speech at 8 kHz (the bundled digits end to end, repeated), with
    a known clip, 2_lucas_0, at exactly 600 s."""
    import numpy as np
    import soundfile as sf

    recordings = digits_dir / "recordings"
    words = [sf.read(path, dtype="int16")[0] for path in sorted(recordings.glob("*.wav"))]
    minute = np.resize(np.concatenate(words), 60 * 8000)
    clip, _ = sf.read(recordings / "2_lucas_0.wav", dtype="int16")
    path = tmp_path_factory.mktemp("long") / "night.wav"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_16") as handle:
        for index in range(25):
            block = minute.copy()
            if index == 10:
                block[: clip.size] = clip
            handle.write(block)
    return path


def test_explain_refuses_a_25_minute_file_at_once_with_the_reason(
    cli, digit_model_path, long_recording, tmp_path
):
    import time

    started = time.perf_counter()
    run = cli("explain", digit_model_path, long_recording, "-o", tmp_path / "out")
    elapsed = time.perf_counter() - started
    assert run.code == 2
    assert "1500.0 s long" in run.stderr and "--start" in run.stderr
    assert "Traceback" not in run.stderr
    assert elapsed < 1.0, f"refused after {elapsed:.2f} s"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_explain_a_span_of_a_long_file_matches_the_clip_alone(
    cli, digit_model_path, digits_dir, long_recording, tmp_path
):
    clip = digits_dir / "recordings" / "2_lucas_0.wav"
    import soundfile as sf

    end = 600 + sf.info(clip).frames / 8000
    args = ("--no-check", "--segments", "4", "--bands", "4", "--json")
    span = cli("explain", digit_model_path, long_recording, "--start", "600", "--end", end,
               "-o", tmp_path / "span", *args)
    alone = cli("explain", digit_model_path, clip, "-o", tmp_path / "alone", *args)
    assert span.code == 0 and alone.code == 0, span.stderr + alone.stderr
    from_span = json.loads(span.stdout)["explanation"]
    from_clip = json.loads(alone.stdout)["explanation"]
    assert from_span["label"] == from_clip["label"]
    import numpy as np

    np.testing.assert_allclose(from_span["importance"], from_clip["importance"], atol=1e-4)
