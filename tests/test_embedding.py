"""The framing rule: frame counts, exact timestamps, padding, streaming and batching.

Most tests use a backend whose embedding *is* its window, so every row of ``X`` shows
exactly which samples a frame held; the real-audio tests use the placeholder backend.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from earmark import audio
from earmark.backends import get_backend
from earmark.backends.base import Backend, Licence
from earmark.embedding import _run, cut_frames, embed_file, embed_signal, n_frames
from earmark.exceptions import AudioError, EarmarkError, ParameterError


class WindowBackend(Backend):
    """Embeds a window as the window itself; scores it by its sum."""

    name = "window-test"
    licence = Licence("test only", commercial_use=True)
    sample_rate = 1000
    class_names = ("sum",)

    def __init__(self, *, window: int = 8, hop: int = 3, batch_size: int = 5):
        super().__init__(window=window, hop=hop, batch_size=batch_size)
        self.window_samples = self.dimension = window
        self.hop_samples = hop
        self.batch_size = batch_size
        self.calls: list[tuple[int, ...]] = []

    def _embed_windows(self, windows):
        self.calls.append(windows.shape)
        return windows.copy()

    def _score_windows(self, windows):
        return windows.sum(axis=1, keepdims=True)


class FixedWindowBackend(WindowBackend):
    fixed_batch = True


def reference_frames(y: np.ndarray, window: int, hop: int) -> list[np.ndarray]:
    """Frames by the rule, the slow obvious way: start every hop while inside the signal,
    stop after the first frame that reaches the end, zero-pad past it."""
    frames, start = [], 0
    while start < y.size:
        frame = np.zeros(window, dtype=np.float32)
        piece = y[start : start + window]
        frame[: piece.size] = piece
        frames.append(frame)
        if start + window >= y.size:
            break
        start += hop
    return frames


def split(y: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(y, sorted({c % (y.size + 1) for c in cuts}))


# --------------------------------------------------------------------- frame counts
@given(
    n=st.integers(min_value=-3, max_value=400),
    window=st.integers(min_value=1, max_value=60),
    hop=st.integers(min_value=1, max_value=80),
)
def test_n_frames_follows_the_rule(n, window, hop):
    y = np.ones(max(n, 0), dtype=np.float32)
    assert n_frames(n, window_samples=window, hop_samples=hop) == len(
        reference_frames(y, window, hop)
    )


@pytest.mark.parametrize(
    "n, expected",
    [
        (0, 0), (1, 1), (8, 1), (9, 2), (11, 2), (12, 3), (14, 3), (15, 4),
        (3 * 10**12 + 8, 10**12 + 1),
    ],  # fmt: skip
)
def test_n_frames_at_the_edges(n, expected):
    # window 8, hop 3: frames start at 0, 3, 6, ...; the one at 3k ends at 3k + 8.
    assert n_frames(n, window_samples=8, hop_samples=3) == expected


def test_no_frame_starts_past_the_end_when_hop_exceeds_window():
    # Frames of 10 samples every 20: a signal of 11 samples has one frame, not a second
    # one made only of padding that starts after the signal ended.
    assert n_frames(11, window_samples=10, hop_samples=20) == 1
    assert n_frames(21, window_samples=10, hop_samples=20) == 2


# ------------------------------------------------------------- framing and streaming
@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    window=st.integers(min_value=1, max_value=40),
    hop=st.integers(min_value=1, max_value=50),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=12),
)
def test_streamed_framing_equals_in_memory_framing(n, window, hop, cuts):
    y = np.arange(1, n + 1, dtype=np.float32)  # every sample tells its own position
    expected = reference_frames(y, window, hop)
    for blocks in ([y], split(y, cuts)):
        frames = [frame.copy() for frame in cut_frames(iter(blocks), window, hop)]
        assert len(frames) == len(expected)
        for index, (got, want) in enumerate(zip(frames, expected)):
            np.testing.assert_array_equal(got, want, err_msg=f"frame {index} of {len(expected)}")


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200),
    window=st.integers(min_value=1, max_value=30),
    hop=st.integers(min_value=1, max_value=40),
    batch_size=st.integers(min_value=1, max_value=7),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=8),
)
def test_embeddings_timestamps_and_scores_follow_the_frames(n, window, hop, batch_size, cuts):
    y = np.arange(1, n + 1, dtype=np.float32)
    expected = np.stack(reference_frames(y, window, hop))
    count = n_frames(n, window_samples=window, hop_samples=hop)
    for backend_class in (WindowBackend, FixedWindowBackend):
        backend = backend_class(window=window, hop=hop, batch_size=batch_size)
        out = _run(backend, split(y, cuts), with_scores=True)
        np.testing.assert_array_equal(out.X, expected)
        np.testing.assert_array_equal(out.scores[:, 0], expected.sum(axis=1))
        starts = np.arange(count) * hop
        np.testing.assert_array_equal(out.start_s, starts / 1000)
        np.testing.assert_array_equal(out.end_s, np.minimum(starts + window, n) / 1000)
        assert out.duration_s == n / 1000
        if backend.fixed_batch:
            # Every call gets a full batch; the padding rows never reach the output.
            assert {shape for shape in backend.calls} == {(batch_size, window)}
        assert sum(shape[0] for shape in backend.calls) >= count


def test_last_window_is_zero_padded():
    backend = get_backend("placeholder", window_s=0.5, hop_s=0.25)
    rng = np.random.default_rng(0)
    y = rng.standard_normal(16000 + 1234).astype(np.float32)
    out = embed_signal(backend, y, 16000)
    assert out.X.shape[0] == n_frames(y.size, window_samples=8000, hop_samples=4000) == 4
    last = np.zeros((1, 8000), dtype=np.float32)
    last[0, : y.size - 12000] = y[12000:]
    np.testing.assert_array_equal(out.X[-1], backend.embed_windows(last)[0])
    assert out.end_s[-1] == y.size / 16000 < out.start_s[-1] + 0.5


def test_fixed_batch_pads_only_the_call_not_the_output():
    plain = WindowBackend(window=8, hop=3, batch_size=4)
    fixed = FixedWindowBackend(window=8, hop=3, batch_size=4)
    y = np.arange(1, 31, dtype=np.float32)  # 9 frames: batches of 4, 4 and 1 (+3 padding)
    a = embed_signal(plain, y, 1000, with_scores=True)
    b = embed_signal(fixed, y, 1000, with_scores=True)
    assert plain.calls == [(4, 8), (4, 8), (1, 8)]
    assert fixed.calls == [(4, 8), (4, 8), (4, 8)]
    assert b.X.shape == (9, 8) and b.scores.shape == (9, 1)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.clip, b.clip)


# ------------------------------------------------------------------- leading zeros
class LeadBackend(WindowBackend):
    """A WindowBackend that expects ``lead`` zeros before the signal."""

    def __init__(self, *, lead: int = 2, **params):
        super().__init__(**params)
        self.lead_samples = lead


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200),
    window=st.integers(min_value=2, max_value=30),
    hop=st.integers(min_value=1, max_value=40),
    lead_fraction=st.floats(min_value=0, max_value=0.999),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=8),
)
def test_lead_samples_frame_the_signal_after_that_many_zeros(
    n, window, hop, lead_fraction, cuts
):
    lead = int(lead_fraction * window)
    y = np.arange(1, n + 1, dtype=np.float32)  # no zero: every zero in a window is padding
    padded = np.concatenate([np.zeros(lead, dtype=np.float32), y])
    expected = np.stack(reference_frames(padded, window, hop))
    count = n_frames(n, window_samples=window, hop_samples=hop, lead_samples=lead)
    assert count == n_frames(n + lead, window_samples=window, hop_samples=hop)

    streamed = _run(LeadBackend(lead=lead, window=window, hop=hop), split(y, cuts))
    in_memory = _run(LeadBackend(lead=lead, window=window, hop=hop), [y])
    np.testing.assert_array_equal(streamed.X, expected)
    np.testing.assert_array_equal(in_memory.X, expected)
    assert count == expected.shape[0]
    np.testing.assert_array_equal(streamed.X[0, :lead], 0)
    assert streamed.X[0, lead] == 1  # then the first sample of audio
    # Timestamps are spans of real audio: the lead is not audio.
    starts = np.arange(count) * hop - lead
    np.testing.assert_array_equal(streamed.start_s, np.maximum(starts, 0) / 1000)
    np.testing.assert_array_equal(streamed.end_s, np.minimum(starts + window, n) / 1000)
    assert streamed.start_s[0] == 0 and (streamed.end_s > streamed.start_s).all()
    assert streamed.duration_s == in_memory.duration_s == n / 1000
    np.testing.assert_array_equal(streamed.start_s, in_memory.start_s)
    np.testing.assert_array_equal(streamed.end_s, in_memory.end_s)


def test_lead_samples_example_by_hand():
    # window 8, hop 3, lead 2: frames cover [-2, 6), [1, 9), [4, 12) of 10 samples.
    out = _run(LeadBackend(lead=2, window=8, hop=3), [np.arange(1, 11, dtype=np.float32)])
    np.testing.assert_array_equal(
        out.X,
        [[0, 0, 1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7, 8, 9], [5, 6, 7, 8, 9, 10, 0, 0]],
    )
    np.testing.assert_array_equal(out.start_s * 1000, [0, 1, 4])
    np.testing.assert_array_equal(out.end_s * 1000, [6, 9, 10])
    assert out.duration_s == 0.01


def test_lead_samples_are_part_of_the_identity_and_bounded():
    plain, lead = WindowBackend(), LeadBackend(lead=2)
    assert (plain.identity()["lead_samples"], lead.identity()["lead_samples"]) == (0, 2)
    assert plain.cache_key() != lead.cache_key()
    with pytest.raises(EarmarkError, match="lead_samples"):
        _run(LeadBackend(lead=8, window=8), [np.ones(20, dtype=np.float32)])
    # An empty signal is still an error, and the lead alone is never embedded.
    backend = LeadBackend(lead=2)
    with pytest.raises(EarmarkError, match="no samples"):
        _run(backend, [np.zeros(0, dtype=np.float32)])
    assert backend.calls == []


# ----------------------------------------------------------------------- timestamps
class FirstSampleBackend(WindowBackend):
    """A window's embedding is its first sample: cheap enough for hours of audio."""

    sample_rate = 8000
    class_names = None

    def _embed_windows(self, windows):
        return windows[:, :1]


def test_timestamps_late_in_a_long_signal_are_exact():
    hours, sr, hop, window = 2, 8000, 800, 1000  # 0.1 s hops: 0.1 has no exact binary form
    backend = FirstSampleBackend(window=window, hop=hop, batch_size=1024)
    backend.dimension = 1
    total = hours * 3600 * sr
    # Each sample holds its index modulo 4096, so a frame's first sample tells where it
    # really started, to the sample. Blocks are a multiple of 4096 long, hence all alike.
    block = (np.arange(1 << 18) % 4096).astype(np.float32)
    blocks = (block[: min(block.size, total - first)] for first in range(0, total, block.size))

    out = _run(backend, blocks)
    count = n_frames(total, window_samples=window, hop_samples=hop)
    assert out.X.shape == (count, 1) and count == hours * 36000
    index = np.arange(count)
    np.testing.assert_array_equal(out.X[:, 0], (index * hop) % 4096)
    for i in (count - 1, count - 2, count // 2, 12345):
        assert out.start_s[i] == float(Fraction(i * hop, sr)), f"frame {i}"
        assert out.end_s[i] == float(Fraction(min(i * hop + window, total), sr)), f"frame {i}"
    assert out.duration_s == hours * 3600.0


# ---------------------------------------------------------------------- real audio
@pytest.fixture(scope="module")
def digits(fsdd_dir, tmp_path_factory):
    """Ten spoken digits end to end (about 4 s at 8 kHz), written as one WAV."""
    files = sorted((fsdd_dir / "recordings").glob("*_jackson_1.wav"))
    files = files or sorted((fsdd_dir / "recordings").glob("*.wav"))[:10]
    y = np.concatenate([sf.read(path, dtype="float32")[0] for path in files])
    path = tmp_path_factory.mktemp("embedding") / "digits.wav"
    sf.write(path, y, 8000, subtype="PCM_16")
    return path


def test_embed_file_equals_embed_signal_on_real_audio(digits):
    backend = get_backend("placeholder", window_s=0.5, hop_s=0.2)
    streamed = embed_file(backend, digits)
    y, sr = audio.load(digits)
    in_memory = embed_signal(backend, y, sr)
    n = audio.n_samples_at(audio.info(digits), backend.sample_rate)
    count = n_frames(n, window_samples=backend.window_samples, hop_samples=backend.hop_samples)
    assert streamed.X.shape == (count, backend.dimension) and count > 10
    np.testing.assert_array_equal(streamed.X, in_memory.X)
    np.testing.assert_array_equal(streamed.start_s, in_memory.start_s)
    np.testing.assert_array_equal(streamed.end_s, in_memory.end_s)
    assert streamed.duration_s == in_memory.duration_s == n / backend.sample_rate
    np.testing.assert_array_equal(streamed.clip, backend.pool(streamed.X))
    # The embedding sees the audio: speech frames differ from each other.
    assert np.ptp(streamed.X, axis=0).max() > 1.0


def test_embed_file_span_has_timestamps_from_the_span_start(digits):
    backend = get_backend("placeholder", window_s=0.5, hop_s=0.25)
    whole = embed_file(backend, digits)
    span = embed_file(backend, digits, start_s=1.0, end_s=3.0)
    assert span.duration_s == 2.0
    assert span.start_s[0] == 0.0 and span.end_s[-1] == 2.0
    assert span.X.shape[0] == n_frames(32000, window_samples=8000, hop_samples=4000) == 7
    # Frames aligned in both (1.0 s = four hops) hold nearly the same audio; the small
    # difference is the resampler starting afresh at the span's edge.
    np.testing.assert_allclose(span.X[1:6], whole.X[5:10], atol=0.05)


def test_progress_reports_every_frame(digits):
    backend = get_backend("placeholder", window_s=0.5, hop_s=0.25)
    seen = []
    out = embed_file(backend, digits, on_progress=seen.append)
    assert len(seen) == -(-out.X.shape[0] // backend.batch_size)
    assert sum(seen) == pytest.approx(out.X.shape[0] * backend.hop_s)


def test_bad_file_and_bad_signal_errors(tmp_path):
    backend = get_backend("placeholder")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AudioError, match="broken.wav"):
        embed_file(backend, tmp_path / "broken.wav")
    expected = r"expected a mono waveform of shape \(n,\), got \(2, 100\)"
    with pytest.raises(ParameterError, match=expected):
        embed_signal(backend, np.zeros((2, 100), dtype=np.float32), 16000)
    with pytest.raises(EarmarkError):
        embed_signal(backend, np.zeros(0, dtype=np.float32), 16000)
