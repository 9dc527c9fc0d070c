"""Clip matrices and frame bags: what learners read, from the store or straight from files."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..embedding import embed_file
from ..exceptions import EarmarkError
from ..store.base import EmbeddingStore
from ._results import EmbedRun
from ._run import embed_manifest

__all__ = ["clip_embeddings", "frame_bags"]


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
        from ..store import open_store

        store = open_store()
    run = embed_manifest(manifest, backend, store, **kwargs)
    if not run.ok_keys:
        return np.zeros((0, backend.dimension), dtype=np.float32), run.ok_mask, run
    return run.clip_matrix(store), run.ok_mask, run


def frame_bags(paths, backend: Backend) -> tuple[list[np.ndarray], np.ndarray, Any]:
    """Frame embeddings of each file, for a frame (MIL) model; bad files are skipped.

    Not cached: a frame model's files are embedded whole, in process.

    Parameters
    ----------
    paths : list of str
    backend : Backend

    Returns
    -------
    bags : list of np.ndarray [shape=(n_frames, dimension)]
        One per readable file, in order.
    ok : np.ndarray [shape=(len(paths),), dtype=bool]
    reasons : iterator of str
        Why each skipped file failed, in order of the skipped files.
    """
    bags, ok, reasons = [], [], []
    for path in paths:
        try:
            X = embed_file(backend, path).X
            if len(X) == 0:
                raise EarmarkError(f"{path}: too short for one {backend.name} frame")
        except EarmarkError as error:  # AudioError, or a backend failing on the file
            ok.append(False)
            reasons.append(str(error).removeprefix(f"{path}: "))
            continue
        bags.append(X)
        ok.append(True)
    return bags, np.array(ok, dtype=bool), iter(reasons)
