"""Embedding and detection on a real two-process Dask LocalCluster, a worker killed midway."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.embedding import embed_file
from earmark.pipeline import EmbedProgress, embed_manifest
from earmark.store.lance import LanceStore

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from earmark.distributed import local_cluster

    cluster = local_cluster(2)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def recordings(fsdd_dir) -> list[str]:
    """240 real recordings, every digit and speaker."""
    paths = sorted(str(p) for p in (fsdd_dir / "recordings").glob("*.wav"))
    return paths[:: len(paths) // 240][:240]


def stored_keys(store) -> list[str]:
    return [record.key for record in store.iter_records(with_frames=False)]


def wait_for_workers(client, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
        assert time.monotonic() < deadline, "the nanny did not bring the worker back"
        time.sleep(0.2)


def test_a_worker_killed_midway_loses_nothing_and_duplicates_nothing(
    client, recordings, tmp_path
):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(200))
    paths = recordings[:120] + [str(corrupt)] + recordings[120:]
    store = LanceStore(tmp_path / "cache")
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_one_worker_at_60(event: EmbedProgress) -> None:
        if event.n_done == 60:
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(event.n_done)

    backend = get_backend("mfcc")
    run = embed_manifest(
        paths, backend, store, client=client, progress=kill_one_worker_at_60, write_batch=16
    )

    assert killed == [60], "the worker must die in the middle of the run"
    assert (run.n_computed, run.n_reused, run.n_failed) == (240, 0, 1)
    assert run.failures[0].path == str(corrupt) and "not readable" in run.failures[0].reason
    assert run.n_workers == 2
    keys = stored_keys(store)
    assert len(keys) == len(set(keys)) == 240  # one row per (file, span, backend)
    assert set(keys) == set(run.ok_keys)  # nothing missing
    assert store.count(backend.cache_key()) == 240
    # The cluster's vectors are this process's vectors.
    record = store.get_many([run.keys[5]])[run.keys[5]]
    np.testing.assert_allclose(record.X, embed_file(backend, paths[5]).X, rtol=1e-5, atol=1e-5)
    wait_for_workers(client, 2)


def test_an_interrupted_cluster_run_resumes_from_the_store(client, recordings, tmp_path):
    store = LanceStore(tmp_path / "cache")
    paths = recordings[:100]

    def stop_at_30(event: EmbedProgress) -> None:
        if event.n_done == 30:
            raise KeyboardInterrupt

    backend = get_backend("placeholder")
    with pytest.raises(KeyboardInterrupt):
        embed_manifest(paths, backend, store, client=client, progress=stop_at_30, write_batch=8)
    # What came back before the interruption is written; the queued tasks are cancelled.
    assert store.count() == 30

    resumed = embed_manifest(paths + paths[:10], backend, store, client=client, progress=False)
    assert (resumed.n_computed, resumed.n_reused, resumed.n_failed) == (70, 40, 0)
    keys = stored_keys(store)
    assert len(keys) == len(set(keys)) == 100


def test_a_long_file_is_shared_by_the_workers_as_blocks(client, tmp_path, fsdd_dir):
    import soundfile as sf

    clips = sorted((fsdd_dir / "recordings").glob("*_nicolas_*.wav"))[:60]
    y = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips])
    path = tmp_path / "long.wav"
    sf.write(path, y, 8000)
    backend = get_backend("placeholder")
    store = LanceStore(tmp_path / "cache")
    run = embed_manifest([path], backend, store, client=client, progress=False, block_s=5.0)
    assert run.n_tasks >= 4 and run.n_computed == 1
    record = store.get_many(run.keys)[run.keys[0]]
    whole = embed_file(backend, path)
    assert record.X.shape == whole.X.shape
    np.testing.assert_array_equal(record.frame_end_s, whole.end_s)


def test_detect_on_the_cluster_writes_each_files_events(client, recordings, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from earmark.detection.batch import detect_files
    from earmark.detection.stream import SlidingWindows

    backend = get_backend("placeholder")
    X = np.stack([embed_file(backend, path).clip for path in recordings[:40]])
    labels = [Path(path).name[0] for path in recordings[:40]]
    scorer = SlidingWindows(LogisticRegression(max_iter=500).fit(X, labels))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    paths = recordings[:12] + [str(empty)]

    reports = list(
        detect_files(
            scorer, backend, paths, tmp_path / "out", formats=["csv", "json"], plot=False,
            client=client, threshold=0.3,
        )
    )

    assert sorted(report.path for report in reports) == sorted(paths)
    failed = [report for report in reports if report.error]
    assert [report.path for report in failed] == [str(empty)] and "empty" in failed[0].error
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    # Two formats per readable file, and no temporary file left behind.
    assert len(written) == 24 and not [name for name in written if name.startswith(".")]
    local = next(
        detect_files(scorer, backend, paths[:1], tmp_path / "here", plot=False, threshold=0.3)
    )
    remote = next(report for report in reports if report.path == paths[0])
    assert remote.result.to_dict() == local.result.to_dict()
