"""Vector search in a :class:`~earmark.store.lance.LanceStore`: tables, index, queries.

Clip search runs on each backend's embeddings table itself (its ``vector`` column).
Segment search runs on a derived table, ``segments_<backend key>``, one row per stored
frame vector with its record's key and path and the frame's span in the file
(``id = "<key>/<frame>"`` is its primary key, so two processes bringing it up to date at
once cannot duplicate a row).

Keeping the segment table up to date: it is synced incrementally, on the first segment
search after the embeddings table changed (its Lance version moved on). Only records not
yet in the segment table are read and added; the version synced last is kept in memory
and in ``segments_<backend key>.sync.json`` beside the tables, so an unchanged store
costs one version check per search. Records are never changed under the same key (the key
hashes content, backend and span), so adding what is new is all a sync needs to do.

The index: a table smaller than :attr:`IndexSettings.min_rows` is searched exactly
(LanceDB's flat scan is fast at that size). The first search of a larger table trains
the index (:meth:`LanceStore.build_index` does it ahead of time); rows written later are
found by a flat scan of the unindexed rows, merged with the index's answer, and are
folded into the index (``optimize``, no retraining) once they pass
:attr:`IndexSettings.max_unindexed_fraction` of the indexed rows. ``build_index(...,
replace=True)`` retrains from scratch.

The default index is IVF_FLAT (k-means partitions holding the full vectors, so distances
inside the probed partitions are exact and recall depends on ``nprobes`` alone), chosen
with ``benchmarks/search.py`` on 200,000 1024-d BirdNET-based segment vectors, 2 shared
cores: it trained in 36 s where IVF_PQ took 13 minutes (its product quantiser is the slow
part), and it reached recall@10 = 1.00 at 16 of ~450 partitions in 30 ms (median) where
IVF_PQ needed ``refine_factor=20`` for 0.98 (0.93 at 10). The price is disk: the index
holds a copy of the vectors (4 kB per 1024-d segment), where PQ codes take 64 bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import StoreError
from .arrow import PRIMARY_KEY
from .vectors import SearchHit

__all__ = ["IndexSettings", "SEGMENT_PREFIX"]

SEGMENT_PREFIX = "segments_"
#: Records read at once while syncing the segment table.
_SYNC_BATCH = 512


@dataclass(frozen=True)
class IndexSettings:
    """How a :class:`~earmark.store.lance.LanceStore` indexes and searches vectors.

    Parameters
    ----------
    index_type : {"IVF_FLAT", "IVF_PQ", "IVF_HNSW_SQ"}
        LanceDB index type (see the module docstring for the choice).
    min_rows : int
        Tables with fewer rows are not indexed: a flat scan is exact and fast enough.
    num_partitions : int, optional
        IVF partitions; ``None`` lets LanceDB choose (about ``sqrt(n_rows)``).
    num_sub_vectors : int, optional
        PQ sub-vectors (IVF_PQ); ``None`` lets LanceDB choose (``dimension / 16``).
    nprobes : int
        IVF partitions searched per query.
    refine_factor : int, optional
        Re-rank ``refine_factor * k`` candidates by exact distance (IVF_PQ, IVF_HNSW_SQ;
        IVF_FLAT distances are exact already).
    ef : int, optional
        HNSW search breadth (IVF_HNSW_SQ).
    max_unindexed_fraction : float
        Fold new rows into the index once they pass this fraction of the indexed rows.
    """

    index_type: Literal["IVF_FLAT", "IVF_PQ", "IVF_HNSW_SQ"] = "IVF_FLAT"
    min_rows: int = 20_000
    num_partitions: int | None = None
    num_sub_vectors: int | None = None
    nprobes: int = 20
    refine_factor: int | None = 20
    ef: int | None = None
    max_unindexed_fraction: float = 0.1

    def index_config(self):
        from lancedb.index import HnswSq, IvfFlat, IvfPq

        if self.index_type == "IVF_PQ":
            return IvfPq(
                distance_type="cosine",
                num_partitions=self.num_partitions,
                num_sub_vectors=self.num_sub_vectors,
            )
        if self.index_type == "IVF_HNSW_SQ":
            return HnswSq(distance_type="cosine", num_partitions=self.num_partitions or 1)
        if self.index_type == "IVF_FLAT":
            return IvfFlat(distance_type="cosine", num_partitions=self.num_partitions)
        raise StoreError(f"unknown index type {self.index_type!r}")


def segment_schema(dimension: int, *, backend_key: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
            pa.field("key", pa.string()),
            pa.field("frame", pa.int32()),
            pa.field("path", pa.string()),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ],
        metadata={"earmark.backend_key": backend_key, "earmark.dimension": str(dimension)},
    )


def segment_rows(records: pa.Table, schema: pa.Schema) -> pa.Table:
    """One row per frame of embedding-table rows (columns key, path, start_s, frames,
    frame_start_s, frame_end_s), spans made absolute in the file."""
    frames = records.column("frames").combine_chunks()
    parents = pc.list_parent_indices(frames)
    if len(parents) == 0:
        return schema.empty_table()
    offsets = frames.offsets.to_numpy()[:-1]
    parent_index = parents.to_numpy()
    within = np.arange(len(parent_index)) - offsets[parent_index]
    record_start = pc.fill_null(records.column("start_s"), 0.0).to_numpy()[parent_index]
    starts = record_start + _flat(records.column("frame_start_s"))
    ends = record_start + _flat(records.column("frame_end_s"))
    keys = pc.take(records.column("key"), parents).combine_chunks()
    ids = pc.binary_join_element_wise(keys, pa.array(within.astype(str)), "/")
    columns = {
        "id": ids,
        "key": keys,
        "frame": pa.array(within, pa.int32()),
        "path": pc.take(records.column("path"), parents),
        "start_s": pa.array(starts),
        "end_s": pa.array(ends),
        "vector": frames.flatten(),
    }
    return pa.Table.from_arrays(
        [columns[name].cast(schema.field(name).type) for name in schema.names], schema=schema
    )


def _flat(column: pa.ChunkedArray) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False)


class LanceVectorSearch:
    """The search half of a :class:`~earmark.store.lance.LanceStore` (see module doc)."""

    def __init__(self, store, settings: IndexSettings) -> None:
        self.store = store
        self.settings = settings
        # table name -> table version at which its index was last checked
        self._index_checked: dict[str, int] = {}
        self._synced: dict[str, int] = {}

    # ----------------------------------------------------------------- tables
    def table(self, backend_key: str, level: str, *, sync: bool = True):
        """The table searched at ``level`` (segments synced first), or None."""
        embeddings = self.store._embedding_table(backend_key)
        if embeddings is None or level == "clip":
            return embeddings
        if not sync:
            return self.store._open(SEGMENT_PREFIX + backend_key)
        # One sync at a time per process (the app serves searches from several threads);
        # between processes, merge_insert on the primary key keeps rows single.
        with self.store._lock:
            return self._sync_segments(backend_key, embeddings)

    def _marker(self, backend_key: str) -> Path:
        return self.store.directory / f"{SEGMENT_PREFIX}{backend_key}.sync.json"

    def _read_marker(self, backend_key: str) -> int | None:
        try:
            return int(json.loads(self._marker(backend_key).read_text())["embeddings_version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_marker(self, backend_key: str, version: int) -> None:
        target = self._marker(backend_key)
        handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump({"embeddings_version": version}, out)
        os.replace(temporary, target)  # atomic: a reader never sees half a marker

    def _sync_segments(self, backend_key: str, embeddings):
        store = self.store
        name = SEGMENT_PREFIX + backend_key
        dimension = embeddings.schema.field("vector").type.list_size
        version = embeddings.version
        segments = store._open(name)
        if segments is not None and version in (
            self._synced.get(backend_key),
            self._read_marker(backend_key),
        ):
            self._synced[backend_key] = version
            return segments
        if segments is None:
            segments = store._open(name, segment_schema(dimension, backend_key=backend_key))
        with_frames = (
            embeddings.search().where("frame_start_s IS NOT NULL").select(["key"]).limit(None)
        )
        wanted = with_frames.to_arrow().column("key")
        have = segments.search().select(["key"]).limit(None).to_arrow().column("key")
        new = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=pc.unique(have))))
        new = new.to_pylist()
        columns = ["key", "path", "start_s", "frames", "frame_start_s", "frame_end_s"]
        schema = segments.schema
        for start in range(0, len(new), _SYNC_BATCH):
            rows = store._select(embeddings, new[start : start + _SYNC_BATCH], columns, None)
            data = segment_rows(rows, schema)
            if data.num_rows:
                segments.merge_insert("id").when_not_matched_insert_all().execute(data)
        self._write_marker(backend_key, version)
        self._synced[backend_key] = version
        return segments

    # ------------------------------------------------------------------ index
    def _vector_indices(self, table) -> list:
        return [index for index in table.list_indices() if list(index.columns) == ["vector"]]

    def ensure_index(self, table, *, replace: bool = False) -> bool:
        """Train the index if the table is large enough and has none (or ``replace``);
        fold new rows in once they are many. Returns whether an index was trained."""
        version = table.version
        if not replace and self._index_checked.get(table.name) == version:
            return False
        with self.store._lock:
            return self._ensure_index(table, replace=replace)

    def _ensure_index(self, table, *, replace: bool) -> bool:
        settings = self.settings
        indices = self._vector_indices(table)
        trained = False
        if replace or not indices:
            # PQ learns 256 codes per sub-vector: it needs that many rows to train.
            least = 256 if settings.index_type == "IVF_PQ" else 1
            if table.count_rows() >= max(settings.min_rows, least) or (replace and indices):
                table.create_index("vector", config=settings.index_config(), replace=True)
                trained = True
        else:
            stats = table.index_stats(indices[0].name)
            if stats is not None and stats.num_unindexed_rows > max(
                settings.min_rows * settings.max_unindexed_fraction,
                settings.max_unindexed_fraction * stats.num_indexed_rows,
            ):
                table.optimize()
        self._index_checked[table.name] = table.version
        return trained

    # ----------------------------------------------------------------- search
    def search(
        self, table, query: np.ndarray, *, k: int, level: str, exact: bool
    ) -> list[SearchHit]:
        columns = ["key", "path", "start_s", "end_s"] + (["frame"] if level == "segment" else [])
        builder = (
            table.search(query, vector_column_name="vector")
            .distance_type("cosine")
            .select(columns + ["_distance"])
            .limit(k)
        )
        if exact:
            builder = builder.bypass_vector_index()
        else:
            self.ensure_index(table)
            settings = self.settings
            builder = builder.nprobes(settings.nprobes)
            # IVF_FLAT distances are exact already: re-ranking would only re-read vectors.
            if settings.refine_factor and settings.index_type != "IVF_FLAT":
                builder = builder.refine_factor(settings.refine_factor)
            if settings.ef:
                builder = builder.ef(settings.ef)
        result = builder.to_arrow()
        keys = result.column("key").to_pylist()
        paths = result.column("path").to_pylist()
        starts = result.column("start_s").to_pylist()
        ends = result.column("end_s").to_pylist()
        distances = result.column("_distance").to_numpy()
        frames = result.column("frame").to_pylist() if level == "segment" else [None] * len(keys)
        hits = [
            SearchHit(key=key, path=path, start_s=start, end_s=end, distance=float(d), frame=f)
            for key, path, start, end, d, f in zip(keys, paths, starts, ends, distances, frames)
        ]
        # LanceDB returns distance order; ties are put in key order, as exact search does.
        return sorted(hits, key=lambda hit: (hit.distance, hit.key, hit.frame or 0))
