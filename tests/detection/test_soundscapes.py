"""Synthetic soundscapes from real clips: the stated truth is where the audio is."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from earmark import audio
from earmark.datasets import load_dataset
from earmark.detection.metrics import event_based_scores
from earmark.detection.soundscapes import (
    load_soundscapes,
    make_soundscapes,
    standard_soundscapes,
)
from earmark.exceptions import ParameterError
from earmark.manifest import Manifest

SR = 16000


@pytest.fixture(scope="module")
def pools(speech_commands_dir, philharmonia_dir):
    """Two clips each of three words, and four orchestral notes for the bed."""
    words = [(path, word) for word in ("dog", "left", "seven")
             for path in sorted((speech_commands_dir / word).glob("*.wav"))[:2]]
    notes = sorted(philharmonia_dir.glob("*/*.mp3"))[::120]
    return words, notes


@pytest.fixture(scope="module")
def made(pools, tmp_path_factory):
    words, notes = pools
    return make_soundscapes(
        words, notes, out_dir=tmp_path_factory.mktemp("soundscapes"), n=2, duration_s=20.0,
        sr=SR, events_per_minute=15.0, snr_db=(15.0, 25.0), seed=3, allow_overlap=False,
        save_stems=True,
    )


def _mix(path):
    y, sr = sf.read(path, dtype="float64")
    assert sr == SR
    return y


def _rows(made):
    for row in made.truth.itertuples():
        start, stop = round(row.onset_s * SR), round(row.offset_s * SR)
        # Onsets and offsets are exact sample positions.
        assert (start / SR, stop / SR) == (row.onset_s, row.offset_s)
        yield row, start, stop


def test_truth_lists_every_event_with_its_source(made):
    truth = made.truth
    assert len(made.paths) == 2 and len(truth) == 2 * 5  # 15 a minute for 20 s
    assert list(truth.columns[:4]) == ["path", "label", "onset_s", "offset_s"]
    assert set(truth.label) <= {"dog", "left", "seven"} and made.labels == ["dog", "left", "seven"]
    assert truth.snr_db.between(15, 25).all()
    assert made.durations == {p: 20.0 for p in made.paths}
    for path in made.paths:
        assert sf.info(path).frames == 20 * SR


def test_the_placed_clip_sits_at_the_stated_sample(made):
    lag = 200
    padded = {path: np.pad(_mix(path), lag) for path in made.paths}
    for row, start, stop in _rows(made):
        source, _ = audio.load(row.source, sr=SR)
        first = round(row.source_onset_s * SR)
        clip = source[first : first + stop - start].astype(np.float64)
        around = padded[row.path][start : stop + 2 * lag]
        scores = [np.dot(around[k : k + clip.size], clip)
                  / (np.linalg.norm(around[k : k + clip.size]) * np.linalg.norm(clip))
                  for k in range(2 * lag + 1)]
        assert int(np.argmax(scores)) == lag, row  # no offset by even one sample
        assert scores[lag] > 0.95, row


def test_energy_rises_at_the_onset_and_falls_at_the_offset(made):
    mixes = {path: _mix(path) for path in made.paths}

    def rms(y):
        return np.sqrt(np.mean(y**2))

    quarter, margin = SR // 4, SR // 50
    for row, start, stop in _rows(made):
        y = mixes[row.path]
        inside = rms(y[start:stop])
        before = rms(y[max(0, start - quarter) : start - margin]) if start > quarter else None
        after = rms(y[stop + margin : stop + quarter]) if stop + quarter < y.size else None
        for outside in (before, after):
            if outside is not None:
                assert inside > 3 * outside, row  # at least 15 dB SNR


def test_snr_is_measured_against_the_background_rms(made):
    for path in made.paths:
        background = _mix(path.replace(".wav", ".background.wav"))
        events = _mix(path.replace(".wav", ".events.wav"))
        # The mix is the sum of its stems (16-bit rounding aside).
        assert np.max(np.abs(_mix(path) - background - events)) < 3 / 32768
        background_rms = np.sqrt(np.mean(background**2))
        assert 20 * np.log10(background_rms) == pytest.approx(-40.0, abs=0.01)
        for row, start, stop in _rows(made):
            if row.path == path:
                event_rms = np.sqrt(np.mean(events[start:stop] ** 2))
                assert 20 * np.log10(event_rms / background_rms) == pytest.approx(
                    row.snr_db, abs=0.01)


def test_events_are_trimmed_to_their_sound(made):
    shortened = 0
    for row in made.truth.itertuples():
        source, _ = audio.load(row.source, sr=SR)
        first = round(row.source_onset_s * SR)
        last = first + round((row.offset_s - row.onset_s) * SR)
        kept, rest = source[first:last], np.concatenate([source[:first], source[last:]])
        if rest.size > SR // 20:
            shortened += 1
            assert np.sqrt(np.mean(kept**2)) > 3 * np.sqrt(np.mean(rest**2)), row
    assert shortened > 0


def test_events_keep_apart_as_asked(made, pools, tmp_path):
    for _, events in made.truth.groupby("path"):
        gaps = events.onset_s.to_numpy()[1:] - events.offset_s.to_numpy()[:-1]
        assert np.all(gaps >= 0.5)  # allow_overlap=False: no two events within 0.5 s
    words, notes = pools
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # so dense that some events find no place
        dense = make_soundscapes(words, notes[:1], out_dir=tmp_path, n=1, duration_s=20.0,
                                 sr=SR, events_per_minute=120, min_gap_s=0.1, seed=0)
    overlaps = 0
    truth = dense.truth.sort_values("onset_s")
    for _, events in truth.groupby("label"):
        assert np.all(events.onset_s.to_numpy()[1:] - events.offset_s.to_numpy()[:-1] >= 0.1)
    starts, stops = truth.onset_s.to_numpy(), truth.offset_s.to_numpy()
    overlaps = np.sum(starts[1:] < stops[:-1])
    assert overlaps > 0  # other classes may overlap when allowed


def test_same_seed_same_files_and_soundscape_i_does_not_depend_on_n(made, pools, tmp_path):
    words, notes = pools
    again = make_soundscapes(words, notes, out_dir=tmp_path / "again", n=1,
                             duration_s=20.0, sr=SR, events_per_minute=15.0,
                             snr_db=(15.0, 25.0), seed=3, allow_overlap=False)
    with open(made.paths[0], "rb") as first, open(again.paths[0], "rb") as second:
        assert first.read() == second.read()
    columns = ["label", "onset_s", "offset_s", "source", "snr_db"]
    expected = made.truth[made.truth.path == made.paths[0]][columns].reset_index(drop=True)
    assert again.truth[columns].equals(expected)
    other = make_soundscapes(words, notes, out_dir=tmp_path / "other", n=1, duration_s=20.0,
                             sr=SR, events_per_minute=15.0, seed=4)
    assert not other.truth.onset_s.equals(again.truth.onset_s)


def test_written_in_blocks_with_bounded_memory(pools, tmp_path):
    words, notes = pools
    common = dict(n=1, sr=8000, events_per_minute=12.0, seed=1)
    small = make_soundscapes(words, notes, out_dir=tmp_path / "small", duration_s=12.0,
                             block_s=0.37, **common)
    large = make_soundscapes(words, notes, out_dir=tmp_path / "large", duration_s=12.0,
                             block_s=100.0, **common)
    with open(small.paths[0], "rb") as a, open(large.paths[0], "rb") as b:
        assert a.read() == b.read()  # block edges leave no trace
    tracemalloc.start()
    try:
        long = make_soundscapes(words, notes, out_dir=tmp_path / "long", duration_s=240.0,
                                block_s=5.0, **common)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sf.info(long.paths[0]).frames == 240 * 8000
    whole_signal = 240 * 8000 * 8  # float64 bytes: 15 MB (measured peak: 1.7 MB)
    assert peak < whole_signal / 4, peak


def test_truth_csv_reads_back_and_as_a_manifest(made):
    loaded = load_soundscapes(made.out_dir)
    assert loaded.paths == made.paths and loaded.durations == made.durations
    assert loaded.truth[["path", "label", "onset_s", "offset_s"]].equals(
        made.truth[["path", "label", "onset_s", "offset_s"]])
    # Paths in the CSV are relative to it, so the folder can move.
    assert not made.truth_csv.read_text().count(str(made.out_dir))
    segments = Manifest.from_csv(made.truth_csv)
    assert segments.frame.start_s.tolist() == made.truth.onset_s.tolist()
    assert [item.label for item in segments] == made.truth.label.tolist()
    # The truth scores itself perfectly: it is a valid reference for the metrics.
    assert event_based_scores(loaded.truth, made.truth).f_measure == 1.0


def test_bad_parameters_are_refused(pools, tmp_path):
    words, notes = pools
    with pytest.raises(ParameterError, match="snr_db"):
        make_soundscapes(words, notes, out_dir=tmp_path, snr_db=(10, 0))
    with pytest.raises(ParameterError, match="events_pool is empty"):
        make_soundscapes([], notes, out_dir=tmp_path)
    with pytest.raises(ParameterError, match="pairs"):
        make_soundscapes([words[0][0]], notes, out_dir=tmp_path)


def test_standard_set_draws_events_only_from_held_out_speakers(
        speech_commands_dir, philharmonia_dir, tmp_path):
    standard = standard_soundscapes(speech_commands_dir.parent, tmp_path)
    assert len(standard.paths) == 20 and set(standard.durations.values()) == {60.0}
    assert len(standard.truth) == 20 * 10
    held = standard.held_out
    assert held["dataset"] == "speech-commands-mini" and held["folds"] == [1, 2]
    assert set(standard.truth.source) <= set(held["paths"])
    manifest = load_dataset(speech_commands_dir)
    training = manifest.subset(manifest.folds == 0)
    assert not set(training.groups) & set(held["groups"])
    assert not set(map(str, training.paths)) & set(held["paths"])
    assert len(standard.labels) == 30  # the held-out lists cover every word
    assert all(str(philharmonia_dir.resolve()) in path for path in held["background"])
    assert load_soundscapes(tmp_path).held_out == held
