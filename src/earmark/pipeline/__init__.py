"""Embed many files into the store, resumably, reusing everything already cached.

:func:`embed_manifest` hashes each file's content (memoised by path, checked against a
signature: size, times, inode and a hash of both ends; see
:meth:`~earmark.store.base.EmbeddingStore.content_hash`),
derives the key (:func:`~earmark.store.keys.embedding_key`), skips keys the store holds,
embeds the rest and writes them every ``write_batch`` records. A run killed halfway
loses at most one unwritten batch; run again, it embeds only what is missing, and the
store's idempotent writes keep exactly one row per key. Two files with the same bytes
are embedded once.

A bad file (empty, truncated, not audio, NaN or inf samples, zero length) does not
stop the run: it is reported by name, counted, and listed in :attr:`EmbedRun.failures`.

The run is made of separate pieces: planning (``_plan``), the task every executor runs
(:mod:`.tasks`), the in-process executor (:mod:`.executors`; the Dask one lives in
:mod:`earmark.distributed` and is imported only when a cluster is used), record writing
(``_writer``) and reporting (:mod:`.progress`).
"""

from ._clips import clip_embeddings, frame_bags
from ._plan import EmbedPlan, as_items, plan_run
from ._results import EmbedFailure, EmbedProgress, EmbedRun
from ._run import CLUSTER_BLOCK_S, embed_manifest
from ._writer import COMPACT_AFTER_WRITES, RecordWriter
from .executors import LocalExecutor, WorkerLost, make_executor
from .progress import EmbedReporter, duration_text
from .tasks import BlockPart, EmbedOutcome, EmbedTask, assemble_blocks, embed_task, plan_blocks

__all__ = [
    "BlockPart", "CLUSTER_BLOCK_S", "COMPACT_AFTER_WRITES", "EmbedFailure", "EmbedOutcome",
    "EmbedPlan", "EmbedProgress", "EmbedReporter", "EmbedRun", "EmbedTask", "LocalExecutor",
    "RecordWriter", "WorkerLost", "as_items", "assemble_blocks", "clip_embeddings",
    "duration_text", "embed_manifest", "embed_task", "frame_bags", "make_executor",
    "plan_blocks", "plan_run",
]
