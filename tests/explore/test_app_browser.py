"""The labelling loop as a person uses it, in a real headless Chromium.

Search by example (a stored clip, then an uploaded file), play a result, label clips
positive and negative, train, see the most uncertain clips, reload the page and find
the labels still there, then restart the server over the same store folder and find
them again. Every wait is on a selector or a condition in the page, never a sleep.
"""

from __future__ import annotations

import pytest

from _browser import browser_page
from _labelling import HOSTILE_NAME, build_store, running_server, train_digit_model

TARGET = "zero"


@pytest.fixture(scope="module")
def store_dir(fsdd_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelling-browser")
    build_store(fsdd_dir, folder)
    return folder / "store"


def _ready(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']")


def _search_like(page, name):
    from playwright.sync_api import expect

    page.fill("#filter", name)
    rows = page.locator("#clips li.clip")
    expect(rows).to_have_count(1)
    rows.first.locator("button.search").click()
    expect(page.locator("#query")).to_contain_text(f"10 clips most like {name}")
    return page.locator("#results li.clip")


def _label_shown(page) -> dict[str, str]:
    """What the page's 'Labelled' list shows: key -> positive / negative / skip."""
    return page.eval_on_selector_all(
        "#labelled li.clip",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.key, r.dataset.label]))",
    )


def test_search_play_label_train_reload_restart(store_dir, fsdd_dir):
    from playwright.sync_api import expect

    with running_server(store_dir) as url, browser_page() as page:
        page.set_default_timeout(20_000)
        _ready(page, url)
        page.fill("#target", TARGET)
        page.dispatch_event("#target", "change")
        page.wait_for_selector("body[data-ready='true']")
        expect(page.locator("#counts")).to_have_text("0 positive · 0 negative · 0 skipped")

        # A file name made of HTML shows as text and adds no element to the page.
        page.fill("#filter", "onerror")
        hostile = page.locator("#clips li.clip .name")
        expect(hostile).to_have_count(1)
        assert hostile.text_content() == HOSTILE_NAME
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.__pwned") is None

        # Search by a stored clip: the clip itself comes first, at distance 0.
        results = _search_like(page, "0_george_0.wav")
        expect(results).to_have_count(10)
        assert results.first.locator(".name").text_content() == "0_george_0.wav"

        # Play the first result: the <audio> element is playing and its time moves on.
        results.nth(1).locator("button.play").click()
        page.wait_for_function(
            "() => { const p = document.getElementById('player');"
            " return !p.paused && p.currentTime > 0; }"
        )
        assert page.eval_on_selector("#player", "p => p.error") is None
        playing = page.eval_on_selector("#player", "p => p.dataset.key")
        assert playing == results.nth(1).get_attribute("data-key")

        # Label what the searches found, by the digit in the file name.
        expected: dict[str, str] = {}
        for query in ("0_george_0.wav", "1_theo_2.wav"):
            results = _search_like(page, query)
            for index in range(results.count()):
                row = results.nth(index)
                name = row.locator(".name").text_content()
                value = "positive" if name.startswith("0_") else "negative"
                if index == 5:
                    value = "skip"
                key = row.get_attribute("data-key")
                if key in expected:
                    continue  # found by both searches: labelled once already
                row.locator(f"button.label-{value}").click()
                expect(row).to_have_attribute("data-label", value)
                pressed = row.locator(f"button.label-{value}")
                expect(pressed).to_have_attribute("aria-pressed", "true")
                expected[key] = value
        assert {"positive", "negative", "skip"} <= set(expected.values())
        expect(page.locator("#labelled li.clip")).to_have_count(len(expected))
        assert _label_shown(page) == expected

        # Train: the page lists the clips the classifier is least sure of, none labelled.
        page.click("#train")
        uncertain = page.locator("#uncertain li.clip")
        expect(uncertain).to_have_count(10)
        n_positive = sum(value == "positive" for value in expected.values())
        n_negative = sum(value == "negative" for value in expected.values())
        expect(page.locator("#model")).to_contain_text(
            f"Trained on {n_positive} positive and {n_negative} negative clips"
        )
        shown = [uncertain.nth(i).get_attribute("data-key") for i in range(10)]
        assert not set(shown) & set(expected)
        details = uncertain.locator(".detail").all_text_contents()
        assert all("p(positive)" in text for text in details)

        # Label one of them from the uncertain list; it joins the labelled list.
        first = uncertain.first
        first.locator("button.label-negative").click()
        expect(first).to_have_attribute("data-label", "negative")
        expected[shown[0]] = "negative"
        expect(page.locator("#labelled li.clip")).to_have_count(len(expected))

        # Reload: the labels come back from the store, and the classifier retrained on
        # them proposes clips again, none of them labelled.
        _ready(page, url)
        expect(page.locator("#target")).to_have_value(TARGET)
        expect(page.locator("#labelled li.clip")).to_have_count(len(expected))
        assert _label_shown(page) == expected
        expect(uncertain).to_have_count(10)
        queue = [uncertain.nth(i).get_attribute("data-key") for i in range(10)]
        assert not set(queue) & set(expected)

        # Search by an uploaded file: the same recording is the nearest clip.
        page.set_input_files("#upload", str(fsdd_dir / "recordings" / "1_lucas_3.wav"))
        expect(page.locator("#query")).to_contain_text("10 clips most like 1_lucas_3.wav")
        nearest = page.locator("#results li.clip").first.locator(".name")
        expect(nearest).to_have_text("1_lucas_3.wav")
        assert page.locator("#error").is_hidden()

    # A new server over the same folder, on another port (so another origin, with no
    # page state of its own): the labels are read back from disk.
    with running_server(store_dir) as url, browser_page() as page:
        page.set_default_timeout(20_000)
        _ready(page, url)
        expect(page.locator("#target")).to_have_value(TARGET)
        expect(page.locator("#labelled li.clip")).to_have_count(len(expected))
        assert _label_shown(page) == expected
        uncertain = page.locator("#uncertain li.clip")
        expect(uncertain).to_have_count(10)
        assert [uncertain.nth(i).get_attribute("data-key") for i in range(10)] == queue


def test_a_loaded_model_shows_its_prediction_beside_each_clip(fsdd_dir, tmp_path):
    """`earmark serve --model`: the page says which model it shows and, per clip, the
    label and probability ``predict_files`` gives (the full top 3 in the tooltip)."""
    from playwright.sync_api import expect

    from earmark.models import load_model, predict_files
    from earmark.store import LanceStore

    store, paths = build_store(fsdd_dir, tmp_path)
    model = load_model(train_digit_model(store, paths, tmp_path))
    with running_server(tmp_path / "store", model=model) as url, browser_page() as page:
        page.set_default_timeout(20_000)
        _ready(page, url)
        expect(page.locator("#info")).to_contain_text("showing a clip model's predictions (2 classes)")
        page.fill("#filter", "1_theo_")
        rows = page.locator("#clips li.clip")
        expect(rows).to_have_count(5)
        shown = dict(zip(rows.locator(".name").all_text_contents(),
                         rows.locator(".model-says").all_text_contents()))
        truth = predict_files(model, [p for p in paths if p.name.startswith("1_theo_")],
                              store=LanceStore(tmp_path / "store"))
        assert shown == {
            p.path.rsplit("/", 1)[-1]: f"model: {p.label} {p.score:.2f}" for p in truth
        }
        tip = rows.first.locator(".model-says").get_attribute("title")
        assert tip.startswith(truth[0].top_k[0][0] + " ")
