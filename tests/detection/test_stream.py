"""Streaming detection on real recordings: batches with no seams, sliding windows that
equal clip embeddings, events where the clips were pasted, no drift, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from _soundscapes import Placement, clips, trained_model, write_soundscape
from earmark import audio
from earmark.backends import get_backend
from earmark.detection.events import frames_to_events, median_frames_for
from earmark.detection.stream import DetectionResult, SlidingWindows, detect_file
from earmark.embedding import FrameStream, embed_file, embed_signal, n_frames, stream_file
from earmark.exceptions import AudioError, ParameterError


class Loudness:
    """A frame scorer on placeholder band energies: loud frames score near 1."""

    classes_ = np.array(["loud"])

    def segment_proba(self, X):
        return 1 / (1 + np.exp(-4 * (X.mean(axis=1, keepdims=True) - 1.6)))


def small_batches(name: str, batch_size: int, **params):
    backend = get_backend(name, **params)
    backend.batch_size = batch_size  # many batch boundaries in a short file
    return backend


@pytest.fixture(scope="module")
def words(speech_commands_dir, philharmonia_dir):
    _, test = clips(speech_commands_dir, philharmonia_dir)
    return [path for label, path in test if label == "speech"]


@pytest.fixture(scope="module")
def scape(tmp_path_factory, words):
    """20.7 s at 16 kHz with three words at off-grid times."""
    path = tmp_path_factory.mktemp("scape") / "scape.wav"
    placements = [Placement("speech", t, w) for t, w in zip((2.3, 9.05, 17.6), words)]
    return path, write_soundscape(path, sr=16000, duration_s=20.7, placements=placements)


# ------------------------------------------------------------------------- frames
def test_frame_stream_yields_each_batch_before_reading_the_rest(scape):
    path, _ = scape
    backend = small_batches("placeholder", 4)
    read = []

    def blocks():
        for block in audio.stream(path, sr=16000, block_frames=8000):
            read.append(block.size)
            yield block

    stream = FrameStream(backend, blocks())
    batches = iter(stream)
    first = next(batches)
    assert first.first == 0 and first.X.shape == (4, 16)
    assert sum(read) < 16000 * 3, "the first batch must not wait for the whole file"
    rest = list(batches)
    whole = embed_file(get_backend("placeholder"), path)  # one big batch
    np.testing.assert_array_equal(np.concatenate([first.X] + [b.X for b in rest]), whole.X)
    np.testing.assert_array_equal(
        np.concatenate([first.end_s] + [b.end_s for b in rest]), whole.end_s
    )
    assert [b.first for b in rest] == list(range(4, whole.X.shape[0], 4))
    assert (stream.duration_s, stream.n_frames) == (whole.duration_s, whole.X.shape[0])
    assert rest[-1].end_s[-1] == 20.7


def test_a_stream_is_read_once(scape):
    stream = stream_file(get_backend("placeholder"), scape[0])
    list(stream)
    with pytest.raises(Exception, match="only once"):
        list(stream)


# ---------------------------------------------------------------------- detection
def test_detecting_in_batches_equals_detecting_on_all_frames_at_once(scape):
    path, placements = scape
    backend = small_batches("placeholder", 2, window_s=0.5, hop_s=0.25)
    median_s = 0.75  # 3 rows over batches of 2: every filter window spans a boundary

    result = detect_file(Loudness(), backend, path, median_s=median_s, min_duration_s=0.3)

    frames = embed_file(get_backend("placeholder", window_s=0.5, hop_s=0.25), path)
    scores = Loudness().segment_proba(frames.X)
    expected = frames_to_events(
        scores, frames.start_s, frames.end_s, ["loud"],
        median_frames=median_frames_for(median_s, 0.25), min_duration_s=0.3, path=path,
    )
    np.testing.assert_allclose(result.scores, scores, rtol=1e-6)
    np.testing.assert_array_equal(result.start_s, frames.start_s)
    np.testing.assert_array_equal(result.end_s, frames.end_s)
    assert result.events == expected
    assert result.median_frames == 3 and result.hop_s == 0.25
    # and the events are where the words were pasted, onsets on the frame grid
    assert len(result.events) == len(placements)
    for event, placement in zip(result.events, placements):
        assert abs(event.onset_s - placement.onset_s) <= 0.5 + 0.25
        assert (event.onset_s / 0.25).is_integer()


def test_sliding_windows_score_each_window_as_its_clip_embedding(
    tmp_path, speech_commands_dir, philharmonia_dir, words
):
    model = trained_model(speech_commands_dir, philharmonia_dir)
    backend = small_batches("mfcc", 5)
    sr = backend.sample_rate
    path = tmp_path / "short.wav"
    write_soundscape(path, sr=sr, duration_s=12.3, placements=[Placement("speech", 4.1, words[0])])
    windows = SlidingWindows(model, window_s=2.0, hop_s=1.0)  # 3 frames every 2 frames

    result = detect_file(windows, backend, path)

    y, _ = audio.load(path, sr=sr)
    frames = n_frames(
        y.size, window_samples=backend.window_samples, hop_samples=backend.hop_samples
    )
    count = n_frames(frames, window_samples=3, hop_samples=2)
    assert result.scores.shape == (count, 3) and count == 12
    for j in range(count):
        excerpt = y[j * sr : j * sr + 2 * sr]  # the last one is short: the file ends
        clip = embed_signal(get_backend("mfcc"), excerpt, sr).clip
        np.testing.assert_allclose(result.scores[j], model.predict_proba(clip[None])[0], atol=1e-6)
        assert result.start_s[j] == j
        assert result.end_s[j] == min(j + 2, y.size / sr)
    assert result.hop_s == 1.0 and result.classes == list(model.classes_)


def test_windows_off_the_backend_grid_are_refused_with_the_lengths_that_fit():
    backend = get_backend("mfcc")  # 1 s frames every 0.5 s
    with pytest.raises(ParameterError, match=r"window.*1, 1\.5, 2, 2\.5, \.\.\. s; got 1\.2"):
        SlidingWindows(None, window_s=1.2).frames_for(backend)
    with pytest.raises(ParameterError, match="window"):
        SlidingWindows(None, window_s=0.5).frames_for(backend)
    with pytest.raises(ParameterError, match=r"hop.*0\.5, 1, 1\.5, \.\.\. s; got 0\.7"):
        SlidingWindows(None, hop_s=0.7).frames_for(backend)
    assert SlidingWindows(None).frames_for(backend) == (1, 1)


def test_a_trained_clip_model_finds_words_and_notes_where_they_were_pasted(
    tmp_path, speech_commands_dir, philharmonia_dir
):
    model = trained_model(speech_commands_dir, philharmonia_dir)
    backend = get_backend("mfcc")  # 1 s frames every 0.5 s
    _, test = clips(speech_commands_dir, philharmonia_dir)
    picks = [test[3], test[28], test[5], test[35]]  # word, note, word, note; all unseen
    times = (3.2, 14.7, 27.0, 39.9)
    path = tmp_path / "scape.flac"
    placements = write_soundscape(
        path, sr=22050, duration_s=50.0,
        placements=[Placement(label, t, clip) for t, (label, clip) in zip(times, picks)],
    )

    # "background" can never reach 1.1: only speech and music make events. A 3-row
    # median drops the one-frame "speech" the note's attack gives at 39.0 s.
    result = detect_file(
        model, backend, path, threshold={"background": 1.1, "*": 0.5}, median_s=1.0
    )

    assert result.duration_s == 50.0
    assert [e.label for e in result.events] == [p.label for p in placements], result.events
    for event, placement in zip(result.events, placements):
        # No frame that starts a window or more before the paste touches the clip.
        assert placement.onset_s - backend.window_s < event.onset_s, event
        assert event.onset_s <= placement.onset_s + backend.hop_s, event
        assert (event.onset_s / backend.hop_s).is_integer()
    on_grid = result.events[2]  # pasted at 27.0 s, a frame start
    assert abs(on_grid.onset_s - 27.0) <= backend.hop_s


def test_a_long_file_keeps_exact_time_and_bounded_memory(tmp_path, words):
    """Half an hour streamed: the word pasted near the end is found on the exact frame
    grid, while memory stays a small fraction of the decoded audio (115 MB)."""
    sr, duration = 16000, 1800.0
    path = tmp_path / "long.flac"
    (placement,) = write_soundscape(
        path, sr=sr, duration_s=duration, placements=[Placement("speech", 1795.3, words[1])],
        block_s=300.0,
    )
    backend = get_backend("placeholder")  # 0.5 s frames, no overlap

    tracemalloc.start()
    try:
        result = detect_file(Loudness(), backend, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 12 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert result.duration_s == duration and result.scores.shape == (3600, 1)
    assert result.end_s[-1] == duration and result.start_s[-1] == 1799.5
    # The same stretch read on its own (from 1790 s, a frame start) gives the same event.
    y, _ = audio.load(path, sr=sr, start_s=1790.0)
    near_end = embed_signal(backend, y, sr)
    (expected,) = frames_to_events(
        Loudness().segment_proba(near_end.X), near_end.start_s + 1790, near_end.end_s + 1790,
        ["loud"],
    )
    (event,) = result.events
    assert (event.onset_s, event.offset_s) == (expected.onset_s, expected.offset_s)
    assert event.score == pytest.approx(expected.score, rel=1e-6)
    assert 0 <= event.onset_s - (placement.onset_s - backend.window_s) <= 1.0
    envelope_start, low, high = result.envelope
    assert 2000 <= low.size <= 4000
    loudest = envelope_start[np.argmax(high)]
    assert placement.onset_s - 1 <= loudest <= placement.onset_s + 1


def test_a_bad_file_raises_an_audio_error_naming_it(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav"):
        detect_file(Loudness(), get_backend("placeholder"), bad)


def test_result_writes_a_raven_table_up_to_the_files_nyquist(scape, tmp_path):
    path, _ = scape
    result = detect_file(Loudness(), get_backend("placeholder"), path)
    assert isinstance(result, DetectionResult) and result.sample_rate == 16000

    table = result.write(tmp_path / "scape.txt", "raven").read_text().splitlines()

    assert len(table) == 1 + len(result.events) and len(result.events) == 3
    assert {line.split("\t")[6] for line in table[1:]} == {"8000.0"}
    summary = result.to_dict()
    assert summary["n_rows"] == result.scores.shape[0] and len(summary["events"]) == 3


def test_cells_tighten_events_of_overlapping_windows_to_a_tone_burst(tmp_path):
    """A real tone burst in silence, 2 s placeholder windows at hop 0.25 s: runs of
    windows start up to 1.75 s early; cells reduced by min start within a hop."""
    import soundfile as sf

    sr, onset_s, duration_s = 16000, 5.3, 0.6
    y = np.zeros(int(12 * sr), dtype=np.float32)
    t = np.arange(int(duration_s * sr)) / sr
    y[int(onset_s * sr):int(onset_s * sr) + t.size] = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "burst.wav"
    sf.write(path, y, sr)
    backend = get_backend("placeholder", window_s=2.0, hop_s=0.25)

    class AnyEnergy:
        classes_ = np.array(["burst"])

        def segment_proba(self, X):
            return (X.max(axis=1, keepdims=True) > 1e-3).astype(float)

    windows = detect_file(AnyEnergy(), backend, path)
    cells = detect_file(AnyEnergy(), backend, path, cells="min")
    assert windows.events[0].onset_s < onset_s - 1.0
    assert abs(cells.events[0].onset_s - onset_s) <= 0.25
    assert abs(cells.events[0].offset_s - (onset_s + duration_s)) <= 0.25
    with pytest.raises(ParameterError, match="cells"):
        detect_file(AnyEnergy(), backend, path, cells="median")
