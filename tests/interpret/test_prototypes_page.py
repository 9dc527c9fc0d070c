"""The prototypes page: every prototype with picture, sound, source and weights, and it
plays in a real headless browser."""

from __future__ import annotations

import re

import pytest

from _browser import browser_page
from _protonet_data import trained
from earmark.interpret.features import PatchConfig
from earmark.interpret.prototypes_page import prototypes_page, write_prototypes_page


@pytest.fixture(scope="module")
def small(speech_commands_dir):
    return trained(speech_commands_dir)


def test_page_shows_each_prototype_with_its_source_and_sound(small):
    network, _, _ = small

    html = prototypes_page(network, title="words <test>")

    assert "<title>words &lt;test&gt;</title>" in html
    assert html.count("<audio") == network.n_prototypes_
    assert html.count('src="data:image/png;base64,') == network.n_prototypes_
    assert len(re.findall(r'src="data:audio/wav;base64,', html)) == network.n_prototypes_
    for segment in network.prototype_segments_:
        assert segment["path"].rsplit("/", 1)[-1] in html
    for label in network.classes_:
        assert f">{label} <span" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch


def test_page_opens_in_a_browser_and_its_audio_plays(small, tmp_path):
    network, _, _ = small
    path = write_prototypes_page(network, tmp_path / "prototypes.html")

    with browser_page() as page:
        page.goto(path.as_uri())
        page.wait_for_function(
            "() => [...document.querySelectorAll('audio')].every(a => a.readyState >= 1)",
            timeout=20_000,
        )
        durations = page.eval_on_selector_all("audio", "els => els.map(a => a.duration)")
        images = page.eval_on_selector_all("img", "els => els.map(i => i.naturalWidth)")
        started = page.evaluate(
            "async () => { const a = document.querySelector('audio'); await a.play();"
            " return !a.paused; }"
        )
        page.wait_for_function(
            "() => document.querySelector('audio').currentTime > 0.05", timeout=10_000
        )

    assert len(durations) == network.n_prototypes_
    patch_s = PatchConfig(**network.patch_config_).patch_s
    assert all(abs(d - patch_s) < 0.01 for d in durations)
    assert len(images) == network.n_prototypes_ and all(width > 0 for width in images)
    assert started
