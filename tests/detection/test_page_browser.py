"""The detection page in a real headless Chromium, opened from disk as a person would.

A real WAV beside the output folder; the page finds it by its relative path (the name
has a space and a '#', which a URL must escape). Clicking an event box plays the
recording from the event's onset and stops at its offset; the wheel and the buttons
zoom; dragging pans. Every wait is on a condition in the page, never a sleep.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from _browser import browser_page
from earmark.detection.events import Event
from earmark.detection.page import write_detection_page
from earmark.detection.stream import DetectionResult

SR = 16000
EVENTS = [("bird", 1.0, 1.6), ("bird", 6.0, 7.0), ("engine", 3.0, 4.2), ("bird", 10.5, 11.0)]


def recording(path, duration_s=12.0):
    """Quiet noise with a tone where each event is, so the audio is real and decodable."""
    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.01, int(duration_s * SR)).astype(np.float32)
    for _, onset, offset in EVENTS:
        t = np.arange(int(onset * SR), int(offset * SR))
        y[t] += 0.3 * np.sin(2 * np.pi * 880 * t / SR)
    sf.write(path, y, SR)
    return duration_s


def test_clicking_an_event_plays_it_and_the_timeline_zooms_and_pans(tmp_path):
    from playwright.sync_api import expect

    audio = tmp_path / "recordings" / "dawn chorus #1.wav"
    audio.parent.mkdir()
    duration = recording(audio)
    start = np.arange(int(duration * 2)) * 0.5
    result = DetectionResult(
        path=str(audio), classes=["engine", "bird", "rain <b>"],
        scores=np.zeros((start.size, 3), np.float32), start_s=start, end_s=start + 0.5,
        events=[Event(str(audio), label, on, off, 0.9) for label, on, off in EVENTS],
        duration_s=duration, sample_rate=SR, hop_s=0.5, thresholds=np.full(3, 0.5),
    )
    page_path = write_detection_page(result, tmp_path / "out" / "dawn chorus #1.detections.html")
    text = page_path.read_text().replace("http://www.w3.org/2000/svg", "")
    assert "://" not in text and "<script src" not in text and "<link" not in text

    with browser_page() as page:
        page.set_default_timeout(15_000)
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready='true']")

        # A lane per class, busiest first; a box per event; a label is text, not markup.
        lanes = page.locator("#timeline g.lane")
        expect(lanes).to_have_count(3)
        assert lanes.evaluate_all("ls => ls.map(l => l.dataset.label)") == ["bird", "engine", "rain <b>"]
        assert page.locator("#timeline b").count() == 0
        boxes = page.locator("#timeline rect.event")
        expect(boxes).to_have_count(4)
        expect(page.locator("#events tbody tr")).to_have_count(4)
        assert all(url.startswith("file://") for url in requests), requests

        # Click the engine event (3.0 to 4.2 s): the audio seeks to its onset, plays,
        # and pauses at its offset.
        page.evaluate("""() => {
            const p = document.getElementById('player');
            window.seeks = [];
            p.addEventListener('seeking', () => window.seeks.push(p.currentTime));
        }""")
        engine = boxes.nth(1)  # time order: bird 1.0, engine 3.0, bird 6.0, bird 10.5
        assert "engine" in engine.locator("title").text_content()
        engine.click()
        page.wait_for_function(
            "() => { const p = document.getElementById('player');"
            " return !p.paused && p.currentTime > 3.0; }"
        )
        assert page.evaluate("window.seeks")[0] == pytest.approx(3.0, abs=0.02)
        page.wait_for_function("() => document.getElementById('player').paused")
        stopped = page.evaluate("document.getElementById('player').currentTime")
        assert 4.15 <= stopped <= 4.5, stopped
        assert page.eval_on_selector("#player", "p => p.error") is None
        expect(engine).to_have_class("event playing")

        # The table's rows play their events too.
        page.locator("#events tbody tr").nth(3).locator("button").click()
        page.wait_for_function(
            "() => { const p = document.getElementById('player');"
            " return !p.paused && p.currentTime > 10.5; }"
        )
        page.wait_for_function("() => document.getElementById('player').paused")
        assert 10.95 <= page.evaluate("document.getElementById('player').currentTime") <= 11.3

        def shown():
            return page.eval_on_selector(
                "#timeline", "s => [Number(s.dataset.start), Number(s.dataset.end)]"
            )

        assert shown() == [0, duration]
        page.click("#zoom-in")
        assert shown() == [3.0, 9.0], "zooming in halves the range around its middle"
        # Outside the view, boxes are hidden; inside, they are wider than before.
        assert boxes.nth(0).evaluate("r => r.style.display") == "none"
        assert boxes.nth(3).evaluate("r => r.style.display") == "none"

        # The wheel zooms around the pointer: the time under it stays put.
        box = page.locator("#timeline").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
        before = shown()
        page.mouse.wheel(0, -100)
        page.wait_for_function(f"() => Number(document.getElementById('timeline').dataset.end) - Number(document.getElementById('timeline').dataset.start) < {before[1] - before[0] - 0.1}")
        after = shown()
        assert after[1] - after[0] < before[1] - before[0]
        assert before[0] < after[0] and after[1] < before[1]

        # Dragging to the right pans toward the start of the file.
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        panned = shown()
        assert panned[0] < after[0]
        assert abs((panned[1] - panned[0]) - (after[1] - after[0])) < 1e-6

        page.click("#reset")
        assert shown() == [0, duration]
        page.click("#zoom-out")
        assert shown() == [0, duration], "never beyond the whole file"
