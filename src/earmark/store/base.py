"""The embedding store interface: what every cache of embeddings offers.

Longer than ~500 lines: the store interface is one contract, documented method by
method, with the shared content-hash memo every implementation inherits.

An embedding is stored once per key (:func:`~earmark.store.keys.embedding_key`: content
hash, backend configuration, span), with everything needed to trust it later: the
backend's name, version, weights hash and parameters, the frame embeddings with their
timestamps, and the pooled clip vector. Writes are idempotent, so a batch written twice
(a re-run after a kill, a retried worker task) never leaves a second copy.

Like perch-hoplite's database interface, the store is an abstract class with more than
one implementation (:class:`~earmark.store.lance.LanceStore` on disk,
:class:`~earmark.store.memory.MemoryStore` in memory), and one test suite runs against
all of them (``tests/store/test_store_compliance.py``).
"""

from __future__ import annotations

import os
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..exceptions import StoreError
from .keys import file_signature, hash_file_content
from .vectors import SearchHit, VectorRows, check_level, check_query, exact_search, no_vectors

__all__ = ["StoredEmbedding", "EmbeddingStore", "default_cache_dir"]

#: Environment variable that moves the cache.
CACHE_DIR_VARIABLE = "EARMARK_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where the embedding cache lives unless told otherwise.

    ``$EARMARK_CACHE_DIR`` if set; else the platform's user cache folder:
    ``$XDG_CACHE_HOME/earmark`` (``~/.cache/earmark``) on Linux,
    ``~/Library/Caches/earmark`` on macOS, ``%LOCALAPPDATA%\\earmark\\Cache`` on Windows.
    """
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        return Path(base) / "earmark" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "earmark"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earmark"


@dataclass
class StoredEmbedding:
    """One cached embedding of a file (or a span of it) by one backend configuration.

    Attributes
    ----------
    key : str
        :func:`~earmark.store.keys.embedding_key` of content, backend and span.
    backend_key : str
        :meth:`Backend.cache_key` of the backend configuration; one table per value.
    content_sha256 : str
        SHA-256 of the file's bytes.
    path : str
        The file embedded first under this key (copies with the same bytes share it).
    start_s, end_s : float or None
        The embedded span in the file; ``None`` for its start or end.
    duration_s : float
        Seconds of audio embedded.
    backend, backend_version, weights_sha256 : str
        Which model made the embedding.
    params : dict
        The backend's parameters (stored as JSON).
    clip : np.ndarray [shape=(dimension,), dtype=float32]
        Pooled clip embedding.
    X : np.ndarray [shape=(n_frames, dimension), dtype=float32] or None
        Frame embeddings; ``None`` when stored without frames or read without them.
    frame_start_s, frame_end_s : np.ndarray [shape=(n_frames,), dtype=float64] or None
        Frame spans in seconds from ``start_s``.
    n_frames : int
        Number of frames the backend produced (kept even when ``X`` is not stored).
    created_at : datetime
        When the embedding was computed (UTC).
    """

    key: str
    backend_key: str
    content_sha256: str
    path: str
    start_s: float | None
    end_s: float | None
    duration_s: float
    backend: str
    backend_version: str
    weights_sha256: str
    params: dict[str, Any]
    clip: np.ndarray = field(repr=False)
    X: np.ndarray | None = field(default=None, repr=False)
    frame_start_s: np.ndarray | None = field(default=None, repr=False)
    frame_end_s: np.ndarray | None = field(default=None, repr=False)
    n_frames: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def dimension(self) -> int:
        return int(self.clip.shape[0])

    @property
    def has_frames(self) -> bool:
        return self.X is not None

    @classmethod
    def from_embeddings(
        cls,
        embeddings,
        *,
        key: str,
        backend,
        content_sha256: str,
        path,
        start_s: float | None = None,
        end_s: float | None = None,
        with_frames: bool = True,
    ) -> "StoredEmbedding":
        """Build a record from :class:`~earmark.embedding.FrameEmbeddings`.

        Parameters
        ----------
        embeddings : FrameEmbeddings
        backend : Backend
            The backend that made them; its identity is recorded.
        with_frames : bool
            Keep the frame embeddings, or only the clip vector.
        """
        X = np.ascontiguousarray(embeddings.X, dtype=np.float32)
        record = cls(
            key=key,
            backend_key=backend.cache_key(),
            content_sha256=content_sha256,
            path=str(path),
            start_s=None if start_s is None else float(start_s),
            end_s=None if end_s is None else float(end_s),
            duration_s=float(embeddings.duration_s),
            backend=backend.name,
            backend_version=backend.version,
            weights_sha256=backend.weights_hash,
            params=backend.params,
            clip=np.ascontiguousarray(embeddings.clip, dtype=np.float32),
            X=X if with_frames else None,
            frame_start_s=np.asarray(embeddings.start_s, dtype=np.float64) if with_frames else None,
            frame_end_s=np.asarray(embeddings.end_s, dtype=np.float64) if with_frames else None,
            n_frames=int(X.shape[0]),
        )
        record.validate()
        return record

    def validate(self) -> None:
        """Check shapes, types and finiteness before the record enters a store.

        Raises
        ------
        StoreError
            Naming the record's file and what is wrong.
        """

        def fail(what: str):
            raise StoreError(f"{self.path}: cannot store embedding {self.key!r}: {what}")

        if not isinstance(self.key, str) or not self.key:
            fail("expected a non-empty string key")
        if not isinstance(self.backend_key, str) or not self.backend_key:
            fail("expected a non-empty backend_key")
        clip = np.asarray(self.clip)
        if clip.ndim != 1 or clip.shape[0] == 0:
            fail(f"expected clip of shape (dimension,), got {clip.shape}")
        if not np.isfinite(clip).all():
            fail("the clip embedding holds NaN or inf")
        if self.X is None:
            if self.frame_start_s is not None or self.frame_end_s is not None:
                fail("frame timestamps given without frame embeddings")
            return
        X = np.asarray(self.X)
        if X.ndim != 2 or X.shape[1] != clip.shape[0]:
            fail(f"expected X of shape (n_frames, {clip.shape[0]}), got {X.shape}")
        if X.shape[0] != self.n_frames:
            fail(f"n_frames={self.n_frames} but X has {X.shape[0]} rows")
        for name in ("frame_start_s", "frame_end_s"):
            times = getattr(self, name)
            if times is None or np.shape(times) != (X.shape[0],):
                fail(f"expected {name} of shape ({X.shape[0]},), got {np.shape(times)}")
        if not np.isfinite(X).all():
            fail("the frame embeddings hold NaN or inf")


def check_all_found(keys: Sequence[str], found) -> None:
    """Raise :class:`StoreError` naming the first keys of ``keys`` absent from ``found``."""
    missing = [key for key in keys if key not in found]
    if missing:
        raise StoreError(
            f"{len(missing)} of {len(keys)} keys are not in the store "
            f"(first: {', '.join(missing[:3])})"
        )


class EmbeddingStore(ABC):
    """A cache of embeddings keyed by content, backend configuration and span.

    Subclasses implement the storage (:meth:`_insert`, :meth:`get_many`,
    :meth:`existing`, :meth:`count`, :meth:`iter_records`, :meth:`backend_keys`) and,
    optionally, persistence of the file-hash memo (:meth:`_read_hash_memo`,
    :meth:`_write_hash_memo`). Validation, de-duplication within a batch, and the memo
    itself live here, once.

    Stores are safe to share between threads; :class:`~earmark.store.lance.LanceStore`
    is also safe to write from several processes at once.
    """

    #: Memo entries kept in memory before they are written out.
    hash_flush_every = 256

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._hash_memo: dict[str, tuple[str, str]] | None = None
        self._pending_hashes: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ writing
    def put_many(self, records: Iterable[StoredEmbedding], *, replace: bool = False) -> int:
        """Store records; a key already present is never written a second time.

        Parameters
        ----------
        records : iterable of StoredEmbedding
            May repeat a key; the first occurrence wins.
        replace : bool
            Overwrite records already stored under the same key (used to add frames to
            a record stored without them). Still one row per key.

        Returns
        -------
        n_written : int
            Records inserted (or replaced); keys already stored do not count.

        Raises
        ------
        StoreError
            If a record is malformed, its dimension differs from its table's, or the
            storage cannot be written.
        """
        groups: dict[str, dict[str, StoredEmbedding]] = {}
        for record in records:
            record.validate()
            groups.setdefault(record.backend_key, {}).setdefault(record.key, record)
        written = 0
        for backend_key, unique in groups.items():
            batch = list(unique.values())
            dimensions = {record.dimension for record in batch}
            if len(dimensions) > 1:
                raise StoreError(
                    f"backend {backend_key}: records of one backend must share a dimension, "
                    f"got {sorted(dimensions)}"
                )
            with self._lock:
                written += self._insert(backend_key, batch, replace=replace)
        return written

    @abstractmethod
    def _insert(self, backend_key: str, records: list[StoredEmbedding], *, replace: bool) -> int:
        """Insert validated records with unique keys into one backend's table."""

    # ------------------------------------------------------------------ reading
    @abstractmethod
    def get_many(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = True,
    ) -> dict[str, StoredEmbedding]:
        """Records stored under ``keys``; missing keys are absent from the result.

        Parameters
        ----------
        keys : iterable of str
        backend_key : str, optional
            Look only in this backend configuration's table (faster); ``None`` looks in
            all of them.
        with_frames : bool
            Read the frame embeddings too; ``False`` reads only the clip vector and the
            metadata, and leaves ``X`` and the frame times as ``None``.
        """

    @abstractmethod
    def existing(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = False,
    ) -> set[str]:
        """The subset of ``keys`` already stored.

        With ``with_frames=True``, only keys whose records hold frame embeddings.
        """

    @abstractmethod
    def count(self, backend_key: str | None = None) -> int:
        """Number of stored records, in one backend's table or in all."""

    @abstractmethod
    def iter_records(
        self,
        backend_key: str | None = None,
        *,
        with_frames: bool = True,
        batch_size: int = 1024,
    ) -> Iterator[StoredEmbedding]:
        """Every stored record, in one backend's table or in all, read in batches."""

    @abstractmethod
    def backend_keys(self) -> list[str]:
        """Backend configurations that have a table in the store."""

    def configurations(self) -> dict[str, dict]:
        """Which backend configurations the store holds, by name and parameters.

        Returns
        -------
        dict
            ``backend_key -> {"backend": name, "params": dict, "records": int}``; the
            name and parameters rebuild the backend through
            :func:`earmark.backends.from_identity`.
        """
        found = {}
        for backend_key in self.backend_keys():
            first = next(iter(self.iter_records(backend_key, with_frames=False, batch_size=1)), None)
            if first is not None:
                found[backend_key] = {
                    "backend": first.backend,
                    "params": first.params,
                    "records": self.count(backend_key),
                }
        return found

    def clip_matrix(self, keys: Sequence[str], *, backend_key: str | None = None) -> np.ndarray:
        """Clip embeddings of ``keys``, in order.

        Returns
        -------
        X : np.ndarray [shape=(len(keys), dimension), dtype=float32]

        Raises
        ------
        StoreError
            If a key is not stored, or the keys come from backends of different
            dimensions.
        """
        keys = list(keys)
        found = self.get_many(keys, backend_key=backend_key, with_frames=False)
        check_all_found(keys, found)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        dimensions = {found[key].dimension for key in keys}
        if len(dimensions) > 1:
            raise StoreError(f"keys mix embeddings of dimensions {sorted(dimensions)}")
        return np.stack([found[key].clip for key in keys]).astype(np.float32, copy=False)

    # --------------------------------------------------------------- searching
    def search_vectors(
        self,
        query,
        *,
        backend_key: str,
        k: int = 10,
        level: str = "clip",
        exact: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` stored clips or segments nearest ``query`` by cosine distance.

        Parameters
        ----------
        query : np.ndarray [shape=(dimension,)]
            A vector in the backend configuration's embedding space.
        backend_key : str
            The backend configuration's table to search.
        k : int
        level : {"clip", "segment"}
            Search pooled clip vectors, or the frame vectors of records stored with
            frames (see :mod:`earmark.store.vectors`).
        exact : bool
            Compare with every vector. Stores with a vector index answer approximately
            otherwise; this base implementation is always exact.

        Returns
        -------
        hits : list of SearchHit
            At most ``k``, by ascending distance.

        Raises
        ------
        StoreError
            If the store holds nothing of ``backend_key`` (or no frames, for segments).
        ParameterError
            If the query is not a finite non-zero vector of the table's dimension.
        """
        level = check_level(level)
        check_query(query, k=k)
        rows = self.vector_rows(backend_key, level=level)
        if len(rows) == 0:
            raise no_vectors(backend_key, level, self.backend_keys())
        query = check_query(query, rows.X.shape[1], k=k)
        found, distances = exact_search(query, rows.X, k)
        return [rows.hit(row, distance) for row, distance in zip(found, distances)]

    def vector_rows(self, backend_key: str, *, level: str = "clip") -> VectorRows:
        """Every searchable vector of one backend configuration, with its span.

        Returns
        -------
        VectorRows
            Empty if the store holds nothing of ``backend_key``.
        """
        level = check_level(level)
        records = self.iter_records(backend_key, with_frames=level == "segment")
        return VectorRows.from_records(records, level=level)

    def build_index(self, backend_key: str, *, level: str = "clip", replace: bool = False) -> bool:
        """Build (or bring up to date) the vector index that approximate search uses.

        Stores without an index search exactly and do nothing here.

        Returns
        -------
        built : bool
            Whether an index was trained.
        """
        check_level(level)
        return False

    # --------------------------------------------------------------- file hashes
    def content_hash(self, path) -> str:
        """SHA-256 of a file's bytes, remembered by path and checked before it is reused.

        The memo trusts a remembered hash only while the file's signature is the same
        (:func:`~earmark.store.keys.file_signature`: size, modification and status-change
        times, device and inode, and a hash of the first and last 64 KiB), so a re-run
        over thousands of unchanged files reads 128 KiB of each, and a file rewritten
        with other bytes, even of the same size and with its old modification time, is
        hashed again. ``EARMARK_FULL_HASH=1`` hashes every file in full every time.

        Raises
        ------
        AudioError
            If the file is missing or cannot be read.
        """
        if os.environ.get("EARMARK_FULL_HASH", "") not in ("", "0"):
            return hash_file_content(path)
        absolute, signature = file_signature(path)
        with self._lock:
            if self._hash_memo is None:
                self._hash_memo = self._read_hash_memo()
            hit = self._hash_memo.get(absolute)
        if hit is not None and hit[0] == signature:
            return hit[1]
        digest = hash_file_content(path)
        # A file rewritten while it was being read must not be remembered.
        if file_signature(path)[1] != signature:
            return digest
        with self._lock:
            self._hash_memo[absolute] = self._pending_hashes[absolute] = (signature, digest)
            if len(self._pending_hashes) >= self.hash_flush_every:
                self._flush_hashes()
        return digest

    def _flush_hashes(self) -> None:
        with self._lock:
            if self._pending_hashes:
                pending, self._pending_hashes = self._pending_hashes, {}
                self._write_hash_memo(pending)

    def _read_hash_memo(self) -> dict[str, tuple[str, str]]:
        """The persisted memo: absolute path -> (signature, sha256)."""
        return {}

    def _write_hash_memo(self, entries: dict[str, tuple[str, str]]) -> None:
        """Persist new or changed memo entries (in-memory stores keep nothing)."""

    # --------------------------------------------------------------- lifecycle
    def flush(self) -> None:
        """Write out anything held in memory (the file-hash memo)."""
        self._flush_hashes()

    def compact(self) -> None:
        """Merge small writes and drop old versions, where the storage has any."""

    def close(self) -> None:
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count()
