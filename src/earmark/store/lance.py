"""The embedding store on disk: an embedded LanceDB database, no server.

Layout: one Lance table per backend configuration, ``embeddings_<backend cache key>``
(dimensions differ between backends), one row per embedding in the columns listed in
:mod:`earmark.store.arrow`, plus ``file_hashes``, the memo of file content hashes.

Writes are ``merge_insert(on="key").when_not_matched_insert_all()`` on a table whose
``key`` is declared its (unenforced) primary key. With that declaration Lance detects
two processes inserting the same key at once and retries the loser against the new
data, so concurrent writers (Dask workers, a retried task) never leave a duplicate;
without it they do (measured with lancedb 0.40: two processes writing 60 keys in
overlapping batches left 6 to 30 duplicate rows; the compliance suite checks this).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import StoreError
from .arrow import (
    FRAME_COLUMNS,
    META_COLUMNS,
    PRIMARY_KEY,
    embedding_schema,
    records_from_arrow,
    records_to_arrow,
)
from .base import EmbeddingStore, StoredEmbedding, check_all_found
from .lance_index import SEGMENT_PREFIX, IndexSettings, LanceVectorSearch
from .vectors import SearchHit, check_level, check_query, no_vectors

__all__ = ["LanceStore"]

TABLE_PREFIX = "embeddings_"
#: The file-hash memo. Version 2 checks a signature (see keys.file_signature); the
#: first table, keyed by (size, mtime) alone, is left unread.
HASH_TABLE = "file_hashes_v2"
#: Up to this many keys are looked up with ``key IN (...)``; more, with one scan of
#: the key column and a take by row id.
_IN_LIST_MAX = 256
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


_HASH_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("signature", pa.string()),
        pa.field("sha256", pa.string()),
    ]
)


def _quoted(keys: Sequence[str]) -> str:
    return ", ".join("'" + key.replace("'", "''") + "'" for key in keys)


class LanceStore(EmbeddingStore):
    """Embeddings cached on disk in an embedded LanceDB database.

    Parameters
    ----------
    directory : str or Path
        The database folder; created if missing.
    index_settings : IndexSettings, optional
        Vector index type and search parameters (see :mod:`earmark.store.lance_index`).

    Examples
    --------
    >>> store = LanceStore("/tmp/earmark-cache")  # doctest: +SKIP
    >>> store.count()  # doctest: +SKIP
    0
    """

    def __init__(self, directory, *, index_settings: IndexSettings | None = None) -> None:
        super().__init__()
        import lancedb

        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the embedding cache at {self.directory}: {error}"
            ) from None
        # Interval 0: every read sees what other processes committed, so a resumed or
        # parallel run never re-embeds what another one has just written.
        self._db = lancedb.connect(str(self.directory), read_consistency_interval=timedelta(0))
        self._tables: dict[str, object] = {}
        self._vectors = LanceVectorSearch(self, index_settings or IndexSettings())

    def __repr__(self) -> str:
        return f"LanceStore({str(self.directory)!r})"

    def _fail(self, what: str, error: Exception):
        raise StoreError(f"embedding cache at {self.directory}: {what} failed: {error}") from error

    # ------------------------------------------------------------------ tables
    def _table_names(self) -> list[str]:
        names, token = [], None
        while True:
            response = self._db.list_tables(page_token=token)
            names.extend(response.tables)
            token = response.page_token
            if not token:
                return names

    def _open(self, name: str, schema: pa.Schema | None = None):
        """The table called ``name``; created with ``schema`` if given and missing."""
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            try:
                table = self._db.open_table(name)
            except ValueError:  # lancedb's "Table ... was not found"
                if schema is None:
                    return None
                try:
                    table = self._db.create_table(name, schema=schema)
                except ValueError:  # another process created it first
                    table = self._db.open_table(name)
                primary = table.schema.field(0).metadata or {}
                if not any(b"primary-key" in k for k in primary):
                    table.set_unenforced_primary_key(schema.field(0).name)
            self._tables[name] = table
            return table

    def _embedding_table(self, backend_key: str, *, create_for: StoredEmbedding | None = None):
        if not _SAFE_NAME.match(backend_key):
            raise StoreError(f"backend key {backend_key!r} cannot name a table")
        schema = None
        if create_for is not None:
            schema = embedding_schema(
                create_for.dimension, backend_key=backend_key, backend=create_for.backend
            )
        try:
            return self._open(TABLE_PREFIX + backend_key, schema)
        except (RuntimeError, OSError, pa.ArrowException) as error:
            self._fail(f"opening the table of backend {backend_key}", error)

    def _tables_for(self, backend_key: str | None) -> list[tuple[str, object]]:
        keys = self.backend_keys() if backend_key is None else [backend_key]
        tables = [(key, self._embedding_table(key)) for key in keys]
        return [(key, table) for key, table in tables if table is not None]

    def backend_keys(self) -> list[str]:
        try:
            names = self._table_names()
        except (RuntimeError, OSError) as error:
            self._fail("listing tables", error)
        return [name[len(TABLE_PREFIX) :] for name in names if name.startswith(TABLE_PREFIX)]

    # ------------------------------------------------------------------ writing
    def _insert(self, backend_key: str, records: list[StoredEmbedding], *, replace: bool) -> int:
        table = self._embedding_table(backend_key, create_for=records[0])
        dimension = table.schema.field("vector").type.list_size
        if records[0].dimension != dimension:
            raise StoreError(
                f"backend {backend_key}: expected embeddings of dimension {dimension}, "
                f"got {records[0].dimension} (from {records[0].path})"
            )
        # No existing() pre-check: callers (the pipeline) write keys they know are new,
        # and the check cost 40 % of a batched write; merge_insert skips the rest.
        data = records_to_arrow(records, table.schema, dimension)
        builder = table.merge_insert("key")
        if replace:
            builder = builder.when_matched_update_all()
        try:
            result = builder.when_not_matched_insert_all().execute(data)
        except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
            self._fail(f"writing {len(records)} embeddings", error)
        return int(result.num_inserted_rows) + int(result.num_updated_rows)

    # ------------------------------------------------------------------ reading
    def _select(self, table, keys: list[str], columns: list[str], where: str | None) -> pa.Table:
        """Rows of ``table`` whose key is in ``keys`` (no particular order).

        ``columns`` must include ``key``.
        """
        if len(keys) > _IN_LIST_MAX:
            # Many keys: one pass over the key column, then fetch only the rows wanted.
            scan = table.search()
            if where:
                scan = scan.where(where)
            found = scan.select(["key"]).with_row_id(True).limit(None).to_arrow()
            chosen = found.filter(pc.is_in(found.column("key"), value_set=pa.array(keys)))
            if columns == ["key"]:
                return chosen.select(["key"])
            if chosen.num_rows == 0:
                return table.schema.empty_table().select(columns)
            rows = table.take_row_ids(chosen.column("_rowid").to_pylist()).select(columns)
            rows = rows.to_arrow()
            # Compaction by another process between scan and take renumbers rows; then
            # the keys do not match and the slower query by key is the safe answer.
            if sorted(rows.column("key").to_pylist()) == sorted(chosen.column("key").to_pylist()):
                return rows
        extra = f" AND ({where})" if where else ""
        parts = [
            table.search()
            .where(f"key IN ({_quoted(keys[start : start + _IN_LIST_MAX])}){extra}")
            .select(columns)
            .limit(None)
            .to_arrow()
            for start in range(0, len(keys), _IN_LIST_MAX)
        ]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _read(self, keys, backend_key, columns, where=None) -> list[tuple[str, pa.Table]]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        parts = []
        for key, table in self._tables_for(backend_key):
            try:
                parts.append((key, self._select(table, wanted, columns, where)))
            except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
                self._fail(f"reading {len(wanted)} embeddings", error)
        return parts

    def get_many(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = True,
    ) -> dict[str, StoredEmbedding]:
        columns = META_COLUMNS + (FRAME_COLUMNS if with_frames else [])
        found: dict[str, StoredEmbedding] = {}
        for table_key, rows in self._read(keys, backend_key, columns):
            for record in records_from_arrow(rows, table_key, with_frames):
                found.setdefault(record.key, record)
        return found

    def existing(
        self,
        keys: Iterable[str],
        *,
        backend_key: str | None = None,
        with_frames: bool = False,
    ) -> set[str]:
        # frame_start_s is null exactly when frames are, and testing the small column
        # is 10 to 70 times faster than testing the frames themselves (10 000 records).
        where = "frame_start_s IS NOT NULL" if with_frames else None
        return {
            key
            for _, rows in self._read(keys, backend_key, ["key"], where)
            for key in rows.column("key").to_pylist()
        }

    def clip_matrix(self, keys: Sequence[str], *, backend_key: str | None = None) -> np.ndarray:
        # Only two columns, no records built: this is what every learner reads.
        keys = list(keys)
        parts = self._read(keys, backend_key, ["key", "vector"])
        row_of: dict[str, np.ndarray] = {}
        dimensions = set()
        for _, rows in parts:
            if rows.num_rows == 0:
                continue
            dimension = rows.schema.field("vector").type.list_size
            dimensions.add(dimension)
            matrix = rows.column("vector").combine_chunks().flatten().to_numpy()
            matrix = matrix.reshape(rows.num_rows, dimension)
            for key, vector in zip(rows.column("key").to_pylist(), matrix):
                row_of.setdefault(key, vector)
        check_all_found(keys, row_of)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        if len(dimensions) > 1:
            raise StoreError(f"keys mix embeddings of dimensions {sorted(dimensions)}")
        return np.stack([row_of[key] for key in keys]).astype(np.float32)

    def count(self, backend_key: str | None = None) -> int:
        try:
            return sum(table.count_rows() for _, table in self._tables_for(backend_key))
        except (RuntimeError, OSError) as error:
            self._fail("counting rows", error)

    def iter_records(
        self,
        backend_key: str | None = None,
        *,
        with_frames: bool = True,
        batch_size: int = 1024,
    ) -> Iterator[StoredEmbedding]:
        columns = META_COLUMNS + (FRAME_COLUMNS if with_frames else [])
        for table_key, table in self._tables_for(backend_key):
            reader = table.search().select(columns).limit(None).to_batches(batch_size)
            for batch in reader:
                yield from records_from_arrow(pa.Table.from_batches([batch]), table_key, with_frames)

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
        """Nearest clips or segments by cosine distance, through a LanceDB vector index.

        See :meth:`EmbeddingStore.search_vectors`. A table of
        :attr:`IndexSettings.min_rows` rows or more is searched with its vector index,
        trained on the first search if missing (:meth:`build_index` does it ahead);
        smaller tables, and ``exact=True``, are searched exhaustively.
        """
        level = check_level(level)
        check_query(query, k=k)
        try:
            table = self._searchable(backend_key, level)
            dimension = table.schema.field("vector").type.list_size
            query = check_query(query, dimension, k=k)
            return self._vectors.search(table, query, k=k, level=level, exact=exact)
        except (RuntimeError, OSError, pa.ArrowException) as error:
            self._fail(f"searching the {level} vectors of backend {backend_key}", error)

    def build_index(self, backend_key: str, *, level: str = "clip", replace: bool = False) -> bool:
        """Train the vector index of one backend's clip or segment table now.

        Without ``replace``, an existing index is kept (and new rows folded into it when
        many); a table smaller than :attr:`IndexSettings.min_rows` gets none, unless
        ``replace`` asks to retrain one it has.

        Returns
        -------
        built : bool
            Whether an index was trained.

        Raises
        ------
        StoreError
            If the store holds nothing of ``backend_key`` at ``level``.
        """
        level = check_level(level)
        try:
            table = self._searchable(backend_key, level)
            return self._vectors.ensure_index(table, replace=replace)
        except (RuntimeError, OSError, pa.ArrowException) as error:
            self._fail(f"indexing the {level} vectors of backend {backend_key}", error)

    def _searchable(self, backend_key: str, level: str):
        """The table searched at ``level``, synced; StoreError if it has no vectors."""
        table = self._vectors.table(backend_key, level) if _SAFE_NAME.match(backend_key) else None
        if table is None or table.count_rows() == 0:
            raise no_vectors(backend_key, level, self.backend_keys())
        return table

    # --------------------------------------------------------------- file hashes
    def _read_hash_memo(self) -> dict[str, tuple[str, str]]:
        try:
            table = self._open(HASH_TABLE)
            if table is None:
                return {}
            rows = table.to_arrow()
        except (RuntimeError, OSError, pa.ArrowException) as error:
            self._fail("reading the file-hash memo", error)
        return {
            path: (signature, digest)
            for path, signature, digest in zip(
                *(rows.column(name).to_pylist() for name in _HASH_SCHEMA.names)
            )
        }

    def _write_hash_memo(self, entries: dict[str, tuple[str, str]]) -> None:
        data = pa.table(
            {
                "path": list(entries),
                "signature": [entry[0] for entry in entries.values()],
                "sha256": [entry[1] for entry in entries.values()],
            },
            schema=_HASH_SCHEMA,
        )
        try:
            table = self._open(HASH_TABLE, _HASH_SCHEMA)
            (
                table.merge_insert("path")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
        except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
            self._fail("writing the file-hash memo", error)

    # --------------------------------------------------------------- lifecycle
    def compact(self) -> None:
        """Merge the small fragments batched writes leave and drop versions a week old.

        Each write is one Lance version and one fragment; thousands of them slow reads.
        """
        try:
            for _, table in self._tables_for(None):
                table.optimize()
            for name in self._table_names():
                if name.startswith(SEGMENT_PREFIX):
                    self._open(name).optimize()
        except (RuntimeError, OSError) as error:
            self._fail("compacting", error)
