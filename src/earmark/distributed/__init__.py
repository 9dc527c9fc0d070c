"""Embedding and detection over whole archives, here or on a Dask cluster.

One task definition serves both: :func:`~earmark.distributed.tasks.embed_task` embeds a
file (or a block of a long one) with a loaded backend and returns what the store needs;
an executor runs such tasks in this process (:class:`LocalExecutor`, the default) or on
Dask workers (:class:`DaskExecutor`), and :func:`earmark.pipeline.embed_manifest` writes
their outcomes to the store in batches as they finish, from this process only. Workers
load their backend once (:class:`~earmark.distributed.worker.BackendPlugin`), failures are
per file, a lost worker's tasks are rerun elsewhere, and an interrupted run resumes
from the store.

Importing this package does not import Dask; :func:`open_client` and
:class:`DaskExecutor` do, when called.

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
from .executors import DaskExecutor, LocalExecutor, WorkerLost, make_executor
from .progress import EmbedReporter, duration_text
from .recipe import BackendRecipe, borrowed_backend, loaded_backends
from .tasks import BlockPart, EmbedOutcome, EmbedTask, assemble_blocks, embed_task, plan_blocks

__all__ = [
    "BackendRecipe",
    "BlockPart",
    "DaskExecutor",
    "EmbedOutcome",
    "EmbedReporter",
    "EmbedTask",
    "LocalExecutor",
    "WorkerLost",
    "assemble_blocks",
    "borrowed_backend",
    "duration_text",
    "embed_task",
    "loaded_backends",
    "local_cluster",
    "make_executor",
    "open_client",
    "plan_blocks",
]
