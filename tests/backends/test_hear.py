"""The HEAR-API adapter, end to end, with the tiny modules in ``hear_example/``."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark import audio
from earmark.backends import available, get_backend
from earmark.backends.base import file_sha256
from earmark.backends.hear import HearBackend
from earmark.embedding import embed_file, n_frames
from earmark.exceptions import BackendError, BackendUnavailableError, ParameterError

HERE = Path(__file__).resolve().parent
EXAMPLE = "hear_example.numpy_bands"


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


@pytest.fixture(scope="module")
def digits(fsdd_dir, tmp_path_factory) -> Path:
    """Five spoken digits end to end (about 2 s at 8 kHz), as one WAV."""
    files = sorted((fsdd_dir / "recordings").glob("*_nicolas_3.wav"))[:5]
    files = files or sorted((fsdd_dir / "recordings").glob("*.wav"))[:5]
    y = np.concatenate([sf.read(path, dtype="float32")[0] for path in files])
    path = tmp_path_factory.mktemp("hear") / "digits.wav"
    sf.write(path, y, 8000, subtype="PCM_16")
    return path


def _reference(module_name: str, path: Path, window: int, hop: int) -> np.ndarray:
    """The module's own scene embeddings of our windows, called without the adapter."""
    import importlib

    module = importlib.import_module(module_name)
    y, _ = audio.load(path, sr=module.SAMPLE_RATE)
    count = n_frames(y.size, window_samples=window, hop_samples=hop)
    windows = np.zeros((count, window), dtype=np.float32)
    for i in range(count):
        piece = y[i * hop : i * hop + window]
        windows[i, : piece.size] = piece
    return np.asarray(module.get_scene_embeddings(windows, module.load_model()))


# ------------------------------------------------------------------------ end to end
def test_adapter_embeds_a_real_file_as_the_module_itself_would(digits):
    backend = get_backend("hear", module=EXAMPLE, window_s=0.5, hop_s=0.25)
    assert (backend.sample_rate, backend.dimension) == (16000, 48)
    assert (backend.window_samples, backend.hop_samples) == (8000, 4000)
    out = embed_file(backend, digits)
    expected = _reference(EXAMPLE, digits, 8000, 4000)
    assert out.X.shape == expected.shape and out.X.shape[0] >= 5
    np.testing.assert_allclose(out.X, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out.start_s, np.arange(out.X.shape[0]) * 0.25)
    assert np.isfinite(out.X).all() and np.ptp(out.X, axis=0).max() > 1.0


def test_torch_module_gets_tensors_and_agrees_with_the_numpy_one(digits):
    pytest.importorskip("torch")
    numpy_backend = get_backend("hear", module=EXAMPLE)
    torch_backend = get_backend("hear", module="hear_example.torch_bands")
    assert numpy_backend.validate()["input"] == "numpy"
    # torch_bands raises TypeError on anything but a tensor: it got tensors.
    assert torch_backend.validate()["input"] == "torch"
    a, b = embed_file(numpy_backend, digits), embed_file(torch_backend, digits)
    assert a.X.shape == b.X.shape
    np.testing.assert_allclose(b.X, a.X, rtol=0, atol=1e-3 * np.abs(a.X).max())


def test_output_is_deterministic_and_batch_independent(digits):
    backend = get_backend("hear", module=EXAMPLE, window_s=0.5, hop_s=0.25, batch_size=2)
    other = get_backend("hear", module=EXAMPLE, window_s=0.5, hop_s=0.25, batch_size=16)
    np.testing.assert_array_equal(embed_file(backend, digits).X, embed_file(backend, digits).X)
    batched_by_two, batched_by_sixteen = embed_file(backend, digits), embed_file(other, digits)
    np.testing.assert_allclose(batched_by_two.X, batched_by_sixteen.X, atol=1e-5)
    assert backend.cache_key() == other.cache_key()  # batch size changes no output


# -------------------------------------------------------------------- weights, keys
def test_weights_are_passed_to_load_model_and_hashed(tmp_path, digits):
    weights = tmp_path / "projection.npy"
    np.save(weights, np.random.default_rng(7).standard_normal((64, 48)).astype(np.float32))
    default = get_backend("hear", module=EXAMPLE)
    trained = get_backend("hear", module=EXAMPLE, weights=weights)
    assert list(trained.weights_paths()) == [weights]
    expected_hash = hashlib.sha256(file_sha256(weights).encode()).hexdigest()
    assert trained.identity()["weights_sha256"] == expected_hash
    assert trained.cache_key() != default.cache_key()
    difference = np.abs(embed_file(trained, digits).X - embed_file(default, digits).X).max()
    assert difference > 0.1, "expected the weights file to change the embeddings"

    # The same weights elsewhere give the same key; other weights give another.
    moved = tmp_path / "elsewhere" / "copy.npy"
    moved.parent.mkdir()
    shutil.copy(weights, moved)
    assert get_backend("hear", module=EXAMPLE, weights=moved).cache_key() == trained.cache_key()
    np.save(moved, np.ones((64, 48), dtype=np.float32))
    assert get_backend("hear", module=EXAMPLE, weights=moved).cache_key() != trained.cache_key()


def test_missing_or_unusable_weights_are_clear_errors(tmp_path):
    missing = tmp_path / "nowhere.npy"
    with pytest.raises(ParameterError, match="nowhere.npy.*not found"):
        get_backend("hear", module=EXAMPLE, weights=missing).load()
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((3, 3), dtype=np.float32))
    with pytest.raises(BackendError, match=r"load_model\('.*wrong.npy'\) failed.*\(3, 3\)"):
        get_backend("hear", module=EXAMPLE, weights=wrong).load()


def test_cache_key_is_stable_and_follows_the_parameters():
    keys = {
        "a": get_backend("hear", module=EXAMPLE).cache_key(),
        "a-again": get_backend("hear", module=EXAMPLE).cache_key(),
        "window": get_backend("hear", module=EXAMPLE, window_s=0.5).cache_key(),
        "hop": get_backend("hear", module=EXAMPLE, hop_s=0.25).cache_key(),
        "module": get_backend("hear", module="hear_example.bad_timestamps").cache_key(),
    }
    assert keys["a"] == keys["a-again"]
    assert len({keys["a"], keys["window"], keys["hop"], keys["module"]}) == 4
    # The version names the module's code, so editing a local module changes the key.
    assert get_backend("hear", module=EXAMPLE).version.startswith("hear-1+source-")


# ---------------------------------------------------------------------- availability
def test_availability_is_checked_without_importing_the_module(monkeypatch):
    for name in [m for m in sys.modules if m == "hear_example" or m.startswith("hear_example.")]:
        monkeypatch.delitem(sys.modules, name)
    assert HearBackend.is_available() and available("hear")
    backend = get_backend("hear", module=EXAMPLE)
    assert backend.is_available()
    assert "hear_example" not in sys.modules, "is_available() imported the HEAR module"

    absent = get_backend("hear", module="no_such_hear_module")
    assert not absent.is_available()
    with pytest.raises(BackendUnavailableError, match="no_such_hear_module"):
        absent.embed_windows(np.zeros((1, 10), dtype=np.float32))
    with pytest.raises(BackendUnavailableError, match=r"hear_example\.no_such_part"):
        get_backend("hear", module="hear_example.no_such_part").load()
    with pytest.raises(ParameterError, match="needs module="):
        get_backend("hear").load()


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "module, expected",
    [
        ("no_scene", r"expected module 'hear_example\.no_scene' to define a function "
                     r"get_scene_embeddings, got none"),
        ("wrong_size", r"expected hear_example\.wrong_size\.get_scene_embeddings to return "
                       r"shape \(2, 48\) for audio of shape \(2, 16000\), got \(2, 47\)"),
        ("bad_rate", r"expected the model from hear_example\.bad_rate\.load_model\(\) to "
                     r"have sample_rate as a positive int, got '16k'"),
        ("bad_timestamps", r"expected timestamps of shape \(2, (\d+)\), got \(2, (\d+)\)"),
    ],
)  # fmt: skip
def test_a_broken_module_is_told_what_was_expected_and_what_came(module, expected):
    backend = get_backend("hear", module=f"hear_example.{module}")
    with pytest.raises(BackendError, match=expected):
        backend.validate()


def test_validate_reports_what_a_good_module_declares():
    backend = get_backend("hear", module=EXAMPLE)
    assert (backend.window_samples, backend.hop_samples) == (16000, 8000)  # 1 s, half hop
    report = backend.validate(durations_s=(0.3, 1.07, 4.0))
    assert report == {
        "module": EXAMPLE,
        "sample_rate": 16000,
        "scene_embedding_size": 48,
        "timestamp_embedding_size": 48,
        "input": "numpy",
    }


def test_windows_shorter_than_a_sample_are_refused():
    with pytest.raises(ParameterError, match="window_s=1e-06"):
        get_backend("hear", module=EXAMPLE, window_s=1e-6).load()


def test_licence_is_left_to_the_user():
    backend = get_backend("hear", module=EXAMPLE)
    assert backend.licence.commercial_use is None
    assert "responsibility" in backend.licence.summary()
