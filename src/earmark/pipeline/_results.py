"""What an embedding run returns: its keys, counts, failures and a summary for people."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..store.base import EmbeddingStore

__all__ = ["EmbedFailure", "EmbedProgress", "EmbedRun"]


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
            from .progress import duration_text

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
