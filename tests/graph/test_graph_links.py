"""The class-to-region links as an explanation: on real two-instrument mixtures whose
sources occupy known time spans, each detected tag's links fall mostly on its own
source; `earmark explain` draws them (PNG and page) and checks them like any other
explanation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _graph_data import INSTRUMENTS, note, trained

from earmark.backends.aisfx import AisfxBackend

pytestmark = pytest.mark.skipif(
    not AisfxBackend.is_available(), reason="the aisfx encoder needs torch and the aisfx wheel"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def single_source_tagger(philharmonia_dir):
    """A multi-label hypergraph tagger trained on single instruments only: the first
    second of a note placed at a random offset in an otherwise silent 2.35 s patch."""
    import torch

    from earmark.graph import GraphTagger
    from earmark.interpret.features import PatchConfig, log_mel_patches

    torch.set_num_threads(1)
    config = PatchConfig.aisfx(max_patches=1)
    rng = np.random.default_rng(0)
    X, tags = [], []
    for name in INSTRUMENTS:
        for path in sorted((philharmonia_dir / name).glob("*.mp3"))[0:24:2]:
            y = note(path, config.sr)
            for _ in range(2):
                clip = np.zeros(config.patch_samples, np.float32)
                offset = rng.integers(0, config.patch_samples - config.sr)
                clip[offset:offset + config.sr] = y
                X.append(log_mel_patches(0.1 * clip / np.abs(clip).max(), config)[0][0])
                tags.append((name,))
    tagger = GraphTagger(mode="hypergraph", epochs=30, calibrate=False, random_state=0)
    tagger.fit(np.stack(X), tags)
    tagger.patch_config_ = config.to_dict()
    return tagger, config


def test_each_detected_tags_links_fall_inside_its_sources_span(philharmonia_dir, single_source_tagger):
    from earmark.graph.links import link_mass_in_span

    tagger, config = single_source_tagger
    sr, first, second = config.sr, (0.0, 1.05), (1.25, config.patch_s)
    pairs = [("flute", "trombone"), ("trombone", "cello"), ("cello", "flute"), ("trombone", "flute")]
    inside, detected = [], 0
    for i, (a, b) in enumerate(pairs):
        # Notes never trained on (odd positions), one in each half of the patch.
        clip = np.zeros(config.patch_samples, np.float32)
        clip[:sr] += note(sorted((philharmonia_dir / a).glob("*.mp3"))[1 + 2 * i], sr)
        clip[int(1.3 * sr):int(1.3 * sr) + sr] += note(sorted((philharmonia_dir / b).glob("*.mp3"))[3 + 2 * i], sr)
        clip = 0.1 * clip / np.abs(clip).max()
        P = dict(zip(tagger.classes_, _proba(tagger, clip, config)))
        for tag, (start, end) in ((a, first), (b, second)):
            if P[tag] < 0.5:
                continue  # a tag the tagger missed explains nothing
            detected += 1
            inside.append(link_mass_in_span(tagger, clip, tag, start, end))
    assert detected >= 5, detected  # of 8 tags
    assert min(inside) > 0.5, inside
    assert np.mean(inside) > 0.65, inside


def _proba(tagger, clip, config):
    from earmark.interpret.features import log_mel_patches

    return tagger.predict_proba(log_mel_patches(clip, config)[0])[0]


def test_explain_draws_the_links_and_checks_them(philharmonia_dir, tmp_path, capsys, monkeypatch):
    import sys

    from earmark.cli import main

    tagger, manifest = trained(philharmonia_dir)
    model = tagger.save(tmp_path / "tagger.earmark")
    clip = sorted((philharmonia_dir / "flute").glob("*.mp3"))[1]  # not trained on
    monkeypatch.setattr(sys, "argv", ["earmark", "explain", str(model), str(clip), "-o",
                                      str(tmp_path / "out"), "--json"])  # fmt: skip
    capsys.readouterr()
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (0, None)
    report = json.loads(capsys.readouterr().out)

    files = report["files"]
    assert report["explanation"]["method"] == "links"
    for kind in ("png", "links_png", "curves_png"):
        with open(files[kind], "rb") as handle:
            assert handle.read(8) == PNG_SIGNATURE, kind
    page = open(files["html"], encoding="utf-8").read()
    assert "Class-to-region links" in page and "deletion AUC" in page
    # The same deletion/insertion check as other explanations, on the tagger itself.
    reliability = report["reliability"]
    assert set(reliability) >= {"deletion", "insertion", "verdict"}
    importance = np.asarray(report["explanation"]["importance"])
    assert importance.min() >= 0 and abs(importance.sum() - 1) < 1e-6
