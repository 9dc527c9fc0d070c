"""The bundled demo dataset: complete, readable, attributed, and the unmodified FSDD files."""

from __future__ import annotations

import collections
import hashlib

from earmark.audio import info
from earmark.datasets import DEMO_ATTRIBUTION, demo_path, detect_layout, load_demo

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def test_demo_has_every_speaker_saying_every_digit_five_times():
    manifest = load_demo()
    assert manifest.source == "fsdd"
    assert len(manifest) == 300
    assert collections.Counter(manifest.y) == {str(d): 30 for d in range(10)}
    assert collections.Counter(manifest.groups) == {s: 50 for s in SPEAKERS}
    pairs = collections.Counter(zip(manifest.y, manifest.groups))
    assert len(pairs) == 60 and set(pairs.values()) == {5}
    indices = {path.rsplit("_", 1)[1] for path in manifest.paths}
    assert indices == {f"{i}.wav" for i in range(5)}


def test_demo_files_are_readable_8khz_mono():
    headers = [info(path) for path in load_demo().paths]
    assert {(h.sr, h.channels) for h in headers} == {(8000, 1)}
    durations = [h.duration_s for h in headers]
    assert 0.1 < min(durations) and max(durations) < 2.5


def test_demo_folder_carries_licence_and_attribution():
    folder = demo_path()
    assert detect_layout(folder) == "fsdd"
    readme = (folder / "README.md").read_text()
    licence_url = "creativecommons.org/licenses/by-sa/4.0"
    for needed in ("Zohar Jackson", "26eb9aa", "CC BY-SA 4.0", licence_url):
        assert needed in readme and needed in DEMO_ATTRIBUTION
    assert "Attribution-ShareAlike 4.0 International" in (folder / "LICENSE").read_text()
    assert (folder / "speakers.csv").read_text().startswith("speaker,gender,accent,language")


def test_demo_files_are_the_published_fsdd_recordings(fsdd_dir):
    for path in load_demo().paths:
        name = path.rsplit("/", 1)[1]
        original = fsdd_dir / "recordings" / name
        with open(path, "rb") as ours, open(original, "rb") as theirs:
            assert hashlib.sha256(ours.read()).digest() == hashlib.sha256(theirs.read()).digest()
