"""Embed many files into the store, resumably, reusing everything already cached.

:func:`embed_manifest` hashes each file's content (memoised by path, checked against a
signature: size, times, inode and a hash of both ends; see
:meth:`~earmark.store.base.EmbeddingStore.content_hash`),
derives the key (:func:`~earmark.store.keys.embedding_key`), skips keys the store holds,
embeds the rest and writes them every ``write_batch`` records. A run killed halfway
loses at most one unwritten batch; run again, it embeds only what is missing, and the
store's idempotent writes keep exactly one row per key. Two files with the same bytes
are embedded once.

A bad file (empty, truncated, not audio, NaN or inf samples, zero length) does not
stop the run: it is reported by name, counted, and listed in :attr:`EmbedRun.failures`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import audio
from .backends.base import Backend
from .embedding import embed_file
from .exceptions import AudioError, EarmarkError, ParameterError, StoreError
from .store.base import EmbeddingStore, StoredEmbedding
from .store.keys import embedding_key

__all__ = ["EmbedFailure", "EmbedProgress", "EmbedRun", "embed_manifest", "clip_embeddings", "frame_bags"]

#: A run that wrote this many batches compacts the store when it ends: every batch is a
#: small fragment on disk, and reading a few keys from 150 fragments took 6x as long as
#: from one (10 000 records).
COMPACT_AFTER_WRITES = 16

#: Items longer than 1.5 times this are split into blocks when running on a cluster: a
#: three-hour recording is then shared by many workers instead of holding one for an hour.
CLUSTER_BLOCK_S = 600.0


@dataclass(frozen=True)
class EmbedFailure:
    """A file the run could not embed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class EmbedProgress:
    """What a progress callback receives after each item.

    ``status`` is ``"computed"``, ``"reused"`` or ``"failed"``; audio seconds count
    only audio embedded in this run (``audio_s_total`` is read from file headers).
    """

    index: int
    path: str
    status: str
    n_done: int
    n_items: int
    audio_s_done: float
    audio_s_total: float
    reason: str | None = None


@dataclass
class EmbedRun:
    """The outcome of :func:`embed_manifest`.

    Attributes
    ----------
    backend_key : str
        The backend configuration's cache key (the store table the keys live in).
    paths : list of str
        The items' files, in input order.
    keys : list of (str or None)
        Each item's store key, ``None`` where it failed.
    n_computed, n_reused : int
        Items embedded in this run, and items found in the store (or sharing the
        content of an item embedded earlier in this run).
    failures : list of EmbedFailure
        Items that failed, in input order.
    computed_audio_s : float
        Seconds of audio embedded in this run.
    wall_s : float
        Seconds the run took.
    n_tasks : int
        Tasks run (one per item to embed, more for items split into blocks).
    n_workers : int
        Processes that ran them (1 without a cluster; the most seen connected).
    """

    backend_key: str
    paths: list[str]
    keys: list[str | None]
    n_computed: int = 0
    n_reused: int = 0
    failures: list[EmbedFailure] = field(default_factory=list)
    computed_audio_s: float = 0.0
    wall_s: float = 0.0
    n_tasks: int = 0
    n_workers: int = 1

    @property
    def n_items(self) -> int:
        return len(self.keys)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def ok_mask(self) -> np.ndarray:
        """np.ndarray [shape=(n_items,), dtype=bool]: items that have an embedding."""
        return np.array([key is not None for key in self.keys], dtype=bool)

    @property
    def ok_keys(self) -> list[str]:
        return [key for key in self.keys if key is not None]

    def clip_matrix(self, store: EmbeddingStore) -> np.ndarray:
        """Clip embeddings of the items that succeeded, in input order.

        Returns
        -------
        X : np.ndarray [shape=(n_ok, dimension), dtype=float32]
        """
        return store.clip_matrix(self.ok_keys, backend_key=self.backend_key)

    def summary(self) -> str:
        """A few lines for a person: counts, speed, and every failed file by name."""
        head = (
            f"{self.n_items} items: {self.n_computed} embedded, {self.n_reused} reused "
            f"from the cache, {self.n_failed} failed"
        )
        if self.n_computed and self.wall_s > 0:
            from .distributed.progress import duration_text

            speed = self.computed_audio_s / self.wall_s
            workers = f", {self.n_workers} workers" if self.n_workers > 1 else ""
            head += (
                f" ({duration_text(self.computed_audio_s)} of audio in "
                f"{duration_text(self.wall_s)}, {speed:.0f}x real time{workers})"
            )
        lines = [head]
        if self.failures:
            noun = "file" if self.n_failed == 1 else "files"
            lines.append(f"{self.n_failed} {noun} could not be embedded:")
            lines.extend(f"  {failure}" for failure in self.failures)
        return "\n".join(lines)


def _as_items(source) -> list[tuple[str, float | None, float | None]]:
    """(path, start_s, end_s) of each item: paths, or objects with ``.path``."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    items = []
    for item in source:
        if isinstance(item, (str, os.PathLike)):
            items.append((os.fspath(item), None, None))
            continue
        path = getattr(item, "path", None)
        if path is None:
            raise ParameterError(
                "expected file paths or items with .path (and optional .start_s, .end_s), "
                f"got {type(item).__name__}"
            )
        start_s, end_s = getattr(item, "start_s", None), getattr(item, "end_s", None)
        items.append((os.fspath(path), start_s, end_s))
    return items


def _span_duration_s(header, start_s, end_s) -> float:
    """Seconds a span will give, from the file's header."""
    stop = header.duration_s if end_s is None else min(end_s, header.duration_s)
    return max(0.0, stop - (start_s or 0.0))


def embed_manifest(
    manifest,
    backend: Backend,
    store: EmbeddingStore | None = None,
    *,
    progress: bool | Callable[[EmbedProgress], Any] = True,
    write_batch: int = 64,
    with_frames: bool = True,
    client=None,
    block_s: float | None = None,
) -> EmbedRun:
    """Embed every item into the store, reusing what it already holds.

    Parameters
    ----------
    manifest : Manifest, iterable of items, or iterable of paths
        Items with ``.path`` and optional ``.start_s`` / ``.end_s`` (a
        :class:`~earmark.manifest.Manifest` iterates such items), or plain paths.
    backend : Backend
    store : EmbeddingStore, optional
        Defaults to :func:`~earmark.store.open_store` (the user's cache).
    progress : bool or callable
        ``True`` shows a Rich progress bar (files, audio seconds, ETA, workers) and
        names bad files as they come; a callable receives an :class:`EmbedProgress`
        after each item (raise from it to stop the run; what was embedded is kept);
        ``False`` is silent.
    write_batch : int
        Records held in memory before they are written: a kill loses at most these.
    with_frames : bool
        Store frame embeddings and timestamps, not only the clip vector. Records
        stored without frames are embedded again when frames are asked for.
    client : distributed.Client, optional
        Run the tasks on this Dask cluster (:func:`earmark.distributed.open_client`);
        ``None`` runs the same tasks here, one after another. Either way, records are
        written from this process, in batches, as tasks finish.
    block_s : float, optional
        Split items longer than 1.5 blocks into tasks of about this many seconds,
        joined into one record per item (:func:`earmark.distributed.plan_blocks`).
        Default: 600 s on a cluster (so workers share a long file), whole items here.

    Notes
    -----
    A run that wrote at least ``COMPACT_AFTER_WRITES`` batches ends with
    :meth:`EmbeddingStore.compact`. Progress events come in the order items finish:
    items found in the store (or failing at their header) first, then the others;
    :attr:`EmbedRun.failures` is in input order.

    Returns
    -------
    EmbedRun
        Keys (``None`` for failed items), counts, failures and timing.

    Raises
    ------
    BackendUnavailableError
        If there is something to embed and the backend cannot load (here or on a
        worker).
    StoreError
        If the store cannot be read or written.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> from earmark.store import open_store
    >>> run = embed_manifest(["a.wav", "b.wav"], get_backend("mfcc"), open_store(":memory:"),
    ...                      progress=False)  # doctest: +SKIP
    >>> print(run.summary())  # doctest: +SKIP
    """
    from .distributed.executors import WorkerLost, make_executor
    from .distributed.progress import EmbedReporter
    from .distributed.tasks import assemble_blocks, embed_task, plan_blocks

    if write_batch < 1:
        raise ParameterError(f"expected write_batch >= 1, got {write_batch}")
    if block_s is not None and not block_s > 0:
        raise ParameterError(f"expected block_s > 0 seconds or None, got {block_s}")
    if store is None:
        from .store import open_store

        store = open_store()
    started = time.perf_counter()
    items = _as_items(manifest)
    backend_key = backend.cache_key()
    run = EmbedRun(backend_key=backend_key, paths=[path for path, _, _ in items], keys=[])
    executor = make_executor(backend, client)
    if client is not None and block_s is None:
        block_s = CLUSTER_BLOCK_S

    # Keys first: one pass of (memoised) hashing, then one question to the store.
    hashes: list[str | None] = []
    reasons: dict[int, str] = {}
    for index, (path, start_s, end_s) in enumerate(items):
        try:
            content = store.content_hash(path)
            run.keys.append(embedding_key(content, backend_key, start_s, end_s))
            hashes.append(content)
        except (AudioError, ParameterError) as error:
            reasons[index] = error.reason if isinstance(error, AudioError) else str(error)
            run.keys.append(None)
            hashes.append(None)
    unique = list(dict.fromkeys(key for key in run.keys if key is not None))
    stored = store.existing(unique, backend_key=backend_key, with_frames=with_frames)
    frameless = (
        store.existing([k for k in unique if k not in stored], backend_key=backend_key)
        if with_frames
        else set()
    )

    # Headers of what is left to embed: the ETA's total, bad files caught early, and
    # the tasks (one per key; blocks for a long item).
    durations: dict[str, float] = {}
    lengths: dict[str, int] = {}
    key_reasons: dict[str, str] = {}
    items_of: dict[str, list[int]] = {}
    tasks = []
    for index, key in enumerate(run.keys):
        if key is None or key in stored or key in key_reasons:
            continue
        if key in durations:
            items_of[key].append(index)
            continue
        path, start_s, end_s = items[index]
        try:
            header = audio.info(path)
            durations[key] = _span_duration_s(header, start_s, end_s)
            lengths[key] = (
                audio.n_samples_at(header, backend.sample_rate, start_s, end_s)
                if block_s is not None and durations[key] > block_s
                else 0
            )
        except (AudioError, ParameterError) as error:
            key_reasons[key] = error.reason if isinstance(error, AudioError) else str(error)
            continue
        items_of[key] = [index]
        tasks.extend(
            plan_blocks(
                backend, key=key, path=path, content_sha256=hashes[index],
                start_s=start_s, end_s=end_s, n_samples=lengths[key], block_s=block_s,
            )
        )
    run.n_tasks = len(tasks)
    n_parts = {task.key: (task.part.of if task.part else 1) for task in tasks}

    new_records: list[StoredEmbedding] = []
    replacements: list[StoredEmbedding] = []
    n_writes = 0

    def write() -> None:
        nonlocal n_writes
        # Empty the buffers first: a write that fails is not retried by the `finally`.
        batch, replacing = new_records[:], replacements[:]
        new_records.clear()
        replacements.clear()
        if batch:
            store.put_many(batch)
            n_writes += 1
        if replacing:
            store.put_many(replacing, replace=True)
            n_writes += 1

    failures: list[tuple[int, EmbedFailure]] = []
    workers = executor.n_workers if client is not None else None
    n_cached = sum(1 for key in run.keys if key is not None and key in stored)
    if progress is True and n_cached:
        # A resumed run says what it found before its bar starts.
        from rich.console import Console

        Console(stderr=True).print(
            f"{n_cached} of {len(items)} items already in the cache; "
            f"embedding the other {len(items) - n_cached}", highlight=False,
        )
    reporter = EmbedReporter(progress, len(items), sum(durations.values()), workers=workers)
    n_done = 0

    def done(index: int, status: str, reason: str | None, advance_s: float) -> None:
        nonlocal n_done
        n_done += 1
        if status == "failed":
            run.keys[index] = None
            failures.append((index, EmbedFailure(items[index][0], reason)))
        elif status == "reused":
            run.n_reused += 1
        event = EmbedProgress(
            index=index,
            path=items[index][0],
            status=status,
            n_done=n_done,
            n_items=len(items),
            audio_s_done=run.computed_audio_s,
            audio_s_total=reporter.audio_s_total,
            reason=reason,
        )
        reporter.item(event, advance_s, len(failures))

    def finish(key: str, record: StoredEmbedding | None, reason: str | None, advance_s: float):
        if record is not None:
            (replacements if key in frameless else new_records).append(record)
            if len(new_records) + len(replacements) >= write_batch:
                write()
            run.n_computed += 1
            run.computed_audio_s += record.duration_s
        first, *copies = items_of.pop(key)
        done(first, "failed" if record is None else "computed", reason, advance_s)
        for index in copies:  # same bytes and span: embedded once
            done(index, "failed" if record is None else "reused", reason, 0.0)

    blocks: dict[str, list] = {}
    outcomes = iter(())
    try:
        with reporter:
            for index, key in enumerate(run.keys):
                reason = reasons.get(index) or (key_reasons.get(key) if key else None)
                if reason is not None:
                    done(index, "failed", reason, 0.0)
                elif key in stored:
                    done(index, "reused", None, 0.0)
            if tasks:
                executor.prepare()
                run.n_workers = executor.n_workers()
            outcomes = (
                # embed_file is passed (not imported by the task) so that it can be
                # instrumented here, e.g. to count what reaches the backend.
                executor.run(
                    embed_task, tasks, {"with_frames": with_frames, "embed_file": embed_file}
                )
                if tasks
                else iter(())
            )
            for task, outcome in outcomes:
                key = task.key
                if key not in items_of:  # a block of an item that has already failed
                    continue
                if isinstance(outcome, WorkerLost) or outcome.failed:
                    blocks.pop(key, None)
                    finish(key, None, outcome.reason, 0.0)
                    continue
                if task.part is None:
                    finish(key, outcome.record, None, outcome.audio_s)
                    continue
                reporter.advance(outcome.audio_s)
                parts = blocks.setdefault(key, [])
                parts.append(outcome)
                if len(parts) < n_parts[key]:
                    continue
                del blocks[key]
                try:
                    record = assemble_blocks(
                        backend, parts, n_samples=lengths[key], with_frames=with_frames
                    )
                except StoreError as error:
                    finish(key, None, str(error).removeprefix(f"{task.path}: "), 0.0)
                    continue
                finish(key, record, None, 0.0)
            if tasks and client is not None:
                run.n_workers = max(run.n_workers, executor.n_workers())
    finally:
        # Interrupted (Ctrl-C, a callback raising) or not, keep what was embedded,
        # and take back the tasks still queued on a cluster.
        try:
            getattr(outcomes, "close", lambda: None)()
            write()
            store.flush()
        finally:
            run.failures = [failure for _, failure in sorted(failures, key=lambda f: f[0])]
            run.wall_s = time.perf_counter() - started
    if n_writes >= COMPACT_AFTER_WRITES:
        store.compact()
        run.wall_s = time.perf_counter() - started
    return run


def clip_embeddings(
    manifest,
    backend: Backend,
    store: EmbeddingStore | None = None,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray, EmbedRun]:
    """Embed (or reuse) every item and return the clip matrix learners need.

    Parameters
    ----------
    manifest, backend, store, **kwargs
        As for :func:`embed_manifest`.

    Returns
    -------
    X : np.ndarray [shape=(n_ok, dimension), dtype=float32]
        Clip embeddings of the items that succeeded, in input order.
    ok_mask : np.ndarray [shape=(n_items,), dtype=bool]
        Which items those are (select labels with ``y[ok_mask]``).
    run : EmbedRun
    """
    if store is None:
        from .store import open_store

        store = open_store()
    run = embed_manifest(manifest, backend, store, **kwargs)
    if not run.ok_keys:
        return np.zeros((0, backend.dimension), dtype=np.float32), run.ok_mask, run
    return run.clip_matrix(store), run.ok_mask, run


def frame_bags(paths, backend: Backend) -> tuple[list[np.ndarray], np.ndarray, Any]:
    """Frame embeddings of each file, for a frame (MIL) model; bad files are skipped.

    Not cached: a frame model's files are embedded whole, in process.

    Parameters
    ----------
    paths : list of str
    backend : Backend

    Returns
    -------
    bags : list of np.ndarray [shape=(n_frames, dimension)]
        One per readable file, in order.
    ok : np.ndarray [shape=(len(paths),), dtype=bool]
    reasons : iterator of str
        Why each skipped file failed, in order of the skipped files.
    """
    bags, ok, reasons = [], [], []
    for path in paths:
        try:
            X = embed_file(backend, path).X
            if len(X) == 0:
                raise EarmarkError(f"{path}: too short for one {backend.name} frame")
        except EarmarkError as error:  # AudioError, or a backend failing on the file
            ok.append(False)
            reasons.append(str(error).removeprefix(f"{path}: "))
            continue
        bags.append(X)
        ok.append(True)
    return bags, np.array(ok, dtype=bool), iter(reasons)
