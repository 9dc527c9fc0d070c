"""Vector search over a store: what a hit is, and exact cosine search in NumPy.

Two levels are searched. ``"clip"`` searches the pooled clip vector of every stored
record (one per file or span); ``"segment"`` searches every frame vector of the records
stored with frames, each with its own span in the file. Distances are cosine distances,
``1 - cos(query, vector)`` in ``[0, 2]``, so a vector's distance to itself is 0 whatever
its length.

The exact search here is the reference every store must agree with; stores with a
vector index (:class:`~earmark.store.lance.LanceStore`) answer approximately and faster,
and ``exact=True`` asks them for this answer instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..exceptions import ParameterError, StoreError

__all__ = ["SearchHit", "VectorRows", "LEVELS", "check_level", "check_query", "exact_search"]

LEVELS = ("clip", "segment")
#: Rows scored at once by :func:`exact_search`: bounds memory, not the answer.
_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class SearchHit:
    """One answer of a vector search.

    Attributes
    ----------
    key : str
        The stored record's :func:`~earmark.store.keys.embedding_key`.
    path : str
        The audio file the record was embedded from.
    start_s, end_s : float or None
        The span of the file the hit stands for, in seconds from the start of the file.
        A clip hit has the record's span (``None`` for the start or end of the file); a
        segment hit has its frame's span, never ``None``.
    distance : float
        Cosine distance to the query, ``1 - cos`` in ``[0, 2]``.
    frame : int or None
        Index of the frame within the record for a segment hit; ``None`` for a clip hit.
    """

    key: str
    path: str
    start_s: float | None
    end_s: float | None
    distance: float
    frame: int | None = None


@dataclass
class VectorRows:
    """Searchable vectors with what each one stands for, row by row.

    Attributes
    ----------
    X : np.ndarray [shape=(n, dimension), dtype=float32]
    keys, paths : list of str [length n]
    start_s, end_s : np.ndarray [shape=(n,), dtype=float64]
        Spans in the file; NaN where the span is open (a clip of the whole file).
    frames : np.ndarray [shape=(n,), dtype=int64]
        Frame index within the record; -1 for clip rows.
    """

    X: np.ndarray
    keys: list[str]
    paths: list[str]
    start_s: np.ndarray
    end_s: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_records(cls, records: Iterable, *, level: str) -> "VectorRows":
        """Clip rows (one per record) or segment rows (one per stored frame).

        Segment spans are made absolute: the record's ``start_s`` (0 for ``None``) plus
        the frame's offset. Records stored without frames have no segment rows.
        """
        level = check_level(level)
        vectors, keys, paths, starts, ends, frames = [], [], [], [], [], []
        for record in records:
            if level == "clip":
                vectors.append(record.clip[None, :])
                keys.append(record.key)
                paths.append(record.path)
                starts.append([np.nan if record.start_s is None else record.start_s])
                ends.append([np.nan if record.end_s is None else record.end_s])
                frames.append([-1])
            elif record.X is not None and record.X.shape[0]:
                offset = record.start_s or 0.0
                n = record.X.shape[0]
                vectors.append(record.X)
                keys += [record.key] * n
                paths += [record.path] * n
                starts.append(offset + np.asarray(record.frame_start_s, dtype=np.float64))
                ends.append(offset + np.asarray(record.frame_end_s, dtype=np.float64))
                frames.append(np.arange(n))
        if not vectors:
            return cls(
                X=np.zeros((0, 0), dtype=np.float32), keys=[], paths=[],
                start_s=np.zeros(0), end_s=np.zeros(0), frames=np.zeros(0, dtype=np.int64),
            )  # fmt: skip
        return cls(
            X=np.concatenate(vectors).astype(np.float32, copy=False),
            keys=keys,
            paths=paths,
            start_s=np.concatenate(starts).astype(np.float64),
            end_s=np.concatenate(ends).astype(np.float64),
            frames=np.concatenate(frames).astype(np.int64),
        )

    def hit(self, row: int, distance: float) -> SearchHit:
        start, end, frame = self.start_s[row], self.end_s[row], int(self.frames[row])
        return SearchHit(
            key=self.keys[row],
            path=self.paths[row],
            start_s=None if np.isnan(start) else float(start),
            end_s=None if np.isnan(end) else float(end),
            distance=float(distance),
            frame=None if frame < 0 else frame,
        )


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ParameterError(f"expected level 'clip' or 'segment', got {level!r}")
    return level


def check_query(query, dimension: int | None = None, *, k: int = 1) -> np.ndarray:
    """The query as a finite, non-zero float32 vector of the table's dimension.

    Raises
    ------
    ParameterError
        Naming what was expected and what came.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"expected k >= 1, got {k!r}")
    vector = np.asarray(query, dtype=np.float32)
    if vector.ndim != 1 or vector.shape[0] == 0:
        raise ParameterError(f"expected a query of shape (dimension,), got {vector.shape}")
    if dimension is not None and vector.shape[0] != dimension:
        raise ParameterError(
            f"expected a query of dimension {dimension} (the stored embeddings'), "
            f"got {vector.shape[0]}"
        )
    if not np.isfinite(vector).all():
        raise ParameterError("the query vector holds NaN or inf")
    if not np.any(vector):
        raise ParameterError("the query vector is all zeros: cosine distance is undefined")
    return vector


def no_vectors(backend_key: str, level: str, known: list[str]) -> StoreError:
    """The error for a search of a backend the store has nothing of, at ``level``."""
    if backend_key not in known:
        stored = ", ".join(sorted(known)) or "none"
        return StoreError(
            f"no embeddings of backend configuration {backend_key} in the store "
            f"(stored: {stored})"
        )
    return StoreError(
        f"backend configuration {backend_key}: no record was stored with frame "
        f"embeddings, so there are no segments to search"
    )


def exact_search(query: np.ndarray, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` rows of ``X`` by cosine distance to ``query``.

    Parameters
    ----------
    query : np.ndarray [shape=(dimension,)]
    X : np.ndarray [shape=(n, dimension)]
    k : int

    Returns
    -------
    rows : np.ndarray [shape=(min(k, n),), dtype=int64]
        Ascending distance; ties by row order.
    distances : np.ndarray [shape=(min(k, n),), dtype=float64]
        ``1 - cos``; a zero row is at distance 1 (orthogonal to everything).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=np.float32)
    >>> rows, distances = exact_search(np.array([0.0, 1.0]), X, 2)
    >>> rows.tolist(), np.round(distances, 4).tolist()
    ([1, 2], [0.0, 0.2929])
    """
    query = np.asarray(query, dtype=np.float64)
    query = query / np.linalg.norm(query)
    n = X.shape[0]
    distances = np.empty(n, dtype=np.float64)
    for start in range(0, n, _BLOCK_ROWS):
        block = np.asarray(X[start : start + _BLOCK_ROWS], dtype=np.float64)
        norms = np.linalg.norm(block, axis=1)
        similarity = block @ query / np.where(norms > 0, norms, 1.0)
        distances[start : start + block.shape[0]] = 1.0 - similarity
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    candidates = np.argpartition(distances, k - 1)[:k] if k < n else np.arange(n)
    order = np.lexsort((candidates, distances[candidates]))
    rows = candidates[order].astype(np.int64)
    return rows, distances[rows]
