"""The unit of embedding work, the same in this process and on a Dask worker.

:func:`embed_task` embeds one :class:`EmbedTask` with a loaded backend and returns an
:class:`EmbedOutcome`: a record ready for the store, or the reason the file failed. It
never writes anything; the client writes outcomes in batches as they come back, so the
store has one writer however many workers there are, and a task that runs twice (its
worker died after finishing) costs time, not a second row.

A long file becomes several block tasks (:func:`plan_blocks`) so that workers share it.
Blocks are cut on the backend's frame grid, each starting early enough that its first
kept frame sees the lead and real audio exactly as in the whole file, and
:func:`assemble_blocks` joins their frames into the one record of the whole file, under
the whole file's key, with timestamps from integer sample arithmetic. When the file's
rate is the backend's, the frames are bit-identical to :func:`~earmark.embedding.embed_file`;
otherwise each block is resampled on its own and the frames touching a seam differ by the
resampler's edge effect (a few frames per seam; MFCC clip vectors of a 35 s file in 5 s
blocks moved by under 1e-4 of their largest value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..embedding import FrameEmbeddings, embed_file, frame_times, n_frames, stream_file
from ..exceptions import AudioError, BackendUnavailableError, StoreError
from ..store.base import StoredEmbedding

__all__ = [
    "BlockPart",
    "EmbedTask",
    "EmbedOutcome",
    "embed_task",
    "plan_blocks",
    "assemble_blocks",
]


@dataclass(frozen=True)
class BlockPart:
    """Where a block task sits in its file.

    Attributes
    ----------
    number, of : int
        This block's index and the file's number of blocks.
    first_frame : int
        Index, in the whole file's frames, of the block's first kept frame.
    n_frames : int or None
        Frames to keep (``None``: all that remain, for the last block).
    skip : int
        Frames computed at the start of the block only to give the first kept frame
        its context, then dropped.
    """

    number: int
    of: int
    first_frame: int
    n_frames: int | None
    skip: int


@dataclass(frozen=True)
class EmbedTask:
    """One file (or a span of it, or a block of a long one) to embed.

    ``key`` is the store key of the item the task belongs to; block tasks of one file
    share it and differ in ``part``. ``start_s``/``end_s`` is the span to read.
    """

    key: str
    path: str
    start_s: float | None
    end_s: float | None
    content_sha256: str
    part: BlockPart | None = None

    @property
    def name(self) -> str:
        """A readable, unique name (a Dask task key prefix)."""
        return self.key if self.part is None else f"{self.key}-{self.part.number}"


@dataclass
class EmbedOutcome:
    """What a task gives back.

    Attributes
    ----------
    task : EmbedTask
    record : StoredEmbedding or None
        For a whole-file task that succeeded.
    X : np.ndarray [shape=(n_frames, dimension), dtype=float32] or None
        For a block task that succeeded: its kept frames.
    audio_s : float
        Seconds of audio this task embedded.
    reason : str or None
        Why the file failed, without its path.
    """

    task: EmbedTask
    record: StoredEmbedding | None = None
    X: np.ndarray | None = None
    audio_s: float = 0.0
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None


def embed_task(
    backend, task: EmbedTask, *, with_frames: bool = True, embed_file=embed_file
) -> EmbedOutcome:
    """Embed one task with a loaded backend; a bad file is an outcome, not an error.

    Parameters
    ----------
    backend : Backend
    task : EmbedTask
    with_frames : bool
        Keep the frame embeddings in the record.
    embed_file : callable
        :func:`earmark.embedding.embed_file`, or a wrapper of it with the same
        signature (to count or time what reaches the backend).

    Returns
    -------
    EmbedOutcome

    Raises
    ------
    BackendUnavailableError
        If the backend cannot run at all: every file would fail alike.
    """
    try:
        if task.part is None:
            frames = embed_file(backend, task.path, start_s=task.start_s, end_s=task.end_s)
            record = StoredEmbedding.from_embeddings(
                frames,
                key=task.key,
                backend=backend,
                content_sha256=task.content_sha256,
                path=task.path,
                start_s=task.start_s,
                end_s=task.end_s,
                with_frames=with_frames,
            )
            return EmbedOutcome(task, record=record, audio_s=record.duration_s)
        stream = stream_file(backend, task.path, start_s=task.start_s, end_s=task.end_s)
        X = np.concatenate([batch.X for batch in stream])
        part = task.part
        stop = None if part.n_frames is None else part.skip + part.n_frames
        X = np.ascontiguousarray(X[part.skip : stop], dtype=np.float32)
        if not np.isfinite(X).all():
            return EmbedOutcome(task, reason="the frame embeddings hold NaN or inf")
        return EmbedOutcome(task, X=X, audio_s=X.shape[0] * backend.hop_s)
    except BackendUnavailableError:
        raise
    except AudioError as error:
        return EmbedOutcome(task, reason=error.reason)
    except StoreError as error:  # e.g. NaN from the model, for this file
        return EmbedOutcome(task, reason=str(error).removeprefix(f"{task.path}: "))
    except Exception as error:  # one file's fault must not end the run
        return EmbedOutcome(task, reason=f"{type(error).__name__}: {error}")


def plan_blocks(
    backend,
    *,
    key: str,
    path: str,
    content_sha256: str,
    start_s: float | None,
    end_s: float | None,
    n_samples: int,
    block_s: float | None,
) -> list[EmbedTask]:
    """Tasks for one item: one task, or blocks of about ``block_s`` seconds.

    Parameters
    ----------
    backend : Backend
        Its frame grid (``window_samples``, ``hop_samples``, ``lead_samples``) places the
        cuts; it need not be loaded.
    n_samples : int
        Length of the item's span at the backend's rate
        (:func:`earmark.audio.n_samples_at`).
    block_s : float or None
        ``None`` (or a span shorter than 1.5 blocks) gives one task.

    Returns
    -------
    list of EmbedTask
    """
    whole = [EmbedTask(key, path, start_s, end_s, content_sha256)]
    sr, hop = backend.sample_rate, backend.hop_samples
    window, lead = backend.window_samples, backend.lead_samples
    if block_s is None or n_samples < 1.5 * block_s * sr:
        return whole
    total = n_frames(n_samples, window_samples=window, hop_samples=hop, lead_samples=lead)
    # A block starts `context` frames early, so that its first kept frame's window lies
    # wholly in real audio (after the lead zeros the stream puts before any span).
    context = -(-lead // hop)
    per_block = max(int(round(block_s * sr / hop)), context + 1)
    firsts = list(range(0, total, per_block))
    if len(firsts) < 2:
        return whole
    offset = start_s or 0.0
    tasks = []
    for number, first in enumerate(firsts):
        last_block = number == len(firsts) - 1
        skip = 0 if first == 0 else context
        begin = (first - skip) * hop
        if last_block:
            block_end, kept = end_s, None
        else:
            stop = first + per_block
            # A few samples past the last kept window: rounding the end to the file's
            # own rate must not shave the window's last sample (a frame computed from
            # the margin is dropped).
            margin = min(hop, 64)
            block_end = offset + ((stop - 1) * hop - lead + window + margin) / sr
            kept = stop - first
        part = BlockPart(number, len(firsts), first, kept, skip)
        block_start = offset + begin / sr if begin else start_s
        tasks.append(EmbedTask(key, path, block_start, block_end, content_sha256, part))
    return tasks


def assemble_blocks(
    backend,
    outcomes: Sequence[EmbedOutcome],
    *,
    n_samples: int,
    with_frames: bool = True,
) -> StoredEmbedding:
    """The whole file's record from its block outcomes (any order).

    Parameters
    ----------
    backend : Backend
        The client's backend: its identity is recorded and its pooling applied.
    outcomes : sequence of EmbedOutcome
        One successful outcome per block of one item.
    n_samples : int
        The item's length at the backend's rate, which clips the last frame's end.

    Returns
    -------
    StoredEmbedding

    Raises
    ------
    StoreError
        If the record is not valid.
    """
    ordered = sorted(outcomes, key=lambda outcome: outcome.task.part.number)
    task = ordered[0].task
    X = np.concatenate([outcome.X for outcome in ordered])
    start_s, end_s = frame_times(backend, 0, X.shape[0], n_samples)
    frames = FrameEmbeddings(
        X=X,
        start_s=start_s,
        end_s=end_s,
        duration_s=n_samples / backend.sample_rate,
        clip=backend.pool(X),
    )
    whole_start = task.start_s if task.part.number == 0 else None
    # Block 0 reads from the item's own start; the last block reads to its own end.
    return StoredEmbedding.from_embeddings(
        frames,
        key=task.key,
        backend=backend,
        content_sha256=task.content_sha256,
        path=task.path,
        start_s=whole_start,
        end_s=ordered[-1].task.end_s,
        with_frames=with_frames,
    )
