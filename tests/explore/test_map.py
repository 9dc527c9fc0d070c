"""The cluster map in a real headless Chromium: click a point, see its file and label, hear it;
switch the colouring; hostile names stay text.

Every wait is on a condition in the page, never a sleep.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest

from _browser import browser_page
from earmark.exceptions import ParameterError
from earmark.explore.map import write_map

WORDS = ("bed", "cat", "dog")
PER_WORD = 4
#: A file name and a label that are also markup: they must show as text, never run.
HOSTILE_FILE = "<img src=x onerror=\"window.pwned=1\">.wav"
HOSTILE_LABEL = "<b>loud</b> & \"quoted\"</script>"


@pytest.fixture(scope="module")
def clips(speech_commands_dir, tmp_path_factory):
    """12 real Speech Commands clips, one with a hostile name, and where each lies."""
    folder = tmp_path_factory.mktemp("map-clips")
    files, labels = [], []
    for word in WORDS:
        for source in sorted((speech_commands_dir / word).glob("*.wav"))[:PER_WORD]:
            files.append(str(source))
            labels.append(word)
    hostile = folder / HOSTILE_FILE
    shutil.copy(files[-1], hostile)
    files[-1], labels[-1] = str(hostile), HOSTILE_LABEL
    clusters = np.repeat(np.arange(len(WORDS)), PER_WORD)
    clusters[0] = -1
    coordinates = np.c_[np.arange(len(files)) % 4, np.arange(len(files)) // 4].astype(float)
    return files, labels, clusters, coordinates


def _open(page, path: Path):
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector("#earmark-map .scatterlayer .trace .point")
    return alerts


def _click_point(page, trace: int, point: int):
    """Click point ``point`` of the ``trace``-th visible trace, where plotly draws it."""
    box = page.locator("#earmark-map .scatterlayer .trace").nth(trace).locator(
        ".point"
    ).nth(point).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def _wait_playing(page):
    page.wait_for_function(
        "() => { const a = document.getElementById('earmark-audio');"
        " return !a.paused && a.currentTime > 0; }",
        timeout=15000,
    )


def test_click_shows_file_and_label_and_plays_embedded_sound(clips, tmp_path):
    files, labels, clusters, coordinates = clips
    written = write_map(tmp_path / "map.html", coordinates, files, labels=labels, clusters=clusters)
    assert written.audio_failures == [] and written.n_points == len(files)
    with browser_page() as page:
        alerts = _open(page, written.path)
        # Traces follow cluster order; cluster 0's first point is the second clip.
        _click_point(page, trace=0, point=0)
        page.wait_for_function("document.getElementById('earmark-file').textContent !== '-'")
        assert page.text_content("#earmark-file") == files[1]
        assert page.text_content("#earmark-label") == "bed"
        assert page.text_content("#earmark-cluster") == "cluster 0"
        _wait_playing(page)
        source = page.evaluate("document.getElementById('earmark-audio').src")
        assert source.startswith("data:audio/mpeg;base64,")
        assert len(base64.b64decode(source.split(",", 1)[1])) > 1000
        # The unassigned clip (cluster -1) is in the last trace; click it too.
        n_traces = page.locator("#earmark-map .scatterlayer .trace").count()
        _click_point(page, trace=n_traces - 1, point=0)
        page.wait_for_function(
            f"document.getElementById('earmark-file').textContent === {files[0]!r}"
        )
        assert page.text_content("#earmark-cluster") == "unassigned"
        # The second button colours by label instead.
        legend = "#earmark-map .legend .legendtext"
        assert page.locator(legend).all_text_contents() == [
            "cluster 0", "cluster 1", "cluster 2", "unassigned"
        ]
        page.locator("#earmark-map .updatemenu-button").nth(1).click()
        page.wait_for_function(f"document.querySelector('{legend}').textContent !== 'cluster 0'")
        assert page.locator(legend).all_text_contents() == sorted(set(labels))
        assert alerts == []


def test_hostile_names_show_as_text_and_never_run(clips, tmp_path):
    files, labels, clusters, coordinates = clips
    written = write_map(
        tmp_path / "map.html", coordinates, files, labels=labels, clusters=clusters,
        color_by="label", audio="none", title="<script>window.pwned=2</script>",
    )
    page_text = written.path.read_text()
    assert "<img src=x" not in page_text and "<b>loud" not in page_text
    assert "<script>window.pwned" not in page_text
    with browser_page() as page:
        alerts = _open(page, written.path)
        legend = page.locator("#earmark-map .legend .legendtext").all_text_contents()
        assert legend == sorted(set(labels))  # labels, alphabetical
        assert HOSTILE_LABEL in legend  # shown literally, markup and all
        hostile_trace = legend.index(HOSTILE_LABEL)
        _click_point(page, trace=hostile_trace, point=0)
        page.wait_for_function("document.getElementById('earmark-file').textContent !== '-'")
        assert page.text_content("#earmark-file") == files[-1]
        assert page.text_content("#earmark-label") == HOSTILE_LABEL
        assert page.text_content("#earmark-status") == "no sound for this clip"
        assert page.title() == "<script>window.pwned=2</script>"
        assert page.evaluate("window.pwned === undefined")
        assert page.locator("img").count() == 0
        assert alerts == []


def test_linked_audio_plays_the_file_beside_the_page(clips, tmp_path):
    files, labels, clusters, coordinates = clips
    local = tmp_path / "sounds"
    local.mkdir()
    copies = []
    for i, file in enumerate(files[:4]):
        copies.append(str(shutil.copy(file, local / f"clip {i}#.wav")))  # spaces and '#' quoted
    written = write_map(
        tmp_path / "pages" / "map.html", coordinates[:4], copies, labels=labels[:4],
        audio="link",
    )
    assert "../sounds/clip%200%23.wav" in written.path.read_text()
    with browser_page() as page:
        _open(page, written.path)
        _click_point(page, trace=0, point=0)  # the only label: "bed", all four clips
        page.wait_for_function("document.getElementById('earmark-file').textContent !== '-'")
        assert page.text_content("#earmark-file") == copies[0]
        _wait_playing(page)


def test_unreadable_audio_is_reported_by_name_and_the_point_stays(clips, tmp_path):
    files, labels, clusters, coordinates = clips
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    written = write_map(
        tmp_path / "map.html", coordinates[:3], [files[0], str(broken), files[2]],
        clusters=[0, 0, 1],
    )
    assert [file for file, _ in written.audio_failures] == [str(broken)]
    assert written.n_points == 3


def test_previews_are_cut_to_audio_seconds(philharmonia_dir, tmp_path):
    long_clip = max(philharmonia_dir.glob("*/*.mp3"), key=lambda path: path.stat().st_size)
    sizes = {}
    for seconds in (0.5, 2.0):
        written = write_map(
            tmp_path / f"map-{seconds}.html", np.zeros((1, 2)), [str(long_clip)],
            labels=["x"], audio_seconds=seconds,
        )
        sizes[seconds] = written.path.stat().st_size
    # About 4-6 kB of MP3 per second at 16 kHz, a third more as base64.
    assert 1500 < sizes[2.0] - sizes[0.5] < 20000


@pytest.mark.parametrize("kwargs, message", [
    ({"coordinates": np.zeros((2, 3))}, "expected coordinates of shape"),
    ({"coordinates": np.full((3, 2), np.nan)}, "expected finite coordinates"),
    ({"labels": ["a"]}, "expected 3 labels"),
    ({"labels": None, "clusters": None}, "expected labels, clusters or both"),
    ({"audio": "stream"}, "expected audio in"),
    ({"color_by": "speaker"}, "expected color_by in"),
])
def test_bad_arguments_say_what_was_expected(kwargs, message, tmp_path):
    arguments = {"coordinates": np.zeros((3, 2)), "labels": ["a", "b", "c"], "clusters": None}
    arguments.update(kwargs)
    coordinates = arguments.pop("coordinates")
    with pytest.raises(ParameterError, match=message):
        write_map(tmp_path / "map.html", coordinates, ["1.wav", "2.wav", "3.wav"], **arguments)
