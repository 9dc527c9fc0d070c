"""The explanation page in a real headless Chromium: it opens, shows its pictures, plays."""

from __future__ import annotations

import pytest

from _browser import browser_page
from _explain_data import N_BANDS, N_TIME, SR, tone_model
from earmark.interpret.explain import explain
from earmark.interpret.reliability import assess
from earmark.interpret.render import write_explanation

PLAY_EACH = """async () => {
  const results = [];
  for (const audio of document.querySelectorAll('audio')) {
    await audio.play();
    const started = audio.currentTime;
    await new Promise(resolve => setTimeout(resolve, 400));
    results.push({id: audio.id, paused: audio.paused, started, later: audio.currentTime,
                  duration: audio.duration, error: audio.error && audio.error.code});
    audio.pause();
  }
  return results;
}"""


@pytest.fixture(scope="module")
def page_path(tmp_path_factory, one_blas_thread):
    tone = tone_model()
    explanation = explain(tone.model, tone.clip, SR, n_time=N_TIME, n_bands=N_BANDS,
                          backend=tone.backend, path="tone burst.wav")
    reliability = assess(explanation, tone.model, backend=tone.backend, n_steps=8,
                         n_random=2, n_noise=1)
    written = write_explanation(explanation, tmp_path_factory.mktemp("page"),
                                reliability=reliability)
    return written["html"]


def test_explanation_page_opens_shows_pictures_and_plays_both_sounds(page_path):
    with browser_page() as page:
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_path.as_uri())
        assert page.title() == "Why tone? tone burst.wav"
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        assert len(images) == 2 and all(done and width > 100 for _, done, width in images)
        played = page.evaluate(PLAY_EACH)
        assert [p["id"] for p in played] == ["original", "evidence"]
        for sound in played:
            assert sound["error"] is None, sound
            assert sound["paused"] is False, sound
            assert sound["later"] > sound["started"], f"{sound['id']} did not advance"
            assert sound["duration"] == pytest.approx(1.0, abs=0.01)
        rows = page.locator("table >> nth=1").locator("tr").count()
        assert rows == 1 + 8, "header plus the default eight evidence rows"
        assert not errors
