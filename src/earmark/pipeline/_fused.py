"""Embedding with a fused backend: each part through the cache, then the fused records.

Each part runs as an ordinary :func:`~earmark.pipeline.embed_manifest` under its own
cache key, so what was embedded with ``birdnet`` alone is reused by
``birdnet+aisfx``, and the fused backend's records are assembled from the parts'
records (:meth:`~earmark.backends.FusedBackend.combine`), without running any model
again. The fused records are stored too, under the fused key, so that everything that
reads a backend's records (clip matrices, search, the labelling app) reads them alike.
"""

from __future__ import annotations

import time

import numpy as np

from ..embedding import FrameEmbeddings
from ..store.base import StoredEmbedding
from ..store.keys import embedding_key
from ._plan import as_items
from ._results import EmbedFailure, EmbedRun

__all__ = ["embed_fused"]


def embed_fused(manifest, backend, store, *, write_batch: int = 64, with_frames: bool = True,
                **part_options) -> EmbedRun:
    """:func:`~earmark.pipeline.embed_manifest` for a :class:`~earmark.backends.FusedBackend`.

    ``part_options`` (``progress``, ``client``, ``block_s``) go to each part's run. An
    item fails if any part fails on it; the reason names the part.
    """
    from ._run import embed_manifest

    started = time.perf_counter()
    items = as_items(manifest)
    runs = [
        embed_manifest(items, part, store, write_batch=write_batch, with_frames=with_frames,
                       **part_options)
        for part in backend.parts
    ]
    fused_key = backend.cache_key()
    keys: list[str | None] = []
    reasons: dict[int, str] = {}
    part_reasons = [_reasons_by_index(run) for run in runs]
    for index, (path, start_s, end_s) in enumerate(items):
        failed = next(((part, found[index]) for part, found in zip(backend.parts, part_reasons)
                       if index in found), None)
        if failed is not None:
            reasons[index] = f"{failed[0].name}: {failed[1]}"
            keys.append(None)
            continue
        keys.append(embedding_key(store.content_hash(path), fused_key, start_s, end_s))
    run = EmbedRun(backend_key=fused_key, paths=[path for path, _, _ in items], keys=keys,
                   n_tasks=sum(part_run.n_tasks for part_run in runs),
                   n_workers=max(part_run.n_workers for part_run in runs))
    run.failures = [EmbedFailure(items[index][0], reason) for index, reason in sorted(reasons.items())]
    unique = list(dict.fromkeys(key for key in keys if key is not None))
    stored = store.existing(unique, backend_key=fused_key, with_frames=with_frames)
    frameless = store.existing([k for k in unique if k not in stored], backend_key=fused_key) \
        if with_frames else set()
    first_index = {key: keys.index(key) for key in unique}
    to_build = [key for key in unique if key not in stored]
    for offset in range(0, len(to_build), write_batch):
        chunk = to_build[offset:offset + write_batch]
        indices = [first_index[key] for key in chunk]
        records_of_parts = [
            store.get_many([part_run.keys[i] for i in indices], backend_key=part.cache_key(),
                           with_frames=with_frames)
            for part, part_run in zip(backend.parts, runs)
        ]
        records = []
        for key, index in zip(chunk, indices):
            parts = [found[part_run.keys[index]] for found, part_run in zip(records_of_parts, runs)]
            records.append(fused_record(backend, parts, key=key, with_frames=with_frames))
        store.put_many(records, replace=bool(frameless & set(chunk)))
    # An item counts as embedded if some part embedded it: the most any part embedded.
    run.n_computed = max(part_run.n_computed for part_run in runs)
    run.n_reused = max(sum(1 for key in keys if key is not None) - run.n_computed, 0)
    run.computed_audio_s = sum(part_run.computed_audio_s for part_run in runs)
    run.wall_s = time.perf_counter() - started
    return run


def fused_record(backend, parts: list[StoredEmbedding], *, key: str,
                 with_frames: bool = True) -> StoredEmbedding:
    """The fused backend's record of one item, from its parts' records (in part order)."""
    first = parts[0]
    if with_frames and all(part.X is not None for part in parts):
        frames = backend.combine([
            FrameEmbeddings(X=part.X, start_s=part.frame_start_s, end_s=part.frame_end_s,
                            duration_s=part.duration_s, clip=part.clip)
            for part in parts
        ])
        return StoredEmbedding.from_embeddings(
            frames, key=key, backend=backend, content_sha256=first.content_sha256,
            path=first.path, start_s=first.start_s, end_s=first.end_s, with_frames=True,
        )
    reference = parts[backend.parts.index(backend.reference)]
    record = StoredEmbedding(
        key=key, backend_key=backend.cache_key(), content_sha256=first.content_sha256,
        path=first.path, start_s=first.start_s, end_s=first.end_s,
        duration_s=reference.duration_s, backend=backend.name, backend_version=backend.version,
        weights_sha256=backend.weights_hash, params=backend.params,
        clip=np.concatenate([np.asarray(part.clip, dtype=np.float32) for part in parts]),
        n_frames=reference.n_frames,
    )
    record.validate()
    return record


def _reasons_by_index(run: EmbedRun) -> dict[int, str]:
    """Why each failed item of a run failed, by item index."""
    failed = [index for index, key in enumerate(run.keys) if key is None]
    return {index: failure.reason for index, failure in zip(failed, run.failures)}

