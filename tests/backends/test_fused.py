"""Fused backends (``placeholder+mfcc``): identity, refusals, cache reuse, frame alignment."""

from __future__ import annotations

import numpy as np
import pytest

import earmark.embedding
from earmark.backends import FusedBackend, check_identity, from_identity, get_backend
from earmark.embedding import embed_file, embed_signal, n_frames
from earmark.exceptions import BackendError, ParameterError
from earmark.pipeline import clip_embeddings
from earmark.store import MemoryStore


@pytest.fixture(scope="module")
def clips(fsdd_dir):
    """Six real spoken digits (8 kHz, 0.3-0.8 s)."""
    return [str(fsdd_dir / "recordings" / f"{d}_george_{t}.wav") for d in (0, 1, 2) for t in (0, 1)]


@pytest.fixture(scope="module")
def long_clip(philharmonia_dir):
    """A real instrument note a few seconds long (44.1 kHz mp3)."""
    return str(sorted(philharmonia_dir.rglob("*.mp3"), key=lambda p: p.stat().st_size)[-1])


def test_name_params_and_identity_round_trip():
    fused = get_backend("placeholder+mfcc", **{"placeholder.window_s": 0.25, "mfcc.n_mfcc": 13})
    assert isinstance(fused, FusedBackend)
    assert fused.blocks == (16, 78) and fused.dimension == 94
    assert fused.reference.name == "mfcc"  # the coarsest hop: 0.5 s against 0.25 s
    assert fused.params == {"placeholder": {"window_s": 0.25, "hop_s": None},
                            "mfcc": {"n_mfcc": 13, "window_s": 1.0, "hop_s": 0.5}}
    identity = fused.identity()
    assert [part["backend"] for part in identity["parts"]] == ["placeholder", "mfcc"]
    rebuilt = from_identity(identity)
    assert rebuilt.cache_key() == fused.cache_key()
    assert rebuilt.parts[1].n_mfcc == 13
    # A store's configuration holds name and parameters only: enough to rebuild.
    assert from_identity(fused.config()).cache_key() == fused.cache_key()
    # Another part's parameter is another backend: another cache key.
    assert get_backend("placeholder+mfcc").cache_key() != fused.cache_key()
    assert get_backend("mfcc+placeholder").cache_key() != get_backend("placeholder+mfcc").cache_key()


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("placeholder+", {}, "joined by"),
        ("mfcc+mfcc", {}, "twice"),
        ("mfcc+nonesuch", {}, "unknown backend 'nonesuch'"),
        ("placeholder+mfcc", {"hop_s": 1.0}, "names no part"),
        ("placeholder+mfcc", {"mfcc.nonesuch": 1}, "nonesuch"),
    ],
)
def test_bad_names_and_parameters_are_refused(name, params, expected):
    with pytest.raises(ParameterError, match=expected):
        get_backend(name, **params)


def test_identity_from_a_file_with_an_unknown_part_is_refused():
    identity = get_backend("placeholder+mfcc").identity()
    identity["backend"] = "placeholder+nonesuch"
    identity["parts"][1]["backend"] = "nonesuch"
    with pytest.raises(ParameterError, match="unknown backend 'nonesuch'"):
        check_identity(identity)
    with pytest.raises(ParameterError, match="unknown backend 'nonesuch'"):
        from_identity(identity)
    # Parts that disagree with the name, or parameters of a part the name lacks.
    identity = get_backend("placeholder+mfcc").identity()
    identity["parts"].reverse()
    with pytest.raises(ParameterError, match="in that order"):
        from_identity(identity)
    identity = get_backend("placeholder+mfcc").config()
    identity["params"]["birdnet"] = {}
    with pytest.raises(ParameterError, match="no part 'birdnet'"):
        check_identity(identity)


def test_a_hear_part_never_takes_its_module_from_a_file():
    """The HEAR adapter's ``module`` names code: a fused identity carrying one is checked
    without importing it, and the backend is built only with the user's own."""
    identity = {
        "backend": "hear+mfcc",
        "params": {"hear": {"module": "os"}, "mfcc": {}},
        "parts": [{"backend": "hear", "params": {"module": "os"}},
                  {"backend": "mfcc", "params": {}}],
    }
    check_identity(identity)  # the structure is fine; the module is simply not read
    with pytest.raises(BackendError, match=r"--backend-param hear\.module="):
        from_identity(identity)
    # Nor may the nested parameters smuggle it in through check_params' own path.
    from earmark.backends import check_params

    with pytest.raises(ParameterError, match="never taken from a file"):
        check_params("hear+mfcc", {"hear": {"module": "os"}})


def test_second_embedding_reuses_each_part_from_the_cache(clips, monkeypatch):
    """Embedding ``placeholder+mfcc`` after ``mfcc`` runs only the placeholder; a second
    fused run runs nothing."""
    store = MemoryStore()
    mfcc = get_backend("mfcc")
    X_mfcc, ok, _ = clip_embeddings(clips, mfcc, store, progress=False)
    assert ok.all()

    reached = []
    original = earmark.embedding.embed_file

    def counting(backend, path, **kwargs):
        reached.append(backend.name)
        return original(backend, path, **kwargs)

    monkeypatch.setattr(earmark.embedding, "embed_file", counting)
    fused = get_backend("placeholder+mfcc")
    X, ok, run = clip_embeddings(clips, fused, store, progress=False)
    assert ok.all() and X.shape == (len(clips), 16 + 120)
    assert reached == ["placeholder"] * len(clips)
    np.testing.assert_array_equal(X[:, 16:], X_mfcc)
    assert store.count(fused.cache_key()) == len(clips)

    reached.clear()
    X_again, _, run = clip_embeddings(clips, fused, store, progress=False)
    assert reached == [] and run.n_reused == len(clips)
    np.testing.assert_array_equal(X_again, X)
    # The cached fused clip is what embedding the file directly gives.
    np.testing.assert_allclose(original(fused, clips[0]).clip, X[0], rtol=1e-5, atol=1e-5)


def test_a_file_failing_in_one_part_fails_with_the_part_named(clips, tmp_path):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    X, ok, run = clip_embeddings([clips[0], str(bad)], get_backend("placeholder+mfcc"),
                                 MemoryStore(), progress=False)
    assert ok.tolist() == [True, False] and X.shape[0] == 1
    assert run.failures[0].reason.startswith("placeholder: ")


def test_frames_lie_on_the_coarsest_parts_grid(long_clip):
    fused = get_backend("placeholder+mfcc", **{"placeholder.window_s": 0.1})
    frames = embed_file(fused, long_clip)
    mfcc = embed_file(get_backend("mfcc"), long_clip)
    placeholder = embed_file(get_backend("placeholder", window_s=0.1), long_clip)
    assert frames.X.shape == (mfcc.X.shape[0], 136)
    np.testing.assert_array_equal(frames.start_s, mfcc.start_s)
    np.testing.assert_array_equal(frames.end_s, mfcc.end_s)
    np.testing.assert_array_equal(frames.X[:, 16:], mfcc.X)
    # Fused frame 1 holds the mean of the 0.1 s frames centred in its span.
    centres = (placeholder.start_s + placeholder.end_s) / 2
    inside = (centres >= mfcc.start_s[1]) & (centres < mfcc.end_s[1])
    np.testing.assert_allclose(frames.X[1, :16], placeholder.X[inside].mean(axis=0), rtol=1e-5)
    # The clip is each part's own pooling of its own frames.
    np.testing.assert_allclose(frames.clip, np.r_[placeholder.clip, mfcc.clip], rtol=1e-6)


def test_a_waveform_and_a_stream_give_the_same_frames():
    rng = np.random.default_rng(0)
    y = rng.normal(scale=0.1, size=3 * 16000).astype(np.float32)
    fused = get_backend("placeholder+mfcc")
    assert fused.reference.name == "placeholder"  # hops tie at 0.5 s: the first part
    whole = embed_signal(fused, y, 16000)
    assert whole.X.shape[0] == n_frames(3 * 16000, window_samples=8000, hop_samples=8000)
    stream = earmark.embedding.FrameStream(fused, [y[:20000], y[20000:]])
    batches = list(stream)
    np.testing.assert_allclose(np.concatenate([b.X for b in batches]), whole.X, rtol=1e-5)
    assert stream.n_frames == whole.X.shape[0] and stream.duration_s == pytest.approx(3.0)


def test_window_embedding_is_refused():
    with pytest.raises(BackendError, match="through its parts"):
        fused = get_backend("placeholder+mfcc")
        fused.embed_windows(np.zeros((1, fused.window_samples), np.float32))
