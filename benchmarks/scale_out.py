"""Scale-out benchmark: embedding throughput on 1 and 2 Dask workers, and what limits N.

Prints, all measured in this run:

1. Throughput (seconds of audio per wall second) of ``embed_manifest`` on a Dask
   ``LocalCluster`` of 1 and of 2 worker processes (one model thread each), on the same
   files, each into a fresh temporary store (nothing reused), the workers' model load
   done before the clock starts; and the ratio 2 workers / 1 worker.
2. Scheduling overhead: tasks per second the cluster sustains with a no-op task (the
   whole path: submit, schedule, run, send back, collect), on 1 and 2 workers.
3. Store commit rate: records per second written by ``LanceStore.put_many`` in the
   pipeline's batches, records the size of the chosen backend's.
4. The model of docs/scale-out.md, tasks/s(N) = min(N / (d + c_w), 1 / c_s), checked
   against runs of many small tasks that sleep d seconds (so that N workers need no N
   cores): measured tasks per second against predicted, for several d and N.
5. What the model predicts for the chosen backend on N workers, and which bound binds.

Run (the lead's figure, on a quiet machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_out.py --backend birdnet \\
        --dataset philharmonia --files 240

Sanity check with small sizes: ``--files 20 --noop-tasks 300 --quick``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def dataset_files(name: str, n: int) -> list[str]:
    """``n`` files spread over the whole set (every class), in a fixed order."""
    folder = {"philharmonia": "philharmonia-mini", "fsdd": "fsdd/recordings"}[name]
    suffix = ".mp3" if name == "philharmonia" else ".wav"
    paths = sorted(str(p) for p in (DATASETS / folder).rglob(f"*{suffix}"))
    if not paths:
        sys.exit(f"no {name} files under {DATASETS / folder}")
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def embed_throughput(backend_name: str, paths: list[str], n_workers: int, repeats: int):
    """Audio seconds per wall second on ``n_workers`` processes (best of ``repeats``)."""
    from distributed import Client

    from earmark.backends import get_backend
    from earmark.distributed import local_cluster
    from earmark.pipeline import embed_manifest
    from earmark.store.lance import LanceStore

    backend = get_backend(backend_name)
    speeds, walls = [], []
    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        with tempfile.TemporaryDirectory() as folder:
            # Warm-up: every worker loads its model (the plugin) and imports what the
            # tasks import; not timed, as a long run pays it once.
            embed_manifest(paths[: 2 * n_workers], backend, LanceStore(f"{folder}/warm"),
                           client=client, progress=False)
            for repeat in range(repeats):
                store = LanceStore(f"{folder}/run{repeat}")
                run = embed_manifest(paths, backend, store, client=client, progress=False)
                if run.n_failed:
                    print(f"  {run.n_failed} files failed: {run.failures[0]}")
                speeds.append(run.computed_audio_s / run.wall_s)
                walls.append(run.wall_s)
    best = int(np.argmax(speeds))
    return speeds[best], walls[best], run.computed_audio_s


def _noop(backend, task):
    return task


def _sleep(backend, task):
    time.sleep(task)
    return task


def tasks_per_second(function, tasks, *, n_workers: int, threads: int = 1) -> float:
    """Tasks per second through DaskExecutor (submit, run, collect) on a LocalCluster."""
    from distributed import Client

    from earmark.backends import get_backend
    from earmark.distributed import DaskExecutor, local_cluster

    with local_cluster(n_workers, threads_per_worker=threads) as cluster, Client(cluster) as client:
        executor = DaskExecutor(client, get_backend("placeholder"))
        executor.max_in_flight = max(256, 8 * n_workers * threads)
        list(executor.run(function, tasks[: min(len(tasks), 50)]))  # warm-up
        started = time.perf_counter()
        n = sum(1 for _ in executor.run(function, tasks))
        return n / (time.perf_counter() - started)


def store_commit_rate(backend_name: str, n_records: int = 1024, batch: int = 64):
    """Records and commits per second of LanceStore.put_many, records of a real size."""
    from earmark.backends import get_backend
    from earmark.store.base import StoredEmbedding
    from earmark.store.lance import LanceStore

    backend = get_backend(backend_name)
    rng = np.random.default_rng(0)
    dimension, frames = backend.dimension, 2

    def record(i: int) -> StoredEmbedding:
        X = rng.standard_normal((frames, dimension)).astype(np.float32)
        return StoredEmbedding(
            key=f"{i:032x}", backend_key=backend.cache_key(), content_sha256="0" * 64,
            path=f"/data/{i}.wav", start_s=None, end_s=None, duration_s=3.0,
            backend=backend.name, backend_version=backend.version,
            weights_sha256=backend.weights_hash, params=backend.params, clip=X.mean(0),
            X=X, frame_start_s=np.arange(frames) * 3.0, frame_end_s=np.arange(1, frames + 1) * 3.0,
            n_frames=frames,
        )

    records = [record(i) for i in range(n_records)]
    with tempfile.TemporaryDirectory() as folder:
        store = LanceStore(folder)
        store.put_many(records[:batch])  # creates the table
        started = time.perf_counter()
        for start in range(batch, n_records, batch):
            store.put_many(records[start : start + batch])
        elapsed = time.perf_counter() - started
    n_batches = len(range(batch, n_records, batch))
    return n_batches * batch / elapsed, n_batches / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="birdnet")
    parser.add_argument("--dataset", default="philharmonia", choices=["philharmonia", "fsdd"])
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--noop-tasks", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="smaller simulation grid")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start")
    if load > 0.5:
        print("  (the machine is busy: throughput ratios will be noisy)")

    paths = dataset_files(args.dataset, args.files)
    print(f"\n1. {args.backend} on {len(paths)} {args.dataset} files, fresh store per run")
    results = {}
    for n in (1, 2):
        speed, wall, audio_s = embed_throughput(args.backend, paths, n, args.repeats)
        results[n] = speed
        audio_seconds = audio_s
        print(f"  {n} worker(s): {audio_s:.0f} s of audio in {wall:.1f} s = {speed:.1f}x real time")
    print(f"  ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}x")

    print(f"\n2. scheduling overhead, {args.noop_tasks} no-op tasks")
    noop_rate = {}
    for n in (1, 2) if args.quick else (1, 2, 4):
        noop_rate[n] = tasks_per_second(_noop, list(range(args.noop_tasks)), n_workers=n)
        print(f"  {n} worker(s): {noop_rate[n]:.0f} tasks/s ({1000 / noop_rate[n]:.2f} ms/task)")
    # One worker runs its tasks' bookkeeping in turn (c_w per task, paid in parallel by N
    # workers); the scheduler and this client see every task (c_s, paid once for all).
    worker_s = 1 / noop_rate[1]
    overhead_s = 1 / max(noop_rate.values())
    print(f"  c_w (per task, per worker) <= {worker_s * 1000:.2f} ms; "
          f"c_s (per task, scheduler + client) <= {overhead_s * 1000:.2f} ms")

    records_s, commits_s = store_commit_rate(args.backend)
    print(f"\n3. store: {records_s:.0f} records/s ({commits_s:.1f} commits/s of 64 records, "
          f"{args.backend}-sized records with 2 frames)")

    print("\n4. model tasks/s(N) = min(N / (d + c_w), 1 / c_s), against tasks that sleep d "
          "on N worker processes")
    lengths = (0.002, 0.02) if args.quick else (0.001, 0.005, 0.02, 0.1)
    grid = (1, 4) if args.quick else (1, 2, 4, 8)
    print(f"  {'d (ms)':>7} {'N':>4} {'predicted':>10} {'measured':>10} {'ratio':>6}")
    ratios = []
    for d in lengths:
        for n in grid:
            n_tasks = int(min(max(200, 3.0 * n / d), 4000))
            measured = tasks_per_second(_sleep, [d] * n_tasks, n_workers=n)
            predicted = min(n / (d + worker_s), 1 / overhead_s)
            ratios.append(measured / predicted)
            print(f"  {d * 1000:7.1f} {n:4d} {predicted:10.0f} {measured:10.0f} "
                  f"{measured / predicted:6.2f}")
    print(f"  measured / predicted: median {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f} to {max(ratios):.2f}")

    # The same model in audio seconds for the real backend: a task is one file of
    # `audio_per_task` seconds, a worker embeds r1 of them per second.
    audio_per_task = audio_seconds / len(paths)
    task_s = audio_per_task / results[1]
    print(f"\n5. predicted {args.backend} throughput, {audio_per_task:.2f} s of audio per task, "
          f"{task_s * 1000:.0f} ms per task on one worker")
    for n in (1, 2, 8, 32, 128, 512):
        bounds = {
            "workers": n * results[1],  # measured, so c_w is already in it
            "scheduler": audio_per_task / overhead_s,
            "store": audio_per_task * records_s,
        }
        limit = min(bounds, key=bounds.get)
        print(f"  N={n:4d}: {bounds[limit]:9.0f}x real time (bound: {limit})")


if __name__ == "__main__":
    main()
