"""The batch embedding pipeline: reuse, resumption after a kill, bad files, duplicates."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.backends import get_backend
from earmark.embedding import embed_file
from earmark.pipeline import EmbedProgress, clip_embeddings, embed_manifest
from earmark.store import MemoryStore
from earmark.store.lance import LanceStore


@pytest.fixture(scope="module")
def fsdd_paths(fsdd_dir) -> list[str]:
    """40 real recordings spread over every digit and speaker."""
    paths = sorted(str(p) for p in (fsdd_dir / "recordings").glob("*.wav"))
    return paths[:: max(1, len(paths) // 40)][:40]


@pytest.fixture
def backend():
    return get_backend("placeholder")


def stored_keys(store) -> list[str]:
    return [record.key for record in store.iter_records(with_frames=False)]


def test_second_run_reuses_everything(fsdd_paths, backend, tmp_path):
    store = LanceStore(tmp_path / "cache")
    first = embed_manifest(fsdd_paths, backend, store, progress=False, write_batch=16)
    assert (first.n_computed, first.n_reused, first.n_failed) == (40, 0, 0)
    assert first.computed_audio_s > 10
    assert len(set(first.keys)) == 40 and store.count(backend.cache_key()) == 40

    again = embed_manifest(fsdd_paths, backend, LanceStore(tmp_path / "cache"), progress=False)
    assert (again.n_computed, again.n_reused) == (0, 40)
    assert again.keys == first.keys
    assert store.count() == 40

    record = store.get_many([first.keys[7]])[first.keys[7]]
    direct = embed_file(backend, fsdd_paths[7])
    assert record.path == fsdd_paths[7]
    assert (record.backend, record.backend_version) == ("placeholder", backend.version)
    assert record.weights_sha256 == backend.weights_hash and record.params == backend.params
    np.testing.assert_array_equal(record.X, direct.X)
    np.testing.assert_array_equal(record.frame_start_s, direct.start_s)
    np.testing.assert_array_equal(record.clip, direct.clip)


def test_identical_files_are_embedded_once(fsdd_paths, backend, tmp_path):
    copy = tmp_path / "renamed copy.wav"
    shutil.copy(fsdd_paths[3], copy)
    store = MemoryStore()
    run = embed_manifest(fsdd_paths[:5] + [str(copy)], backend, store, progress=False)
    assert (run.n_computed, run.n_reused) == (5, 1)
    assert run.keys[5] == run.keys[3]
    assert store.count() == 5
    X = run.clip_matrix(store)
    assert X.shape == (6, backend.dimension) and np.array_equal(X[5], X[3])


def test_interrupted_run_resumes_without_loss_or_duplicate(fsdd_paths, backend, tmp_path):
    store = LanceStore(tmp_path / "cache")

    def stop_after_13(event: EmbedProgress) -> None:
        if event.n_done == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_manifest(fsdd_paths, backend, store, progress=stop_after_13, write_batch=5)
    # Ctrl-C still writes what was embedded, not only the full batches.
    assert store.count() == 13

    resumed = embed_manifest(fsdd_paths, backend, store, progress=False, write_batch=5)
    assert (resumed.n_computed, resumed.n_reused, resumed.n_failed) == (27, 13, 0)
    keys = stored_keys(store)
    assert len(keys) == len(set(keys)) == 40
    assert set(keys) == set(resumed.keys)


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from earmark.backends import get_backend
    from earmark.pipeline import embed_manifest
    from earmark.store.lance import LanceStore

    cache, marker, *paths = sys.argv[1:]

    def hang_after_10(event):
        if event.n_done == 10:
            Path(marker).touch()
            time.sleep(600)  # the parent kills us here, with 2 records still in memory

    embed_manifest(paths, get_backend("placeholder"), LanceStore(cache),
                   progress=hang_after_10, write_batch=4)
    """
)


def test_run_killed_with_sigkill_resumes(fsdd_paths, backend, tmp_path):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(cache), str(marker), *fsdd_paths]
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, "the embedding process ended before the kill"
            assert time.monotonic() < deadline, "the embedding process never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()

    store = LanceStore(cache)
    assert store.count() == 8  # two full batches written; the kill cost one partial batch
    resumed = embed_manifest(fsdd_paths, backend, store, progress=False)
    assert (resumed.n_computed, resumed.n_reused) == (32, 8)
    keys = stored_keys(store)
    assert len(keys) == len(set(keys)) == 40


def make_bad_files(folder: Path, good_wav: str) -> dict[str, str]:
    """Broken files of every kind, and a word their reason must contain."""
    folder.mkdir(exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("these are meeting notes, not audio\n" * 20)
    data = Path(good_wav).read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    y = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    y[4000] = np.nan
    sf.write(folder / "nan.wav", y, 8000, subtype="FLOAT")
    sf.write(folder / "zero.wav", np.zeros(0, dtype=np.float32), 8000)
    return {
        "empty.wav": "empty",
        "notes.wav": "not readable as audio",
        "truncated.wav": "truncated",
        "nan.wav": "NaN",
        "zero.wav": "zero length",
    }


def test_bad_files_are_named_and_the_rest_embedded(fsdd_paths, backend, tmp_path):
    expected = make_bad_files(tmp_path / "bad", fsdd_paths[0])
    bad = [str(tmp_path / "bad" / name) for name in expected]
    missing = str(tmp_path / "gone.wav")
    paths = [fsdd_paths[0], bad[0], fsdd_paths[1], *bad[1:], missing, *fsdd_paths[2:5]]
    store = MemoryStore()
    seen: list[EmbedProgress] = []
    run = embed_manifest(paths, backend, store, progress=seen.append)

    assert (run.n_computed, run.n_reused, run.n_failed) == (5, 0, 6)
    reasons = {Path(f.path).name: f.reason for f in run.failures}
    for name, word in {**expected, "gone.wav": "not found"}.items():
        assert word in reasons[name], (name, reasons[name])
    assert [f.path for f in run.failures] == [*bad, missing]
    assert run.ok_mask.tolist() == [p in fsdd_paths for p in paths]
    assert store.count() == 5
    assert [e.status for e in seen].count("failed") == 6 and seen[-1].n_done == len(paths)
    summary = run.summary()
    assert "6 files could not be embedded" in summary
    assert all(path in summary for path in bad)

    X, ok_mask, again = clip_embeddings(paths, backend, store, progress=False)
    assert X.shape == (5, backend.dimension) and ok_mask.tolist() == run.ok_mask.tolist()
    assert (again.n_computed, again.n_reused, again.n_failed) == (0, 5, 6)


def test_non_finite_embeddings_are_refused_per_file(fsdd_paths, backend, monkeypatch):
    # A model that overflows (musicnn did, see notes/backends.md) must not poison the cache.
    monkeypatch.setattr(
        backend, "_embed_windows", lambda windows: np.full((len(windows), 16), np.nan)
    )
    store = MemoryStore()
    run = embed_manifest(fsdd_paths[:3], backend, store, progress=False)
    assert run.n_failed == 3 and store.count() == 0
    assert "NaN or inf" in run.failures[0].reason
    assert not run.failures[0].reason.startswith(fsdd_paths[0])


def test_truncated_wav_is_caught_although_libsndfile_reads_it(fsdd_paths, tmp_path):
    # libsndfile shortens a WAV cut in half to the frames present, without complaint;
    # only earmark.audio's check of the container's declared data size catches it.
    data = Path(fsdd_paths[0]).read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(data[: len(data) // 2])
    assert 0 < sf.info(str(path)).frames < sf.info(fsdd_paths[0]).frames
    run = embed_manifest([path], get_backend("placeholder"), MemoryStore(), progress=False)
    assert run.n_failed == 1 and "truncated" in run.failures[0].reason


@dataclass
class Segment:
    path: str
    start_s: float | None
    end_s: float | None
    labels: tuple = ()


def test_items_with_spans_have_their_own_keys(fsdd_paths, backend):
    path = fsdd_paths[0]
    duration = sf.info(path).duration
    half = duration / 2
    items = [Segment(path, None, None), Segment(path, 0.0, half), Segment(path, half, None)]
    store = MemoryStore()
    run = embed_manifest(items, backend, store, progress=False)
    assert run.n_computed == 3 and len(set(run.keys)) == 3
    records = store.get_many(run.keys)
    assert records[run.keys[1]].start_s == 0.0 and records[run.keys[2]].end_s is None
    assert records[run.keys[1]].duration_s == pytest.approx(duration / 2, abs=1e-3)


def test_manifest_is_accepted(fsdd_paths, backend):
    import pandas as pd

    from earmark.manifest import Manifest

    manifest = Manifest(
        pd.DataFrame({"path": fsdd_paths[:6], "labels": [Path(p).name[0] for p in fsdd_paths[:6]]})
    )
    X, ok_mask, run = clip_embeddings(manifest, backend, MemoryStore(), progress=False)
    assert X.shape == (6, backend.dimension) and ok_mask.all()


def test_frames_are_added_to_records_stored_without_them(fsdd_paths, backend):
    store = MemoryStore()
    clip_only = embed_manifest(fsdd_paths[:6], backend, store, progress=False, with_frames=False)
    assert store.existing(clip_only.keys, with_frames=True) == set()
    again = embed_manifest(fsdd_paths[:6], backend, store, progress=False, with_frames=False)
    assert again.n_computed == 0
    upgraded = embed_manifest(fsdd_paths[:6], backend, store, progress=False)
    assert upgraded.n_computed == 6 and store.count() == 6
    assert store.existing(upgraded.keys, with_frames=True) == set(upgraded.keys)


def test_real_backend_mfcc(fsdd_paths, tmp_path):
    backend = get_backend("mfcc")
    store = LanceStore(tmp_path / "cache")
    paths = fsdd_paths[:10]
    X, ok_mask, run = clip_embeddings(paths, backend, store, progress=False, write_batch=3)
    assert X.shape == (10, backend.dimension) and ok_mask.all() and np.isfinite(X).all()
    np.testing.assert_allclose(X[4], embed_file(backend, paths[4]).clip, rtol=1e-6)
    X_again, _, again = clip_embeddings(paths, backend, store, progress=False)
    assert again.n_computed == 0 and np.array_equal(X, X_again)
    # Another backend configuration: its own table, nothing reused from placeholder's.
    other = embed_manifest(paths, get_backend("placeholder"), store, progress=False)
    assert other.n_computed == 10 and len(store.backend_keys()) == 2


def test_rich_progress_bar_names_bad_files(fsdd_paths, backend, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    run = embed_manifest([*fsdd_paths[:3], empty], backend, MemoryStore(), progress=True)
    captured = capsys.readouterr()
    # Progress and skipped files go to stderr: stdout stays clean for data (CSV, JSON).
    assert run.n_failed == 1 and "empty.wav" in captured.err
    assert "empty.wav" not in captured.out


def test_write_batch_must_be_positive(backend):
    from earmark.exceptions import ParameterError

    with pytest.raises(ParameterError, match="write_batch"):
        embed_manifest([], backend, MemoryStore(), write_batch=0)


def test_empty_input_is_an_empty_run(backend):
    run = embed_manifest([], backend, MemoryStore(), progress=False)
    assert run.n_items == 0 and run.ok_mask.shape == (0,)
    X, ok_mask, _ = clip_embeddings([], backend, MemoryStore(), progress=False)
    assert X.shape == (0, backend.dimension) and ok_mask.shape == (0,)


def test_a_clip_rewritten_with_the_same_size_and_mtime_is_embedded_again(fsdd_dir, tmp_path):
    """The stale-cache reproduction: another recording of the same byte size written over
    a clip, its modification time put back. The cache must give the new recording's
    embedding, in a later process (the memo persisted) as in this one."""
    import os

    backend = get_backend("mfcc")
    one, _ = sf.read(fsdd_dir / "recordings" / "1_jackson_0.wav", dtype="int16")
    two, sr = sf.read(fsdd_dir / "recordings" / "2_jackson_0.wav", dtype="int16")
    n = min(one.size, two.size)
    clip = tmp_path / "clip.wav"
    sf.write(tmp_path / "two.wav", two[:n], sr, subtype="PCM_16")
    sf.write(clip, one[:n], sr, subtype="PCM_16")
    assert clip.stat().st_size == (tmp_path / "two.wav").stat().st_size

    X_one, _, _ = clip_embeddings([str(clip)], backend, LanceStore(tmp_path / "cache"))
    stat = clip.stat()
    clip.write_bytes((tmp_path / "two.wav").read_bytes())
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (clip.stat().st_size, clip.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    X_again, _, run = clip_embeddings([str(clip)], backend, LanceStore(tmp_path / "cache"))
    expected = embed_file(backend, tmp_path / "two.wav").clip
    assert run.n_computed == 1 and run.n_reused == 0
    np.testing.assert_allclose(X_again[0], expected, rtol=1e-6)
    assert not np.allclose(X_one[0], expected)
