"""The clips of one backend's table, in memory: what the labelling loop browses.

The store answers questions by key; the labelling loop asks about *every* clip (rank
them all by uncertainty, list the files to pick an example from), so it reads one
backend table's clip vectors and spans once, here, and works on the matrix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ParameterError, StoreError

__all__ = ["Collection", "load_collection", "only_backend_key"]


@dataclass(frozen=True)
class Collection:
    """Clip vectors and where each clip is, for one backend configuration.

    Attributes
    ----------
    backend_key : str
        The store table read.
    keys : list of str
        Embedding keys, in the order of ``X``'s rows.
    paths : list of str
        Each clip's file.
    start_s, end_s : np.ndarray [shape=(n,), dtype=float64]
        Each clip's span in its file; NaN for the start or end of the file.
    duration_s : np.ndarray [shape=(n,), dtype=float64]
    X : np.ndarray [shape=(n, dimension), dtype=float32]
        Clip embeddings.
    backend, params : str, dict
        The backend's name and parameters, as the store records them.

    Examples
    --------
    >>> clips = Collection(
    ...     "k", ["a" * 32, "b" * 32], ["rec/Dog.wav", "rec/cat.wav"], np.array([0.0, np.nan]),
    ...     np.array([2.0, np.nan]), np.array([2.0, 3.5]), np.eye(2, dtype=np.float32))
    >>> [clips.clip(row)["name"] for row in clips.find("dog")]
    ['Dog.wav']
    >>> clips.clip(1)["start_s"] is None, clips.index_of("b" * 32)
    (True, 1)
    """

    backend_key: str
    keys: list[str]
    paths: list[str]
    start_s: np.ndarray
    end_s: np.ndarray
    duration_s: np.ndarray
    X: np.ndarray = field(repr=False)
    backend: str = ""
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def index_of(self, key: str) -> int | None:
        """Row of ``key``, or ``None`` if the collection does not hold it."""
        return self._rows.get(key)

    @property
    def _rows(self) -> dict[str, int]:
        rows = self.__dict__.get("_row_cache")
        if rows is None:
            rows = {key: row for row, key in enumerate(self.keys)}
            object.__setattr__(self, "_row_cache", rows)
        return rows

    def clip(self, row: int) -> dict:
        """One clip's key, file, name and span, JSON-ready."""
        start, end = self.start_s[row], self.end_s[row]
        return {
            "key": self.keys[row],
            "path": self.paths[row],
            "name": os.path.basename(self.paths[row]),
            "start_s": None if np.isnan(start) else float(start),
            "end_s": None if np.isnan(end) else float(end),
            "duration_s": float(self.duration_s[row]),
        }

    def find(self, text: str = "", *, limit: int = 50) -> list[int]:
        """Rows whose file path contains ``text`` (case-insensitive), in path order.

        Returns
        -------
        rows : list of int
            At most ``limit``.
        """
        needle = text.casefold()
        order = sorted(range(len(self)), key=lambda row: (self.paths[row], self.start_s[row]))
        found = [row for row in order if needle in self.paths[row].casefold()]
        return found[: max(int(limit), 0)]


def only_backend_key(store) -> str:
    """The store's backend configuration when it holds exactly one.

    Raises
    ------
    ParameterError
        If it holds none or several (then the caller must choose).
    """
    keys = store.backend_keys()
    if len(keys) != 1:
        raise ParameterError(
            f"the store at {getattr(store, 'directory', store)} holds embeddings of "
            f"{len(keys)} backend configurations ({', '.join(keys) or 'none'}); "
            "expected exactly one, or choose one with --backend"
        )
    return keys[0]


def load_collection(store, backend_key: str) -> Collection:
    """Read every clip vector of one backend's table.

    Parameters
    ----------
    store : EmbeddingStore
    backend_key : str
        :meth:`Backend.cache_key` of the table to read.

    Returns
    -------
    Collection

    Raises
    ------
    StoreError
        If the store holds no clip of that backend configuration.
    """
    keys, paths, starts, ends, durations, vectors = [], [], [], [], [], []
    backend, params = "", {}
    for record in store.iter_records(backend_key, with_frames=False):
        keys.append(record.key)
        paths.append(record.path)
        starts.append(np.nan if record.start_s is None else record.start_s)
        ends.append(np.nan if record.end_s is None else record.end_s)
        durations.append(record.duration_s)
        vectors.append(record.clip)
        backend, params = record.backend, record.params
    if not keys:
        raise StoreError(
            f"the store at {getattr(store, 'directory', store)} holds no clip embedded with "
            f"backend configuration {backend_key}"
        )
    return Collection(
        backend_key=backend_key,
        keys=keys,
        paths=paths,
        start_s=np.asarray(starts, dtype=np.float64),
        end_s=np.asarray(ends, dtype=np.float64),
        duration_s=np.asarray(durations, dtype=np.float64),
        X=np.stack(vectors).astype(np.float32, copy=False),
        backend=backend,
        params=params,
    )
