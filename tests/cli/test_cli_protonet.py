"""``earmark train --prototype-network``, ``earmark prototypes`` and ``earmark refine``;
``earmark predict`` and ``earmark explain`` with a prototype network file."""

from __future__ import annotations

import csv
import shutil
import sys

import pytest
from _cli_data import PNG_SIGNATURE

from earmark.backends.aisfx import AisfxBackend
from earmark.interpret.perturb import stft_settings
from earmark.interpret.protonet import PrototypeNetwork
from earmark.models import predict_files

#: Two words, three clips each: the smallest set the default network trains on in seconds.
WORDS = ("bed", "cat")


def copy_two_words(speech_commands_dir, root):
    for word in WORDS:
        (root / word).mkdir(parents=True)
        for clip in sorted((speech_commands_dir / word).glob("*.wav"))[:3]:
            shutil.copy(clip, root / word / clip.name)
    return root


@pytest.fixture
def two_words(speech_commands_dir, tmp_path):
    return copy_two_words(speech_commands_dir, tmp_path / "two-words")


@pytest.fixture(scope="module")
def word_network(speech_commands_dir, tmp_path_factory):
    """``encoder -> (network file, training folder)``: what ``earmark train TWO-WORDS
    --prototype-network --encoder E`` writes, trained once per module and encoder."""
    from earmark.cli import main

    trained = {}

    def train(encoder: str):
        if encoder not in trained:
            folder = tmp_path_factory.mktemp(f"protonet-{encoder}")
            data = copy_two_words(speech_commands_dir, folder / "two-words")
            path = folder / "words.protonet"
            argv = ["earmark", "train", str(data), "--prototype-network", "--encoder", encoder,
                    "-o", str(path), "--quiet"]  # fmt: skip
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(sys, "argv", argv)
                patch.setenv("EARMARK_CACHE_DIR", str(folder / "cache"))
                try:
                    main()
                except SystemExit as exit:
                    assert exit.code in (0, None), f"training failed ({exit.code})"
            trained[encoder] = path, data
        return trained[encoder]

    return train


@pytest.mark.skipif(not AisfxBackend.is_available(), reason="the default encoder needs the aisfx wheel")
def test_train_prototypes_and_refine_from_the_command_line(cli, two_words, tmp_path):
    model = tmp_path / "words.protonet"

    trained = cli("train", two_words, "--prototype-network", "--prototypes-per-class", "2",
                  "-o", model, "--json")  # fmt: skip

    assert trained.code == 0, trained.stderr
    summary = trained.json()
    assert summary["kind"] == "prototype-network" and summary["classes"] == list(WORDS)
    assert summary["encoder"] == "aisfx"  # the default
    network = PrototypeNetwork.load(model)
    assert summary["n_prototypes"] == network.n_prototypes_ == 2 * len(WORDS)
    assert network.encoder == "aisfx" and network.prototypes_per_class == 2

    shown = cli("prototypes", model, "-o", tmp_path / "page.html", "--json")

    assert shown.code == 0, shown.stderr
    html = (tmp_path / "page.html").read_text()
    assert html.count("<audio") == network.n_prototypes_

    refined_path = tmp_path / "refined.protonet"
    refined = cli(
        "refine", model, two_words, "-o", refined_path, "--test", two_words,
        "--epochs", "1", "--min-channel-share", "0.9", "--json",
    )

    assert refined.code == 0, refined.stderr
    report = refined.json()
    assert report["n_parameters_after"] < report["n_parameters_before"] == network.n_parameters_
    assert 0 <= report["test_accuracy_after"] <= 1
    assert PrototypeNetwork.load(refined_path).n_parameters_ == report["n_parameters_after"]


def test_prototypes_of_a_file_that_is_no_network_is_one_clean_error(cli, tmp_path):
    bogus = tmp_path / "bogus.protonet"
    bogus.write_text("hello")

    run = cli("prototypes", bogus, "-o", tmp_path / "page.html")

    assert run.code == 2
    assert "bogus.protonet" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "page.html").exists()


# ---------------------------------------------------- predict and explain with a network
def test_predict_with_a_prototype_network_labels_good_files_and_names_bad_ones(
    cli, word_network, tmp_path
):
    network_path, data = word_network("log-mel")
    broken, missing = tmp_path / "broken.wav", tmp_path / "missing.wav"
    broken.write_text("not audio")
    table = tmp_path / "labels.csv"

    run = cli("predict", network_path, data, broken, missing, "--top", "2", "-o", table, "--json")

    assert run.code == 0, run.stderr
    rows = run.json()
    clips = sorted(data.rglob("*.wav"))
    assert [row["path"] for row in rows] == [str(p) for p in clips] + [str(broken), str(missing)]
    good, bad = rows[:-2], rows[-2:]
    truth = [clip.parent.name for clip in clips]
    # Its own training clips: the network must know nearly all of them.
    assert sum(row["label"] == word for row, word in zip(good, truth)) >= len(good) - 1
    for row in good:
        assert row["error"] is None and row["unknown"] is False
        assert [t["label"] for t in row["top_k"]][0] == row["label"]
        assert row["score"] == row["top_k"][0]["score"] > 0.5
        assert sum(t["score"] for t in row["top_k"]) == pytest.approx(1.0)  # both classes
        assert 0 <= row["nearest_prototype"] < 3 * len(WORDS)
    assert bad[0]["label"] is None and bad[0]["error"].startswith(f"{broken}: ")
    assert bad[1]["label"] is None and bad[1]["error"] == f"{missing}: file not found"
    with open(table, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["label"] for row in written] == [row["label"] or "" for row in rows]
    assert written[-1]["error"] == f"{missing}: file not found"

    only_bad = cli("predict", network_path, missing)

    assert only_bad.code == 1 and "missing.wav: file not found" in only_bad.stderr


def test_a_model_file_of_neither_kind_is_one_clean_error(cli, word_network, tmp_path):
    network_path, data = word_network("log-mel")
    clip = sorted(data.rglob("*.wav"))[0]
    bogus = tmp_path / "bogus.protonet"
    bogus.write_text("hello")
    truncated = tmp_path / "truncated.protonet"
    truncated.write_bytes(network_path.read_bytes()[:-200])

    for path in (bogus, truncated):
        for command in ("predict", "explain"):
            run = cli(command, path, clip)
            assert run.code == 2, (command, path, run.stderr)
            assert path.name in run.stderr and "Traceback" not in run.stderr


def test_explain_with_a_prototype_network_writes_the_picture_and_page(cli, word_network, tmp_path):
    network_path, data = word_network("log-mel")
    clip = sorted((data / "cat").glob("*.wav"))[0]
    predicted = [p.to_dict() for p in predict_files(PrototypeNetwork.load(network_path), [clip])][0]
    out = tmp_path / "why"

    run = cli("explain", network_path, clip, "--no-check", "-o", out, "--json")

    assert run.code == 0, run.stderr
    payload = run.json()
    explanation = payload["explanation"]
    assert payload["reliability"] is None
    assert explanation["label"] == predicted["label"] in WORDS
    # The whole clip, through STFT and back, scores as the file does.
    assert explanation["base_score"] == pytest.approx(predicted["score"], abs=1e-3)
    assert explanation["empty_score"] < explanation["base_score"]
    assert len(explanation["importance"]) == 8 and len(explanation["importance"][0]) == 8
    assert explanation["band_edges_hz"][-1] == 8000.0  # Speech Commands is 16 kHz
    png, html = out / f"{clip.stem}.explanation.png", out / f"{clip.stem}.explanation.html"
    assert payload["files"] == {"png": str(png), "html": str(html)}
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    text = html.read_text()
    assert text.count("<audio ") == 2 and "data:audio/wav;base64," in text


def test_explain_with_a_prototype_network_checks_its_reliability(cli, word_network, tmp_path):
    network_path, data = word_network("log-mel")
    clip = sorted((data / "bed").glob("*.wav"))[0]

    run = cli("explain", network_path, clip, "--class", "bed", "-o", tmp_path, "--json")

    assert run.code == 0, run.stderr
    payload = run.json()
    reliability = payload["reliability"]
    assert payload["explanation"]["label"] == "bed"
    assert reliability["verdict"] in {"reliable", "weak", "unreliable"}
    assert len(reliability["deletion"]["explained"]) == 17 == len(reliability["insertion"]["random"])
    assert reliability["deletion"]["explained"][0] == payload["explanation"]["base_score"]
    assert (tmp_path / f"{clip.stem}.curves.png").read_bytes().startswith(PNG_SIGNATURE)


def test_explain_with_an_aisfx_network_explains_at_its_rate(cli, word_network, tmp_path):
    from earmark.backends.aisfx import AisfxBackend

    if not AisfxBackend.is_available():
        pytest.skip("the aisfx encoder needs torch and the aisfx wheel")
    network_path, data = word_network("aisfx")
    clip = sorted((data / "cat").glob("*.wav"))[0]

    run = cli("explain", network_path, clip, "--segments", "4", "--bands", "4", "--no-check",
              "-o", tmp_path, "--json")  # fmt: skip

    assert run.code == 0, run.stderr
    explanation = run.json()["explanation"]
    assert explanation["label"] in WORDS
    # Resampled to the network's 44.1 kHz (its STFT says so); bands stop at the file's Nyquist.
    assert explanation["params"]["n_fft"] == stft_settings(44100)[0] != stft_settings(16000)[0]
    assert explanation["band_edges_hz"][-1] == 8000.0
    assert (tmp_path / f"{clip.stem}.explanation.png").is_file()
