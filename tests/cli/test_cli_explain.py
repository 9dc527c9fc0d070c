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
