"""Embed many files into the store, resumably, reusing everything already cached.

:func:`embed_manifest` hashes each file's content (memoised by path, size and mtime),
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
from .exceptions import AudioError, ParameterError, StoreError
from .store.base import EmbeddingStore, StoredEmbedding
from .store.keys import embedding_key

__all__ = ["EmbedFailure", "EmbedProgress", "EmbedRun", "embed_manifest", "clip_embeddings"]

#: A run that wrote this many batches compacts the store when it ends: every batch is a
#: small fragment on disk, and reading a few keys from 150 fragments took 6x as long as
#: from one (10 000 records).
COMPACT_AFTER_WRITES = 16


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
    """

    backend_key: str
    paths: list[str]
    keys: list[str | None]
    n_computed: int = 0
    n_reused: int = 0
    failures: list[EmbedFailure] = field(default_factory=list)
    computed_audio_s: float = 0.0
    wall_s: float = 0.0

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
            speed = self.computed_audio_s / self.wall_s
            head += (
                f" ({self.computed_audio_s:.1f} s of audio in {self.wall_s:.1f} s, "
                f"{speed:.0f}x real time)"
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


def _span_duration_s(path, start_s, end_s) -> float:
    """Seconds a span will give, from the header; raises AudioError for a bad file."""
    header = audio.info(path)
    stop = header.duration_s if end_s is None else min(end_s, header.duration_s)
    return max(0.0, stop - (start_s or 0.0))


class _Reporter:
    """Progress for a person (Rich) or for code (a callable); silent by default."""

    def __init__(self, progress, n_items: int, audio_s_total: float):
        self.callback = progress if callable(progress) else None
        self.rich = None
        self.n_items = n_items
        self.audio_s_total = audio_s_total
        if progress is True:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.rich = Progress(
                TextColumn("[bold]embedding[/]"),
                BarColumn(),
                TextColumn("{task.fields[files]}/{task.fields[n_items]} files"),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio"),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                # stderr, so stdout stays the caller's (`earmark predict ... > labels.csv`).
                console=Console(stderr=True),
            )
            # Audio seconds, not files, drive the ETA: file lengths vary by 1000x.
            self.task = self.rich.add_task(
                "embed", total=max(audio_s_total, 1e-9), files=0, n_items=n_items, failed=0
            )

    def __enter__(self):
        if self.rich is not None:
            self.rich.__enter__()
        return self

    def __exit__(self, *exc_info):
        if self.rich is not None:
            self.rich.__exit__(*exc_info)

    def item(self, event: EmbedProgress, computed_s: float, n_failed: int) -> None:
        if self.rich is not None:
            if event.status == "failed":
                from rich.markup import escape

                self.rich.console.print(
                    f"[yellow]skipped[/] {escape(event.path)}: {escape(event.reason or '')}"
                )
            self.rich.update(
                self.task, advance=computed_s, files=event.n_done, failed=n_failed
            )
            if event.n_done == event.n_items:  # header lengths are only estimates
                self.rich.update(self.task, completed=max(self.audio_s_total, 1e-9))
        if self.callback is not None:
            self.callback(event)


def embed_manifest(
    manifest,
    backend: Backend,
    store: EmbeddingStore | None = None,
    *,
    progress: bool | Callable[[EmbedProgress], Any] = True,
    write_batch: int = 64,
    with_frames: bool = True,
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
        ``True`` shows a Rich progress bar (files, audio seconds, ETA) and names bad
        files as they come; a callable receives an :class:`EmbedProgress` after each
        item (raise from it to stop the run; what was embedded is kept); ``False``
        is silent.
    write_batch : int
        Records held in memory before they are written: a kill loses at most these.
    with_frames : bool
        Store frame embeddings and timestamps, not only the clip vector. Records
        stored without frames are embedded again when frames are asked for.

    Notes
    -----
    A run that wrote at least ``COMPACT_AFTER_WRITES`` batches ends with
    :meth:`EmbeddingStore.compact`.

    Returns
    -------
    EmbedRun
        Keys (``None`` for failed items), counts, failures and timing.

    Raises
    ------
    BackendUnavailableError
        If there is something to embed and the backend cannot load.
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
    if write_batch < 1:
        raise ParameterError(f"expected write_batch >= 1, got {write_batch}")
    if store is None:
        from .store import open_store

        store = open_store()
    started = time.perf_counter()
    items = _as_items(manifest)
    backend_key = backend.cache_key()
    run = EmbedRun(backend_key=backend_key, paths=[path for path, _, _ in items], keys=[])

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

    # Headers of what is left to embed: the ETA's total, and bad files caught early.
    durations: dict[str, float] = {}
    key_reasons: dict[str, str] = {}
    for index, key in enumerate(run.keys):
        if key is None or key in stored or key in durations or key in key_reasons:
            continue
        path, start_s, end_s = items[index]
        try:
            durations[key] = _span_duration_s(path, start_s, end_s)
        except AudioError as error:
            key_reasons[key] = error.reason
    if durations:
        backend.load()

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

    embedded_here: set[str] = set()
    reporter = _Reporter(progress, len(items), sum(durations.values()))
    with reporter:
        try:
            for index, (path, start_s, end_s) in enumerate(items):
                key = run.keys[index]
                computed_s = 0.0
                reason = reasons.get(index) or (key_reasons.get(key) if key else None)
                if reason is not None:
                    status = "failed"
                elif key in stored or key in embedded_here:
                    status = "reused"
                else:
                    try:
                        frames = embed_file(backend, path, start_s=start_s, end_s=end_s)
                        record = StoredEmbedding.from_embeddings(
                            frames,
                            key=key,
                            backend=backend,
                            content_sha256=hashes[index],
                            path=path,
                            start_s=start_s,
                            end_s=end_s,
                            with_frames=with_frames,
                        )
                    except AudioError as error:
                        reason = error.reason
                    except StoreError as error:  # e.g. NaN from the model, for this file
                        reason = str(error).removeprefix(f"{path}: ")
                    except Exception as error:  # one file's fault must not end the run
                        reason = f"{type(error).__name__}: {error}"
                    if reason is not None:
                        status = "failed"
                        key_reasons[key] = reason
                    else:
                        status = "computed"
                        computed_s = record.duration_s
                        embedded_here.add(key)
                        (replacements if key in frameless else new_records).append(record)
                        if len(new_records) + len(replacements) >= write_batch:
                            write()
                if status == "failed":
                    run.keys[index] = None
                    run.failures.append(EmbedFailure(path, reason))
                elif status == "computed":
                    run.n_computed += 1
                    run.computed_audio_s += computed_s
                else:
                    run.n_reused += 1
                event = EmbedProgress(
                    index=index,
                    path=path,
                    status=status,
                    n_done=index + 1,
                    n_items=len(items),
                    audio_s_done=run.computed_audio_s,
                    audio_s_total=reporter.audio_s_total,
                    reason=reason,
                )
                reporter.item(event, computed_s, run.n_failed)
        finally:
            # Interrupted (Ctrl-C, a callback raising) or not, keep what was embedded.
            write()
            store.flush()
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
