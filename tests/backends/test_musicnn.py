"""The musicnn backend on real recordings: shapes, loud input, tags, and upstream agreement."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from earmark import audio
from earmark.backends import get_backend
from earmark.backends.musicnn import LAYERS, MODELS, MusicnnBackend
from earmark.embedding import embed_file, embed_signal
from earmark.exceptions import AudioError, ParameterError

needs_musicnn = pytest.mark.skipif(
    not MusicnnBackend.is_available(),
    reason="musicnn backend not installed: " + MusicnnBackend.install_hint,
)

ALL_LAYERS = [(model, layer) for model, (arch, _) in MODELS.items() for layer in LAYERS[arch]]

_backends: dict[tuple[str, str], MusicnnBackend] = {}


def backend_for(model: str = "MTT_musicnn", layer: str | None = None) -> MusicnnBackend:
    """One loaded backend per (model, layer) for the whole module: loading costs ~1 s."""
    key = (model, layer or "")
    if key not in _backends:
        _backends[key] = get_backend("musicnn", model=model, layer=layer)
    return _backends[key]


@pytest.fixture(scope="module", autouse=True)
def _close_sessions():
    yield
    for backend in _backends.values():
        backend.close()
    _backends.clear()


def load_first(paths, *, sr=16000, min_s=0.0):
    """First real clip among ``paths`` that decodes cleanly and lasts at least ``min_s``."""
    for path in paths:
        try:
            y, _ = audio.load(path, sr=sr)
        except AudioError:  # a few Philharmonia mp3s end early; skip them
            continue
        if y.size >= min_s * sr:
            return path, y
    pytest.skip(f"no usable clip of {min_s} s among {len(paths)} files")


# ------------------------------------------------------------------ declared contract
@pytest.mark.parametrize(
    ("model", "layer", "dimension"),
    [
        ("MTT_musicnn", None, 753),
        ("MSD_musicnn", "mean_pool", 753),
        ("MTT_musicnn", "penultimate", 200),
        ("MTT_vgg", None, 8448),
        ("MSD_vgg", "pool5", 256),
    ],
)
def test_declared_shapes_do_not_need_tensorflow(model, layer, dimension):
    backend = get_backend("musicnn", model=model, layer=layer)
    assert backend.dimension == dimension
    # 187 mel frames of 512 samples, 256 apart: the patch the models were trained on.
    assert backend.window_samples == 512 + 186 * 256
    assert backend.hop_samples == 187 * 256
    assert backend.lead_samples == 256 and backend.identity()["lead_samples"] == 256
    assert len(backend.class_names) == 50
    assert backend.params["layer"] == (layer or next(iter(LAYERS[MODELS[model][0]])))


def test_hop_s_sets_the_hop():
    assert get_backend("musicnn", hop_s=1.5).hop_samples == 24000


@needs_musicnn
def test_cache_key_follows_model_layer_and_hop():
    keys = {
        get_backend("musicnn", **params).cache_key()
        for params in [{}, {"hop_s": 1.5}, {"layer": "mean_pool"}, {"model": "MSD_musicnn"}]
    }
    assert len(keys) == 4
    # Threads do not change the output, so they do not change the key.
    assert get_backend("musicnn", n_threads=1).cache_key() == get_backend("musicnn").cache_key()


@pytest.mark.parametrize(
    "params",
    [{"model": "MTT_musicnn_big"}, {"layer": "pool5"}, {"model": "MTT_vgg", "layer": "max_pool"},
     {"hop_s": 0.0}, {"n_threads": 0}],
)  # fmt: skip
def test_bad_parameters_are_refused(params):
    with pytest.raises(ParameterError):
        get_backend("musicnn", **params)


def test_importing_the_backend_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from earmark.backends import get_backend\n"
        "b = get_backend('musicnn', model='MSD_musicnn')\n"
        "assert b.dimension == 753 and b.class_names[0] == 'rock'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------ real audio
@needs_musicnn
@pytest.mark.parametrize(("model", "layer"), ALL_LAYERS)
def test_every_layer_embeds_a_real_clip(philharmonia_dir, model, layer):
    paths = sorted((philharmonia_dir / "flute").glob("*long*.mp3"))
    path, y = load_first(paths, min_s=3.5)
    backend = backend_for(model, layer)
    out = embed_file(backend, path, with_scores=True)
    expected_frames = int(np.ceil((y.size - backend.window_samples) / backend.hop_samples)) + 1
    assert out.X.shape == (expected_frames, LAYERS[MODELS[model][0]][layer])
    assert out.X.dtype == np.float32
    assert np.isfinite(out.X).all()
    assert out.X.std() > 0  # not a constant vector
    assert out.scores.shape == (expected_frames, 50)


@needs_musicnn
def test_short_speech_clip_at_8_khz_gives_one_frame(fsdd_dir):
    backend = backend_for("MTT_musicnn", "penultimate")
    out = embed_file(backend, fsdd_dir / "recordings" / "3_jackson_0.wav")
    assert out.X.shape == (1, 200)
    assert np.isfinite(out.X).all()
    assert out.end_s[0] == pytest.approx(out.duration_s)


@needs_musicnn
@pytest.mark.parametrize("model", ["MTT_musicnn", "MTT_vgg"])
def test_clipped_loud_audio_stays_finite(philharmonia_dir, model):
    paths = sorted((philharmonia_dir / "cello").glob("*fortissimo*.mp3"))
    _, y = load_first(paths)
    loud = np.clip(y * (4.0 / np.abs(y).max()), -1.0, 1.0).astype(np.float32)
    backend = backend_for(model)
    backend.load()
    # The upstream recipe (float16 before scaling) overflows on this input...
    windows = np.zeros((1, backend.window_samples), dtype=np.float32)
    windows[0, : min(loud.size, backend.window_samples)] = loud[: backend.window_samples]
    import librosa

    mel = librosa.feature.melspectrogram(
        y=windows[0], sr=16000, n_fft=512, hop_length=256, n_mels=96
    ).astype(np.float16)
    with np.errstate(over="ignore"):
        assert np.isinf(np.log10(10000 * mel + 1)).any()
    # ...ours does not.
    out = embed_signal(backend, loud, 16000, with_scores=True)
    assert np.isfinite(out.X).all()
    assert np.isfinite(out.scores).all()


@needs_musicnn
def test_tags_name_the_instrument_family(philharmonia_dir):
    backend = backend_for("MTT_musicnn")
    names = backend.class_names

    def mean_scores(instrument):
        scores = []
        for path in sorted((philharmonia_dir / instrument).glob("*.mp3"))[:6]:
            out = embed_file(backend, path, with_scores=True)
            assert ((out.scores >= 0) & (out.scores <= 1)).all()
            scores.append(out.scores.mean(axis=0))
        return np.mean(scores, axis=0)

    def top(scores, k):
        return [names[i] for i in np.argsort(-scores)[:k]]

    cello, flute = mean_scores("cello"), mean_scores("flute")
    assert "classical" in top(cello, 3) and "classical" in top(flute, 3)
    assert {"strings", "cello", "violin"} & set(top(cello, 5))
    assert "flute" in top(flute, 10)
    # The string tags separate the two instruments, whatever their absolute rank.
    assert cello[names.index("strings")] > flute[names.index("strings")]
    assert flute[names.index("flute")] > cello[names.index("flute")]


@needs_musicnn
def test_scores_follow_their_own_batch(philharmonia_dir):
    """Scores are cached for the batch just embedded, never served for another one."""
    backend = backend_for("MTT_musicnn")
    paths = sorted((philharmonia_dir / "oboe").glob("*.mp3"))
    _, y = load_first(paths)
    a = np.zeros((2, backend.window_samples), dtype=np.float32)
    a[0, : min(y.size, a.shape[1])] = y[: a.shape[1]]
    b = a[:, ::-1].copy()
    scores_b = backend.score_windows(b)
    backend.embed_windows(a)
    np.testing.assert_array_equal(backend.score_windows(b), scores_b)
    assert not np.allclose(backend.score_windows(a), scores_b)


# ------------------------------------------------------------------ upstream agreement
UPSTREAM = textwrap.dedent(
    """
    import sys, numpy as np
    from musicnn.extractor import extractor
    taggram, _, features = extractor(sys.argv[1], model="MTT_musicnn")
    np.savez(sys.argv[2], taggram=taggram, max_pool=features["max_pool"])
    """
)


@needs_musicnn
@pytest.mark.slow
def test_agrees_with_the_upstream_extractor(philharmonia_dir, tmp_path):
    import soundfile as sf

    paths = sorted((philharmonia_dir / "french_horn").glob("*very-long*.mp3"))
    _, y = load_first(paths, min_s=6.5)
    wav = tmp_path / "clip.wav"
    sf.write(wav, y, 16000, subtype="FLOAT")  # at 16 kHz: neither side resamples
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "-c", UPSTREAM, str(wav), str(tmp_path / "up.npz")],
        check=True, env=env, timeout=120, capture_output=True,
    )  # fmt: skip
    upstream = np.load(tmp_path / "up.npz")
    # Upstream pads 256 zeros before its first STFT frame (librosa's center=True); the
    # backend declares them (lead_samples), so the signal goes in as it is.
    out = embed_signal(backend_for("MTT_musicnn", "max_pool"), y, 16000, with_scores=True)
    n = upstream["taggram"].shape[0]
    assert n >= 2 and out.X.shape[0] >= n
    # Where upstream's float16 overflow gave NaN there is nothing to compare with.
    ok = np.isfinite(upstream["taggram"]).all(axis=1)
    assert ok.any()
    ours, theirs = out.X[:n][ok], upstream["max_pool"][ok]
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() > 0.9999
    np.testing.assert_allclose(out.scores[:n][ok], upstream["taggram"][ok], atol=5e-3)
    assert np.isfinite(out.X).all()
