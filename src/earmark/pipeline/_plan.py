"""Planning a run: which items need embedding, which the store already holds, which fail early.

Keys come first (one pass of memoised content hashing, then one question to the store),
then headers of what is left (the progress bar's total, bad files caught before any
model loads, and one task per key, or several for a long item).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import audio
from ..exceptions import AudioError, ParameterError
from ..store.keys import embedding_key
from .tasks import plan_blocks

__all__ = ["EmbedPlan", "plan_run", "as_items"]


@dataclass
class EmbedPlan:
    """What :func:`plan_run` decided for each item.

    Attributes
    ----------
    items : list of (path, start_s, end_s)
    keys : list of (str or None)
        Store key of each item; None where its content could not be hashed.
    hashes : list of (str or None)
        Content hash of each item's file.
    reasons : dict of int to str
        Items that failed while hashing, and why.
    stored, frameless : set of str
        Keys the store holds (with frames when frames are asked for); keys it holds only
        without frames (their records are replaced).
    durations, lengths : dict of str
        Seconds and samples (at the backend's rate, for items split into parts) to embed.
    key_reasons : dict of str to str
        Keys whose file failed at its header, and why.
    items_of : dict of str to list of int
        The items that share each key to embed (same bytes and span: embedded once).
    tasks : list of EmbedTask
    """

    items: list
    keys: list = field(default_factory=list)
    hashes: list = field(default_factory=list)
    reasons: dict = field(default_factory=dict)
    stored: set = field(default_factory=set)
    frameless: set = field(default_factory=set)
    durations: dict = field(default_factory=dict)
    lengths: dict = field(default_factory=dict)
    key_reasons: dict = field(default_factory=dict)
    items_of: dict = field(default_factory=dict)
    tasks: list = field(default_factory=list)

    @property
    def n_parts(self) -> dict[str, int]:
        """Tasks per key (1, or the number of parts of a long item)."""
        return {task.key: (task.part.of if task.part else 1) for task in self.tasks}

    def early_failure(self, index: int) -> str | None:
        """Why item ``index`` failed before any embedding, or None."""
        key = self.keys[index]
        return self.reasons.get(index) or (self.key_reasons.get(key) if key else None)


def plan_run(items, backend, store, *, with_frames: bool, block_s: float | None) -> EmbedPlan:
    """Decide what to embed; see :class:`EmbedPlan`."""
    plan = EmbedPlan(items=items)
    backend_key = backend.cache_key()
    for index, (path, start_s, end_s) in enumerate(items):
        try:
            content = store.content_hash(path)
            plan.keys.append(embedding_key(content, backend_key, start_s, end_s))
            plan.hashes.append(content)
        except (AudioError, ParameterError) as error:
            plan.reasons[index] = error.reason if isinstance(error, AudioError) else str(error)
            plan.keys.append(None)
            plan.hashes.append(None)
    unique = list(dict.fromkeys(key for key in plan.keys if key is not None))
    plan.stored = set(store.existing(unique, backend_key=backend_key, with_frames=with_frames))
    plan.frameless = (
        set(store.existing([k for k in unique if k not in plan.stored], backend_key=backend_key))
        if with_frames
        else set()
    )
    for index, key in enumerate(plan.keys):
        if key is None or key in plan.stored or key in plan.key_reasons:
            continue
        if key in plan.durations:
            plan.items_of[key].append(index)
            continue
        path, start_s, end_s = items[index]
        try:
            header = audio.info(path)
            plan.durations[key] = _span_duration_s(header, start_s, end_s)
            plan.lengths[key] = (
                audio.n_samples_at(header, backend.sample_rate, start_s, end_s)
                if block_s is not None and plan.durations[key] > block_s
                else 0
            )
        except (AudioError, ParameterError) as error:
            plan.key_reasons[key] = error.reason if isinstance(error, AudioError) else str(error)
            continue
        plan.items_of[key] = [index]
        plan.tasks.extend(
            plan_blocks(
                backend, key=key, path=path, content_sha256=plan.hashes[index],
                start_s=start_s, end_s=end_s, n_samples=plan.lengths[key], block_s=block_s,
            )
        )
    return plan


def as_items(source) -> list[tuple[str, float | None, float | None]]:
    """(path, start_s, end_s) of each item: paths, objects with ``.path``, or such
    triples (what this returns)."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    items = []
    for item in source:
        if isinstance(item, (str, os.PathLike)):
            items.append((os.fspath(item), None, None))
            continue
        if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], (str, os.PathLike)):
            items.append((os.fspath(item[0]), item[1], item[2]))
            continue
        path = getattr(item, "path", None)
        if path is None:
            raise ParameterError(
                "expected file paths or items with .path (and optional .start_s, .end_s), "
                f"got {type(item).__name__}"
            )
        start_s, end_s = getattr(item, "start_s", None), getattr(item, "end_s", None)
        items.append((os.fspath(path), start_s, end_s))
    return items


def _span_duration_s(header, start_s, end_s) -> float:
    """Seconds a span will give, from the file's header."""
    stop = header.duration_s if end_s is None else min(end_s, header.duration_s)
    return max(0.0, stop - (start_s or 0.0))
