"""Event boundaries refined on the recording's level (detection.boundaries)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from earmark.backends import get_backend
from earmark.detection.boundaries import LevelTrack, refine_boundaries
from earmark.detection.events import Event
from earmark.detection.stream import detect_file
from earmark.exceptions import ParameterError

SR = 16000


class Loudness:
    """A frame scorer: "loud" where one of the placeholder backend's bands is loud."""

    classes_ = np.array(["loud"])

    def segment_proba(self, X):
        return (X.max(axis=1, keepdims=True) > 2).astype(float)


def _burst(tmp_path, onset_s, offset_s, bed, name="burst.wav"):
    rng = np.random.default_rng(0)
    y = bed(rng, 6 * SR)
    start, stop = int(onset_s * SR), int(offset_s * SR)
    y[start:stop] += 0.5 * np.sin(2 * np.pi * 880 * np.arange(stop - start) / SR)
    path = tmp_path / name
    sf.write(path, y.astype(np.float32), SR)
    return path


def _quiet_noise(rng, n):
    return 0.002 * rng.standard_normal(n)


def test_a_tone_over_quiet_noise_gets_its_own_onset_and_offset(tmp_path):
    """The scores' 0.5 s frames put the tone at 1.0-3.0 s; the level finds 1.23-2.71 s."""
    path = _burst(tmp_path, 1.23, 2.71, _quiet_noise)
    backend = get_backend("placeholder")
    [frames] = detect_file(Loudness(), backend, path, boundaries="frames").events
    [level] = detect_file(Loudness(), backend, path, boundaries="level").events
    assert abs(frames.onset_s - 1.23) > 0.1 or abs(frames.offset_s - 2.71) > 0.1
    assert level.onset_s == pytest.approx(1.23, abs=0.02)
    assert level.offset_s == pytest.approx(2.71, abs=0.02)
    assert (level.label, level.score) == (frames.label, frames.score)


def test_over_a_bed_as_loud_as_the_event_boundaries_stay_where_the_scores_put_them(tmp_path):
    def loud_bed(rng, n):  # bursts of noise as loud as the tone, every 0.3 s
        envelope = np.repeat(rng.uniform(0.0, 0.6, n // 4800 + 1), 4800)[:n]
        return envelope * rng.standard_normal(n)

    path = _burst(tmp_path, 1.23, 2.71, loud_bed)
    track = LevelTrack(SR)
    track.add(sf.read(path, dtype="float32")[0])
    event = Event(str(path), "loud", 1.0, 3.0, 0.9)
    [kept] = refine_boundaries([event], track.result(), bin_s=track.bin_s, search_s=0.5)
    assert kept == event


def test_level_track_is_the_same_whatever_the_block_sizes():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(SR * 2 + 77).astype(np.float32)
    whole = LevelTrack(SR)
    whole.add(y)
    pieces = LevelTrack(SR)
    cuts = np.sort(rng.integers(0, y.size, 9))
    for block in np.split(y, cuts):
        pieces.add(block)
    np.testing.assert_allclose(pieces.result(), whole.result(), atol=1e-4)
    assert whole.result().size == int(np.ceil(y.size / whole.bin_samples))


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="fraction"):
        refine_boundaries([], np.zeros(10), bin_s=0.01, search_s=0.5, fraction=1.5)
    path = _burst(tmp_path, 1.0, 2.0, _quiet_noise)
    with pytest.raises(ParameterError, match="boundaries"):
        detect_file(Loudness(), get_backend("placeholder"), path, boundaries="exact")
