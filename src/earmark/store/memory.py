"""An embedding store held in memory: for tests, notebooks and throwaway runs."""

from __future__ import annotations

import copy
from typing import Iterable, Iterator

from ..exceptions import StoreError
from .base import EmbeddingStore, StoredEmbedding

__all__ = ["MemoryStore"]


def _copy(record: StoredEmbedding, *, with_frames: bool = True) -> StoredEmbedding:
    """A copy that shares no array with the store, so callers cannot edit the cache."""
    clone = copy.copy(record)
    clone.params = copy.deepcopy(record.params)
    clone.clip = record.clip.copy()
    for name in ("X", "frame_start_s", "frame_end_s"):
        value = getattr(record, name)
        setattr(clone, name, value.copy() if (with_frames and value is not None) else None)
    return clone


class MemoryStore(EmbeddingStore):
    """Keeps every record in a dictionary per backend configuration; nothing persists.

    Examples
    --------
    >>> store = MemoryStore()
    >>> store.count()
    0
    """

    def __init__(self) -> None:
        super().__init__()
        self._tables: dict[str, dict[str, StoredEmbedding]] = {}

    def _insert(self, backend_key: str, records: list[StoredEmbedding], *, replace: bool) -> int:
        table = self._tables.setdefault(backend_key, {})
        if table:
            dimension = next(iter(table.values())).dimension
            if records[0].dimension != dimension:
                raise StoreError(
                    f"backend {backend_key}: expected embeddings of dimension {dimension}, "
                    f"got {records[0].dimension} (from {records[0].path})"
                )
        written = 0
        for record in records:
            if replace or record.key not in table:
                table[record.key] = _copy(record)
                written += 1
        return written

    def _tables_for(self, backend_key: str | None) -> list[dict[str, StoredEmbedding]]:
        with self._lock:
            if backend_key is None:
                return list(self._tables.values())
            return [self._tables[backend_key]] if backend_key in self._tables else []

    def get_many(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = True,
    ) -> dict[str, StoredEmbedding]:
        found: dict[str, StoredEmbedding] = {}
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            for table in self._tables_for(backend_key):
                for key in wanted:
                    if key in table and key not in found:
                        found[key] = _copy(table[key], with_frames=with_frames)
        return found

    def existing(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = False,
    ) -> set[str]:
        wanted = set(keys)
        with self._lock:
            return {
                key
                for table in self._tables_for(backend_key)
                for key in wanted
                if key in table and (not with_frames or table[key].X is not None)
            }

    def count(self, backend_key: str | None = None) -> int:
        with self._lock:
            return sum(len(table) for table in self._tables_for(backend_key))

    def iter_records(
        self,
        backend_key: str | None = None,
        *,
        with_frames: bool = True,
        batch_size: int = 1024,
    ) -> Iterator[StoredEmbedding]:
        with self._lock:
            snapshot = [list(table.values()) for table in self._tables_for(backend_key)]
        for records in snapshot:
            for record in records:
                yield _copy(record, with_frames=with_frames)

    def backend_keys(self) -> list[str]:
        with self._lock:
            return list(self._tables)

    def __repr__(self) -> str:
        return f"MemoryStore({self.count()} records)"
