"""``earmark train --prototype-network``, ``earmark prototypes`` and ``earmark refine``."""

from __future__ import annotations

import shutil

import pytest

from earmark.interpret.protonet import PrototypeNetwork

#: Two words, three clips each: the smallest set the default network trains on in seconds.
WORDS = ("bed", "cat")


@pytest.fixture
def two_words(speech_commands_dir, tmp_path):
    root = tmp_path / "two-words"
    for word in WORDS:
        (root / word).mkdir(parents=True)
        for clip in sorted((speech_commands_dir / word).glob("*.wav"))[:3]:
            shutil.copy(clip, root / word / clip.name)
    return root


def test_train_prototypes_and_refine_from_the_command_line(cli, two_words, tmp_path):
    model = tmp_path / "words.protonet"

    trained = cli("train", two_words, "--prototype-network", "-o", model, "--json")

    assert trained.code == 0, trained.stderr
    summary = trained.json()
    assert summary["kind"] == "prototype-network" and summary["classes"] == list(WORDS)
    network = PrototypeNetwork.load(model)
    assert summary["n_prototypes"] == network.n_prototypes_ == 3 * len(WORDS)

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
