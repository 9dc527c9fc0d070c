"""The embedding cache: every command reuses what any command has embedded before.

>>> from earmark.store import open_store
>>> store = open_store(":memory:")
>>> store.count()
0

:func:`open_store` opens the on-disk cache (``$EARMARK_CACHE_DIR``, else the platform's
user cache folder); see :mod:`earmark.store.base` for the interface and
:mod:`earmark.store.lance` for the layout on disk.
"""

from __future__ import annotations

from pathlib import Path

from .base import EmbeddingStore, StoredEmbedding, default_cache_dir
from .keys import embedding_key
from .memory import MemoryStore
from .vectors import SearchHit

__all__ = [
    "EmbeddingStore",
    "StoredEmbedding",
    "SearchHit",
    "MemoryStore",
    "LanceStore",
    "open_store",
    "default_cache_dir",
    "embedding_key",
]

#: Pass as ``directory`` to :func:`open_store` for a store that keeps nothing.
IN_MEMORY = ":memory:"


def open_store(directory: str | Path | None = None) -> EmbeddingStore:
    """Open the embedding cache.

    Parameters
    ----------
    directory : str or Path, optional
        The cache folder; ``None`` uses :func:`default_cache_dir`
        (``$EARMARK_CACHE_DIR`` or e.g. ``~/.cache/earmark``); ``":memory:"`` gives a
        :class:`MemoryStore` that keeps nothing after the process ends.

    Returns
    -------
    EmbeddingStore
    """
    if directory is not None and str(directory) == IN_MEMORY:
        return MemoryStore()
    from .lance import LanceStore

    return LanceStore(default_cache_dir() if directory is None else directory)


def __getattr__(name: str):
    # lancedb takes a second to import; only code that uses LanceStore should pay it.
    if name == "LanceStore":
        from .lance import LanceStore

        return LanceStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
