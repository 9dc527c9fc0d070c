"""Records to Arrow and back: the columns an embedding is stored in.

Each embedding is one row of its backend configuration's table:

==================  ======================================  ==========================
column              type                                    note
==================  ======================================  ==========================
key                 string, not null, primary key           :func:`embedding_key`
content_sha256      string
path                string                                  first file with these bytes
start_s, end_s      float64, null = start / end of file
duration_s          float64
backend             string                                  name
backend_version     string
weights_sha256      string
params              string                                  JSON, sorted keys
n_frames            int32                                   frames the backend made
vector              fixed_size_list<float32>[dim]           clip embedding, indexable
frames              list<fixed_size_list<float32>[dim]>     null when stored without
frame_start_s       list<float64>                           seconds from start_s
frame_end_s         list<float64>
created_at          timestamp[us, UTC]
==================  ======================================  ==========================

``vector`` is the column a LanceDB vector index goes on; ``frames`` is Arrow's nested
list of fixed-size lists, LanceDB's multivector type, so segment search can index it
later. Both turn into NumPy arrays in one step per column, where a bytes blob would
need parsing row by row.
"""

from __future__ import annotations

import json
from datetime import timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import StoredEmbedding

__all__ = ["embedding_schema", "records_to_arrow", "records_from_arrow", "PRIMARY_KEY"]

SCHEMA_VERSION = "1"
#: Lance's field metadata for an unenforced primary key (what set_unenforced_primary_key
#: writes); put in the schema at creation so no writer ever sees the table without it.
PRIMARY_KEY = {b"lance-schema:unenforced-primary-key:position": b"1"}

META_COLUMNS = [
    "key", "content_sha256", "path", "start_s", "end_s", "duration_s", "backend",
    "backend_version", "weights_sha256", "params", "n_frames", "vector", "created_at",
]  # fmt: skip
FRAME_COLUMNS = ["frames", "frame_start_s", "frame_end_s"]


def embedding_schema(dimension: int, *, backend_key: str, backend: str) -> pa.Schema:
    """Arrow schema of one backend configuration's table (see module docstring)."""
    vector = pa.list_(pa.float32(), dimension)
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False, metadata=PRIMARY_KEY),
            pa.field("content_sha256", pa.string()),
            pa.field("path", pa.string()),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),
            pa.field("duration_s", pa.float64()),
            pa.field("backend", pa.string()),
            pa.field("backend_version", pa.string()),
            pa.field("weights_sha256", pa.string()),
            pa.field("params", pa.string()),
            pa.field("n_frames", pa.int32()),
            pa.field("vector", vector),
            pa.field("frames", pa.list_(vector)),
            pa.field("frame_start_s", pa.list_(pa.float64())),
            pa.field("frame_end_s", pa.list_(pa.float64())),
            pa.field("created_at", pa.timestamp("us", tz="UTC")),
        ],
        metadata={
            "earmark.schema_version": SCHEMA_VERSION,
            "earmark.backend_key": backend_key,
            "earmark.backend": backend,
            "earmark.dimension": str(dimension),
        },
    )


def _nested(arrays: list[np.ndarray | None], values: pa.Array, counts: np.ndarray) -> pa.Array:
    """A list column from per-row arrays; a ``None`` row becomes a null list."""
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    mask = pa.array([array is None for array in arrays])
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)


def records_to_arrow(records: list[StoredEmbedding], schema: pa.Schema, dimension: int) -> pa.Table:
    stored = [record.X for record in records]
    counts = np.array([0 if X is None else X.shape[0] for X in stored], dtype=np.int64)
    present = [X for X in stored if X is not None]
    flat = (
        np.concatenate(present).astype(np.float32, copy=False).ravel()
        if present
        else np.zeros(0, dtype=np.float32)
    )
    frames = pa.FixedSizeListArray.from_arrays(pa.array(flat), dimension)

    def times(name: str) -> pa.Array:
        per_row = [getattr(record, name) for record in records]
        kept = [np.asarray(t, dtype=np.float64) for t in per_row if t is not None]
        values = pa.array(np.concatenate(kept) if kept else np.zeros(0, dtype=np.float64))
        return _nested(per_row, values, counts)

    clips = np.stack([record.clip for record in records]).astype(np.float32, copy=False)
    columns = {
        "key": pa.array([r.key for r in records], pa.string()),
        "content_sha256": pa.array([r.content_sha256 for r in records], pa.string()),
        "path": pa.array([r.path for r in records], pa.string()),
        "start_s": pa.array([r.start_s for r in records], pa.float64()),
        "end_s": pa.array([r.end_s for r in records], pa.float64()),
        "duration_s": pa.array([r.duration_s for r in records], pa.float64()),
        "backend": pa.array([r.backend for r in records], pa.string()),
        "backend_version": pa.array([r.backend_version for r in records], pa.string()),
        "weights_sha256": pa.array([r.weights_sha256 for r in records], pa.string()),
        "params": pa.array(
            [json.dumps(r.params, sort_keys=True, default=str) for r in records], pa.string()
        ),
        "n_frames": pa.array([r.n_frames for r in records], pa.int32()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(clips.ravel()), dimension),
        "frames": _nested(stored, frames, counts),
        "frame_start_s": times("frame_start_s"),
        "frame_end_s": times("frame_end_s"),
        "created_at": pa.array(
            [r.created_at.astimezone(timezone.utc) for r in records],
            pa.timestamp("us", tz="UTC"),
        ),
    }
    return pa.Table.from_arrays(
        [columns[name].cast(schema.field(name).type) for name in schema.names], schema=schema
    )


def _split(column: pa.ChunkedArray, width: int | None) -> list[np.ndarray | None]:
    """Per-row numpy arrays from a list column (rows of shape (n, width) if width)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return []
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy()
    values = array.flatten()
    if width is not None:
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False)
    if width is not None:
        flat = flat.reshape(-1, width)
    pieces = np.split(flat, np.cumsum(lengths)[:-1])
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    return [None if null else piece.copy() for null, piece in zip(nulls, pieces)]


def records_from_arrow(table: pa.Table, backend_key: str, with_frames: bool) -> list[StoredEmbedding]:
    n = table.num_rows
    if n == 0:
        return []
    dimension = table.schema.field("vector").type.list_size
    vector = table.column("vector").combine_chunks()
    clips = vector.flatten().to_numpy().reshape(n, dimension)
    plain = {
        name: table.column(name).to_pylist()
        for name in META_COLUMNS
        if name not in ("vector", "created_at")
    }
    created = table.column("created_at").to_pylist()
    if with_frames:
        X = _split(table.column("frames"), dimension)
        starts = _split(table.column("frame_start_s"), None)
        ends = _split(table.column("frame_end_s"), None)
    else:
        X = starts = ends = [None] * n
    return [
        StoredEmbedding(
            key=plain["key"][i],
            backend_key=backend_key,
            content_sha256=plain["content_sha256"][i],
            path=plain["path"][i],
            start_s=plain["start_s"][i],
            end_s=plain["end_s"][i],
            duration_s=plain["duration_s"][i],
            backend=plain["backend"][i],
            backend_version=plain["backend_version"][i],
            weights_sha256=plain["weights_sha256"][i],
            params=json.loads(plain["params"][i]),
            clip=clips[i].copy(),
            X=X[i],
            frame_start_s=starts[i],
            frame_end_s=ends[i],
            n_frames=int(plain["n_frames"][i]),
            created_at=created[i],
        )
        for i in range(n)
    ]
