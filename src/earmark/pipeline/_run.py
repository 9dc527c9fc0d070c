"""The embedding run: plan, execute (here or on a cluster), write records, report.

The pieces live apart: :mod:`._plan` decides what to embed, an executor
(:mod:`.executors`; Dask's in :mod:`earmark.distributed`) runs the tasks of
:mod:`.tasks`, :mod:`._writer` writes their records in batches, :mod:`.progress`
shows them. This module only wires them together.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..backends.base import Backend
from ..exceptions import ParameterError, StoreError
from ..store.base import EmbeddingStore
from ._plan import as_items, plan_run
from ._results import EmbedFailure, EmbedProgress, EmbedRun
from ._writer import RecordWriter

__all__ = ["embed_manifest", "CLUSTER_BLOCK_S"]

#: Items longer than 1.5 times this are split into parts when running on a cluster: a
#: three-hour recording is then shared by many workers instead of holding one for an hour.
CLUSTER_BLOCK_S = 600.0


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
        A fused backend (``birdnet+aisfx``) runs each part under its own cache key
        (reusing what each part already embedded), then assembles its own records from
        theirs (:mod:`._fused`).
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
        joined into one record per item (:func:`earmark.pipeline.plan_blocks`).
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
    from .. import embedding
    from .executors import WorkerLost, make_executor
    from .progress import EmbedReporter
    from .tasks import assemble_blocks, embed_task

    if write_batch < 1:
        raise ParameterError(f"expected write_batch >= 1, got {write_batch}")
    if block_s is not None and not block_s > 0:
        raise ParameterError(f"expected block_s > 0 seconds or None, got {block_s}")
    if store is None:
        from ..store import open_store

        store = open_store()
    if getattr(backend, "parts", None):
        from ._fused import embed_fused

        return embed_fused(manifest, backend, store, write_batch=write_batch,
                           with_frames=with_frames, progress=progress, client=client,
                           block_s=block_s)
    started = time.perf_counter()
    items = as_items(manifest)
    executor = make_executor(backend, client)
    if client is not None and block_s is None:
        block_s = CLUSTER_BLOCK_S
    plan = plan_run(items, backend, store, with_frames=with_frames, block_s=block_s)
    run = EmbedRun(backend_key=backend.cache_key(), paths=[path for path, _, _ in items],
                   keys=list(plan.keys), n_tasks=len(plan.tasks))
    writer = RecordWriter(store, write_batch=write_batch, replace_keys=plan.frameless)
    workers = executor.n_workers if client is not None else None
    n_cached = sum(1 for key in plan.keys if key is not None and key in plan.stored)
    if progress is True and n_cached:
        # A resumed run says what it found before its bar starts.
        from rich.console import Console

        Console(stderr=True).print(
            f"{n_cached} of {len(items)} items already in the cache; "
            f"embedding the other {len(items) - n_cached}", highlight=False,
        )
    reporter = EmbedReporter(progress, len(items), sum(plan.durations.values()), workers=workers)
    tally = _Tally(run, items, reporter)

    def finish(key: str, record, reason: str | None, advance_s: float) -> None:
        if record is not None:
            writer.add(key, record)
            run.n_computed += 1
            run.computed_audio_s += record.duration_s
        first, *copies = plan.items_of.pop(key)
        tally.done(first, "failed" if record is None else "computed", reason, advance_s)
        for index in copies:  # same bytes and span: embedded once
            tally.done(index, "failed" if record is None else "reused", reason, 0.0)

    n_parts = plan.n_parts
    parts_of: dict[str, list] = {}
    outcomes = iter(())
    try:
        with reporter:
            for index, key in enumerate(plan.keys):
                reason = plan.early_failure(index)
                if reason is not None:
                    tally.done(index, "failed", reason, 0.0)
                elif key in plan.stored:
                    tally.done(index, "reused", None, 0.0)
            if plan.tasks:
                executor.prepare()
                run.n_workers = executor.n_workers()
                # embed_file is passed (not imported by the task) and looked up on its
                # module now, so that it can be instrumented, e.g. to count what
                # reaches the backend.
                outcomes = executor.run(
                    embed_task, plan.tasks, {"with_frames": with_frames, "embed_file": embedding.embed_file}
                )
            for task, outcome in outcomes:
                key = task.key
                if key not in plan.items_of:  # a part of an item that has already failed
                    continue
                if isinstance(outcome, WorkerLost) or outcome.failed:
                    parts_of.pop(key, None)
                    finish(key, None, outcome.reason, 0.0)
                    continue
                if task.part is None:
                    finish(key, outcome.record, None, outcome.audio_s)
                    continue
                reporter.advance(outcome.audio_s)
                parts = parts_of.setdefault(key, [])
                parts.append(outcome)
                if len(parts) < n_parts[key]:
                    continue
                del parts_of[key]
                try:
                    record = assemble_blocks(
                        backend, parts, n_samples=plan.lengths[key], with_frames=with_frames
                    )
                except StoreError as error:
                    finish(key, None, str(error).removeprefix(f"{task.path}: "), 0.0)
                    continue
                finish(key, record, None, 0.0)
            if plan.tasks and client is not None:
                run.n_workers = max(run.n_workers, executor.n_workers())
    finally:
        # Interrupted (Ctrl-C, a callback raising) or not, keep what was embedded,
        # and take back the tasks still queued on a cluster.
        try:
            getattr(outcomes, "close", lambda: None)()
            writer.close()
        finally:
            run.failures = tally.failures_in_order()
            run.wall_s = time.perf_counter() - started
    if writer.compact_if_fragmented():
        run.wall_s = time.perf_counter() - started
    return run


class _Tally:
    """Counts each item's end (computed, reused, failed) and tells the reporter."""

    def __init__(self, run: EmbedRun, items, reporter):
        self.run, self.items, self.reporter = run, items, reporter
        self.failures: list[tuple[int, EmbedFailure]] = []
        self.n_done = 0

    def done(self, index: int, status: str, reason: str | None, advance_s: float) -> None:
        self.n_done += 1
        if status == "failed":
            self.run.keys[index] = None
            self.failures.append((index, EmbedFailure(self.items[index][0], reason)))
        elif status == "reused":
            self.run.n_reused += 1
        event = EmbedProgress(
            index=index, path=self.items[index][0], status=status, n_done=self.n_done,
            n_items=len(self.items), audio_s_done=self.run.computed_audio_s,
            audio_s_total=self.reporter.audio_s_total, reason=reason,
        )
        self.reporter.item(event, advance_s, len(self.failures))

    def failures_in_order(self) -> list[EmbedFailure]:
        return [failure for _, failure in sorted(self.failures, key=lambda f: f[0])]
