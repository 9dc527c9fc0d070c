"""Similarity search on a store of >= 200,000 segments: latency and recall vs exact search.

What it measures, through the public store API (``LanceStore.search_vectors``,
``level="segment"``), on one LanceStore of ``--n`` 1024-d segment vectors:

- build: time to sync the segment table from the stored records, and to train each
  index;
- latency: median and p95 over ``--queries`` queries (after 5 warm-up queries) of one
  ``search_vectors(..., k=10)`` call, the whole public path;
- recall@10 of the index against exact search (NumPy, float64 cosine, over the very same
  vectors), and LanceDB's own exhaustive search (``exact=True``) as the reference latency.

Data. The segments are BirdNET v2.4 frame embeddings (1024-d) of the shared datasets
(FSDD, Speech Commands mini, Philharmonia mini), read from the embedding cache
(``~/.cache/earmark``; ``earmark embed`` fills it). The cache holds only a few thousand
real frames, so the rest are made from them and labelled ``synthetic`` in their paths:
half are a real frame plus Gaussian noise (per dimension, ``0.25 x`` that dimension's
standard deviation over the real frames), half are a random mix ``l*a + (1-l)*b`` of two
real frames (``l`` uniform in [0, 1]) plus the same noise. Queries are real frames held
out of the store (none of them, nor anything made from them, is indexed), so every query
is new to the index, as an example clip is.

Run (about 10 to 20 minutes on 2 cores; latency is pessimistic on a shared machine):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/search.py --n 200000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


BACKEND = "benchbirdnet0001"


def real_frames(cache_dir: str | None, backend_name: str) -> tuple[np.ndarray, list[str]]:
    from earmark.store import open_store

    store = open_store(cache_dir)
    for backend_key in store.backend_keys():
        first = next(store.iter_records(backend_key, with_frames=False, batch_size=1))
        if first.backend == backend_name:
            rows = store.vector_rows(backend_key, level="segment")
            return rows.X, rows.paths
    raise SystemExit(f"no {backend_name} embeddings in the cache; run `earmark embed` first")


def make_vectors(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n - len(real)`` synthetic vectors from ``real`` (see module docstring)."""
    n_new = n - len(real)
    scale = 0.25 * real.std(axis=0)
    a = real[rng.integers(len(real), size=n_new)]
    b = real[rng.integers(len(real), size=n_new)]
    mix = rng.uniform(size=(n_new, 1)).astype(np.float32)
    mixed = np.where(np.arange(n_new)[:, None] % 2 == 0, a, mix * a + (1 - mix) * b)
    noise = rng.standard_normal((n_new, real.shape[1]), dtype=np.float32) * scale
    return np.concatenate([real, mixed + noise]).astype(np.float32)


def fill_store(directory: Path, X: np.ndarray, n_real: int, frames_per_record: int):
    """Write ``X`` as records of ``frames_per_record`` frames (1 s hop) into a LanceStore."""
    from earmark.store import StoredEmbedding
    from earmark.store.lance import LanceStore

    store = LanceStore(directory)
    records = []
    for index, start in enumerate(range(0, len(X), frames_per_record)):
        frames = X[start : start + frames_per_record]
        n = len(frames)
        path = f"{'real' if start < n_real else 'synthetic'}/{index:06d}.wav"
        records.append(
            StoredEmbedding(
                key=f"bench{index:08d}", backend_key=BACKEND, content_sha256=str(index),
                path=path, start_s=None, end_s=None, duration_s=float(n + 2), backend="birdnet",
                backend_version="bench", weights_sha256="0" * 64, params={},
                clip=frames.mean(axis=0), X=frames, frame_start_s=np.arange(n, dtype=float),
                frame_end_s=np.arange(n, dtype=float) + 3.0, n_frames=n,
            )  # fmt: skip
        )
        if len(records) == 500:
            store.put_many(records)
            records = []
    if records:
        store.put_many(records)
    store.compact()
    return store


def exact_top(Xn: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k rows, the ground truth (``Xn`` rows are unit length)."""
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    similarity = qn @ Xn.T
    top = np.argpartition(-similarity, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def timed_queries(store, queries, k, *, exact=False):
    def one(query):
        return store.search_vectors(query, backend_key=BACKEND, k=k, level="segment", exact=exact)

    for query in queries[:5]:
        one(query)
    seconds, answers = [], []
    for query in queries:
        start = time.perf_counter()
        hits = one(query)
        seconds.append(time.perf_counter() - start)
        answers.append(hits)
    return np.array(seconds) * 1000, answers


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="segments in the store")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache-dir", default=None, help="embedding cache with BirdNET frames")
    parser.add_argument("--workdir", default=None, help="where to build the store (temp)")
    parser.add_argument("--quick", action="store_true", help="fewer index settings")
    parser.add_argument("--flat", action="store_true", help="IVF_FLAT at several nprobes only")
    parser.add_argument(
        "--reuse", action="store_true", help="search the store already in --workdir (same seed)"
    )
    parser.add_argument("--hnsw", action="store_true", help="also IVF_HNSW_SQ (slow to build)")
    parser.add_argument("--exhaustive-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from earmark.store.lance import LanceStore
    from earmark.store.lance_index import IndexSettings

    rng = np.random.default_rng(args.seed)
    X_real, _ = real_frames(args.cache_dir, "birdnet")
    held_out = rng.choice(len(X_real), size=args.queries, replace=False)
    keep = np.setdiff1d(np.arange(len(X_real)), held_out)
    queries = X_real[held_out]
    X = make_vectors(X_real[keep], args.n, rng)
    print(
        f"{len(X_real)} real BirdNET frames: {len(keep)} in the store, {len(queries)} held out "
        f"as queries; {len(X) - len(keep)} synthetic; {len(X)} segments of dimension {X.shape[1]}"
    )

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="earmark-search-bench-"))
    try:
        start = time.perf_counter()
        if args.reuse and (workdir / "store").is_dir():
            store = LanceStore(workdir / "store")
        else:
            store = fill_store(workdir / "store", X, len(keep), frames_per_record=20)
        print(f"wrote {store.count()} records in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        table = store._vectors.table(BACKEND, "segment")
        elapsed = time.perf_counter() - start
        print(f"segment table synced: {table.count_rows()} rows in {elapsed:.1f} s")
        # Row order of the segment table is the order the vectors were written in.
        order = table.search().select(["key", "frame"]).limit(None).to_arrow()
        keys, frames = (order.column(name).to_pylist() for name in ("key", "frame"))
        ids = [f"{key}/{frame}" for key, frame in zip(keys, frames)]
        row_of = {f"bench{i // 20:08d}/{i % 20}": i for i in range(len(X))}
        assert sorted(row_of) == sorted(ids)

        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        start = time.perf_counter()
        truth = exact_top(Xn, queries, args.k)
        print(f"NumPy exact search: {1000 * (time.perf_counter() - start) / len(queries):.1f} ms "
              "per query (batched matrix product)")  # fmt: skip

        results = []
        reference = LanceStore(workdir / "store", index_settings=IndexSettings(min_rows=10**12))
        # Exhaustive search takes seconds a query at this size: a subset is enough for its
        # latency and to check it agrees with NumPy.
        subset = queries[: args.exhaustive_queries]
        ms, answers = timed_queries(reference, subset, args.k, exact=True)
        results.append(("exhaustive (LanceDB flat, exact=True)", "-", ms, answers))

        if args.flat:
            plans = {IndexSettings(index_type="IVF_FLAT"): [(8, None), (16, None), (24, None), (32, None)]}
        elif args.quick:
            plans = {
                IndexSettings(index_type="IVF_PQ"): [(32, 10), (32, 20)],
            }
        else:
            plans = {
                IndexSettings(index_type="IVF_PQ"): [(16, 10), (32, 10), (32, 20), (64, 20)],
                IndexSettings(index_type="IVF_FLAT"): [(16, None), (32, None)],
            }
        if args.hnsw:
            plans[IndexSettings(index_type="IVF_HNSW_SQ", num_partitions=8)] = [(2, 10), (4, 10)]
        for base, probes in plans.items():
            builder = LanceStore(workdir / "store", index_settings=base)
            start = time.perf_counter()
            builder.build_index(BACKEND, level="segment", replace=True)
            built_s = time.perf_counter() - start
            for nprobes, refine in probes:
                ef = 100 if base.index_type == "IVF_HNSW_SQ" else None
                settings = replace(base, nprobes=nprobes, refine_factor=refine, ef=ef)
                searcher = LanceStore(workdir / "store", index_settings=settings)
                ms, answers = timed_queries(searcher, queries, args.k)
                label = f"{base.index_type} nprobes={nprobes} refine={refine}" + (
                    " ef=100" if settings.ef else ""
                )
                results.append((label, f"{built_s:.0f}", ms, answers))

        print(f"\n{len(X)} segments, {len(queries)} held-out queries "
              f"({args.exhaustive_queries} for exhaustive), k={args.k}, seed {args.seed}")
        header = ("search", "build s", "median ms", "p95 ms", "recall@10")
        print("{:48s} {:>8s} {:>10s} {:>8s} {:>10s}".format(*header))
        reference_median = np.median(results[0][2])
        for label, built, ms, answers in results:
            # zip stops at the answers given: the exhaustive row has fewer queries.
            recall = np.mean(
                [
                    len({row_of[f"{h.key}/{h.frame}"] for h in hits} & set(want)) / args.k
                    for hits, want in zip(answers, truth)
                ]
            )
            print(
                f"{label:48s} {built:>8s} {np.median(ms):10.1f} {np.percentile(ms, 95):8.1f} "
                f"{recall:10.3f}   ({reference_median / np.median(ms):.1f}x faster than exhaustive)"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
