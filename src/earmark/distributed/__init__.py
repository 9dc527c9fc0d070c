"""Scale-out on Dask: the same embedding and detection tasks, on a cluster.

The task definition, the in-process executor and the run itself live in
:mod:`earmark.pipeline`; this package holds only the Dask parts, and importing it does
not import Dask (:func:`open_client` and :class:`DaskExecutor` do, when called). Workers
load their backend once (:class:`~earmark.distributed.worker.BackendPlugin`, rebuilt
from a :class:`BackendRecipe` through the backend registry), failures are per file, a
lost worker's tasks are rerun elsewhere, and an interrupted run resumes from the store.

Examples
--------
>>> from earmark.backends import get_backend
>>> from earmark.distributed import open_client
>>> from earmark.pipeline import embed_manifest
>>> with open_client(n_workers=2) as client:  # doctest: +SKIP
...     run = embed_manifest(paths, get_backend("birdnet"), client=client)
"""

from __future__ import annotations

from .cluster import local_cluster, open_client
from .executors import DaskExecutor
from .recipe import BackendRecipe, borrowed_backend, loaded_backends

__all__ = [
    "BackendRecipe",
    "DaskExecutor",
    "borrowed_backend",
    "loaded_backends",
    "local_cluster",
    "open_client",
]
