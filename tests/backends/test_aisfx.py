"""The aisfx backend against the aisfx package's own output on real clips.

``data/aisfx_reference.npz`` holds the package's embeddings of two Philharmonia clips,
computed with the versions it pins (librosa 0.9.2, numpy 1.23) by
``data/make_aisfx_reference.py``. The backend declares the package's 1024 leading zeros
(``lead_samples``), so the package's block ``i`` is our frame ``i``: exactly, for clips
a multiple of 1024 samples long (the reference's), and for every block but the last
otherwise (see the backend's module docstring).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from earmark import audio
from earmark.backends import get_backend
from earmark.backends.aisfx import AisfxBackend
from earmark.embedding import embed_file, embed_signal, n_frames
from earmark.exceptions import BackendError, ParameterError

REFERENCE = Path(__file__).parent / "data" / "aisfx_reference.npz"
MEL_HOP = 1024

needs_model = pytest.mark.skipif(
    not AisfxBackend.is_available(),
    reason="aisfx backend needs torch and the aisfx wheel: "
    "pip install 'earmark[aisfx]' && pip install --no-deps aisfx==0.1.2",
)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def backend() -> AisfxBackend:
    return get_backend("aisfx").load()


@pytest.fixture(scope="module")
def backend_unscaled() -> AisfxBackend:
    return get_backend("aisfx", normalize="none").load()


@pytest.fixture(scope="module")
def reference(philharmonia_dir):
    """Per clip: the package's embeddings and the decoded samples they were made from."""
    stored = np.load(REFERENCE)
    clips = {}
    for key in ("short", "long"):
        path = philharmonia_dir.parent / str(stored[f"{key}_path"])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == str(stored[f"{key}_sha256"]), f"{path} differs from the reference's clip"
        y, sr = audio.load(path)
        assert sr == 44100
        clips[key] = (y[: int(stored[f"{key}_n_samples"])], stored[f"{key}_X"])
    return clips


# --------------------------------------------------------------------- declared
def test_declares_one_block_of_100_mel_frames_per_window():
    backend = get_backend("aisfx")
    assert (backend.sample_rate, backend.dimension) == (44100, 512)
    assert backend.window_samples == 2048 + 99 * MEL_HOP
    assert backend.hop_samples == 50 * MEL_HOP
    assert backend.lead_samples == MEL_HOP  # the package's center=True padding
    assert backend.identity()["lead_samples"] == MEL_HOP
    assert backend.identity()["params"] == {"normalize": "window"}
    assert get_backend("aisfx", normalize="none").params != backend.params


def test_licence_shows_both_terms_and_the_credit_line():
    licence = AisfxBackend.licence
    assert licence.commercial_use
    assert "CC BY 4.0" in licence.name and "MIT" in licence.summary()
    assert "Representation Learning for the Automatic Indexing" in licence.attribution
    assert "ISMIR 2022" in licence.attribution


def test_unknown_normalize_is_a_parameter_error():
    with pytest.raises(ParameterError, match="normalize"):
        get_backend("aisfx", normalize="file")


@needs_model
def test_refuses_a_checkpoint_other_than_the_known_one(tmp_path, monkeypatch):
    other = tmp_path / "checkpoint.pth"
    other.write_bytes(b"not the aisfx checkpoint")
    backend = get_backend("aisfx")
    monkeypatch.setattr(backend, "weights_paths", lambda: (other,))
    with pytest.raises(BackendError, match="refusing"):
        backend.load()


# ------------------------------------------------------- against the package
@needs_model
@pytest.mark.parametrize("key, n_blocks", [("short", 1), ("long", 5)])
def test_matches_the_package_output_block_by_block(backend_unscaled, reference, key, n_blocks):
    y, expected = reference[key]
    assert expected.shape == (n_blocks, 512)
    y = y / np.abs(y).max()  # the package scales the whole file to a peak of 1
    X = embed_signal(backend_unscaled, y, 44100).X
    assert X.shape == expected.shape
    # Measured: cosine >= 0.9999998, max |difference| 3e-5 for values up to 5.3.
    assert cosine(X, expected).min() > 0.99999
    assert np.abs(X - expected).max() < 1e-3


@needs_model
def test_default_scaling_is_the_package_scaling_for_a_clip_of_one_block(backend, reference):
    y, expected = reference["short"]
    X = embed_signal(backend, y, 44100).X  # not peak-normalized
    assert np.abs(X - expected).max() < 1e-3


@needs_model
def test_file_with_window_scaling_is_close_to_the_package(backend, reference, philharmonia_dir):
    # Same grid, but each window is scaled to its own peak rather than the file's (and
    # the file is not trimmed to a multiple of 1024 samples as the reference's clip is).
    # Measured: cosine 0.976 to 1, mean 0.994 (before lead_samples: 0.975, mean 0.994).
    stored = np.load(REFERENCE)
    out = embed_file(backend, philharmonia_dir.parent / str(stored["long_path"]))
    y, expected = reference["long"]
    assert out.X.shape == expected.shape
    similarity = cosine(out.X, expected)
    assert similarity.min() > 0.97 and similarity.mean() > 0.99
    # A window that holds the file's loudest sample is scaled as the package scales the
    # file: there the block is the package's.
    peak_s = np.argmax(np.abs(y)) / 44100
    holds_peak = (out.start_s <= peak_s) & (peak_s < out.end_s)
    assert 1 <= holds_peak.sum() < len(holds_peak)
    assert similarity[holds_peak].min() > 0.99999


@needs_model
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread, via librosa.load
def test_package_code_in_this_environment_agrees(
    backend_unscaled, reference, philharmonia_dir, tmp_path
):
    """The package's own functions, run here, on the short clip and on the whole long
    file, not trimmed to a multiple of 1024 samples (no stored numbers)."""
    soundfile = pytest.importorskip("soundfile")
    try:
        from aisfx.inference import load_bestModel, model_get_embedding
        from aisfx.preprocessing import spectrogram_normalize
        from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram
    except ImportError as error:  # the package imports tqdm, which earmark does not need
        pytest.skip(f"aisfx's own modules do not import here: {error}")
    import torch

    from earmark.backends.aisfx import _read_state_dict  # embedding_net.* only

    (checkpoint,) = backend_unscaled.weights_paths()
    weights = {f"embedding_net.{k}": v for k, v in _read_state_dict(checkpoint).items()}
    model = load_bestModel(weights, {}, "cpu")

    def package_embeddings(y: np.ndarray) -> np.ndarray:
        clip = tmp_path / "clip.wav"
        soundfile.write(clip, y, 44100, subtype="FLOAT")
        spec = compute_spectrogram(str(clip), 44100.0, 2048, MEL_HOP, 96, 0.0, 22050.0)
        blocks_input = spectrogram_normalize(spec).T  # (frames, mels), as its model expects
        with torch.inference_mode():
            return model_get_embedding(blocks_input, 0.5, False, model, "cpu").numpy()

    y, _ = reference["short"]
    X = embed_signal(backend_unscaled, y / np.abs(y).max(), 44100).X
    assert cosine(X, package_embeddings(y)).min() > 0.99999

    stored = np.load(REFERENCE)
    y, _ = audio.load(philharmonia_dir.parent / str(stored["long_path"]))
    assert y.size % MEL_HOP != 0  # 896 samples past the last multiple of 1024
    expected = package_embeddings(y)
    X = embed_signal(backend_unscaled, y / np.abs(y).max(), 44100).X
    assert X.shape == expected.shape == (5, 512)
    # Every block but the last is the package's (measured: max |difference| 1.3e-5).
    assert cosine(X[:-1], expected[:-1]).min() > 0.99999
    assert np.abs(X[:-1] - expected[:-1]).max() < 1e-3
    # The last: our window holds one more STFT frame of audio, where the package's
    # spectrogram has ended and its block is padded with zero frames (measured: cosine
    # 0.99993, max |difference| 0.08).
    assert 0.999 < cosine(X[-1:], expected[-1:])[0] < 0.999999


# ------------------------------------------------------------ frames and level
@needs_model
def test_frames_timestamps_and_pooling_on_a_real_file(backend, philharmonia_dir):
    path = philharmonia_dir / "bassoon" / "bassoon_E4_very-long_cresc-decresc_normal.mp3"
    out = embed_file(backend, path)
    n = int(round(out.duration_s * 44100))
    count = n_frames(n, window_samples=103424, hop_samples=51200, lead_samples=MEL_HOP)
    assert count == 5
    assert out.X.shape == (count, 512) and out.X.dtype == np.float32
    assert np.isfinite(out.X).all() and (out.X > 0).any()
    # Frame i covers samples [i * 51200 - 1024, i * 51200 + 102400), clipped to the file.
    starts = np.arange(count) * 51200 - MEL_HOP
    np.testing.assert_allclose(out.start_s, np.maximum(starts, 0) / 44100)
    np.testing.assert_allclose(out.end_s, np.minimum(starts + 103424, n) / 44100)
    assert out.start_s[0] == 0 and out.end_s[0] == 102400 / 44100
    np.testing.assert_allclose(out.clip, out.X.mean(axis=0), rtol=1e-6)
    # A crescendo-decrescendo: the frames are not one vector repeated.
    assert cosine(out.X[:1], out.X[2:3])[0] < 0.999


@needs_model
def test_log_mel_is_the_scaled_network_input(backend, reference):
    y, _ = reference["short"]
    window = np.zeros((1, backend.window_samples), dtype=np.float32)
    window[0, : y.size] = y  # 1.9 s of a 2.3 s window
    blocks = backend.log_mel(window)
    assert blocks.shape == (1, 100, 96)
    # log10(1 + 10000 * power) of a peak-normalized note, over the paper's maximum 9.46
    assert 0 <= blocks.min() and 0.5 < blocks.max() < 1.2
    with pytest.raises(ParameterError, match="103424"):
        backend.log_mel(y[None, :1000])


@needs_model
def test_short_low_rate_file_gives_one_frame(backend, fsdd_dir):
    out = embed_file(backend, fsdd_dir / "recordings" / "0_jackson_0.wav")  # 8 kHz, < 1 s
    assert out.X.shape == (1, 512)
    assert np.isfinite(out.X).all()


@needs_model
def test_window_scaling_ignores_level_and_none_keeps_it(backend, backend_unscaled, reference):
    y, _ = reference["short"]
    loud, quiet = embed_signal(backend, y, 44100).X, embed_signal(backend, y / 20, 44100).X
    np.testing.assert_allclose(quiet, loud, atol=1e-3)
    loud, quiet = (embed_signal(backend_unscaled, s, 44100).X for s in (y, y / 20))
    assert np.abs(quiet - loud).max() > 0.1


@needs_model
def test_silence_embeds_to_finite_numbers(backend):
    X = backend.embed_windows(np.zeros((2, backend.window_samples), dtype=np.float32))
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X[0], X[1])


@needs_model
def test_feature_maps_pool_to_the_embedding(backend, reference):
    y, _ = reference["short"]
    window = np.pad(y, (0, max(0, backend.window_samples - y.size)))[None, : backend.window_samples]
    blocks = backend.log_mel(window)

    maps = backend.feature_maps(blocks)

    assert maps.shape == (1, 512, 12, 12)
    # The embedding is exactly these maps, averaged over bands and maxed over time.
    np.testing.assert_allclose(maps.mean(axis=3).max(axis=2), backend.embed_windows(window), rtol=1e-5, atol=1e-6)
    with pytest.raises(ParameterError, match="100, 96"):
        backend.feature_maps(blocks[:, :50])


# ------------------------------------------------------------- the step grid
def test_the_step_grid_declares_one_map_step_per_frame_centred_in_its_window():
    steps = get_backend("aisfx", grid="steps")
    assert steps.dimension == 1024  # band mean and band maximum of 512 channels
    assert steps.hop_samples == 8 * MEL_HOP  # one step of the last block's map
    assert steps.window_samples == 2048 + 23 * MEL_HOP  # 24 STFT frames, 3 steps
    # Frame i's window is centred on step i, and the frame describes that step only.
    assert steps.window_samples / 2 - steps.lead_samples == steps.hop_samples / 2
    assert steps.focus_samples == steps.hop_samples
    assert steps.params == {"normalize": "window", "grid": "steps"}
    # The default grid keeps the parameters (and cache keys) it had before grids existed.
    assert get_backend("aisfx").params == {"normalize": "window"}
    assert steps.cache_key() != get_backend("aisfx").cache_key()
    with pytest.raises(ParameterError, match="grid"):
        get_backend("aisfx", grid="frames")


@needs_model
def test_a_step_frame_depends_on_its_window_alone(reference):
    steps = get_backend("aisfx", grid="steps").load()
    y, _ = reference["long"]
    windows = np.stack([y[i * 8192: i * 8192 + steps.window_samples] for i in range(5)])
    together = steps.embed_windows(windows)
    alone = np.concatenate([steps.embed_windows(w[None]) for w in windows])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    # The centre step's band maximum is at least its band mean, channel by channel.
    assert (together[:, 512:] >= together[:, :512] - 1e-6).all()


@needs_model
def test_the_step_grid_places_a_short_note_to_within_a_step(philharmonia_dir):
    """A 0.5 s oboe note at 3.0 s in 7 s of quiet noise: the step frames whose centres
    lie inside the note are the ones that differ from the noise; the 2.3 s blocks
    cannot say where in their window it was."""
    steps = get_backend("aisfx", grid="steps").load()
    note, sr = audio.load(sorted((philharmonia_dir / "oboe").glob("*.mp3"))[0], sr=44100)
    note = note[np.argmax(np.abs(note) > 0.1 * np.abs(note).max()):][: sr // 2]
    rng = np.random.default_rng(0)
    y = (0.003 * rng.standard_normal(7 * sr)).astype(np.float32)
    y[3 * sr: 3 * sr + note.size] += 0.5 * note / np.abs(note).max()
    out = embed_signal(steps, y, sr)
    # Frame i spans step i, [i * 8192, (i + 1) * 8192) samples, clipped to the signal.
    np.testing.assert_allclose(out.start_s, np.arange(len(out.X)) * 8192 / sr)
    np.testing.assert_allclose(out.end_s, np.minimum(np.arange(1, len(out.X) + 1) * 8192, y.size) / sr)
    centres = (out.start_s + out.end_s) / 2
    noise = np.median(out.X[centres < 2.0], axis=0)
    distance = np.linalg.norm(out.X - noise, axis=1)
    inside = (centres > 3.0) & (centres < 3.0 + note.size / sr)
    outside = (centres < 2.6) | (centres > 3.9)
    assert distance[inside].min() > distance[outside].max()


@needs_model
def test_a_fused_backend_on_the_step_grid_keeps_the_steps_focus(philharmonia_dir):
    """aiSFX steps (hop 0.186 s) beside MFCC at a 0.1 s hop: the steps are the coarser
    grid, so the fused frames are the steps', timestamped by their focus, and the
    fused backend declares that focus (a detector reads it to know frames do not
    overlap)."""
    from earmark.embedding import frame_times

    fused = get_backend("aisfx+mfcc", **{"aisfx.grid": "steps", "mfcc.hop_s": 0.1,
                                         "mfcc.window_s": 0.2})
    steps = get_backend("aisfx", grid="steps")
    assert fused.reference.name == "aisfx"
    assert fused.focus_samples == steps.focus_samples == fused.hop_samples
    path = sorted((philharmonia_dir / "oboe").glob("*.mp3"))[0]
    out = embed_file(fused, path)
    alone = embed_file(steps.load(), path)
    np.testing.assert_array_equal(out.start_s, alone.start_s)
    np.testing.assert_array_equal(out.end_s, alone.end_s)
    n_samples = int(round(out.duration_s * fused.sample_rate))
    start_s, end_s = frame_times(fused, 0, len(out.X), n_samples)
    np.testing.assert_allclose(start_s, out.start_s)
    np.testing.assert_allclose(end_s, out.end_s)
    assert out.X.shape[1] == 1024 + get_backend("mfcc").dimension
