"""Similarity search: the stored clips or segments that sound most like an example.

The store does the searching (:meth:`EmbeddingStore.search_vectors`): exact NumPy search
in a :class:`~earmark.store.MemoryStore`, a LanceDB vector index in a
:class:`~earmark.store.lance.LanceStore` (see :mod:`earmark.store.lance_index` for the
index, when it is built and how it is kept up to date). This module adds the audio end:
embed an example with the backend the store was filled with, then search.

Examples
--------
>>> import numpy as np
>>> from earmark.backends import get_backend
>>> from earmark.embedding import embed_signal
>>> from earmark.store import MemoryStore, StoredEmbedding
>>> backend = get_backend("placeholder")
>>> store = MemoryStore()
>>> rng = np.random.default_rng(0)
>>> for index in range(3):
...     y = rng.standard_normal(16000).astype(np.float32)
...     record = StoredEmbedding.from_embeddings(
...         embed_signal(backend, y, 16000), key=f"clip{index}", backend=backend,
...         content_sha256=str(index), path=f"clip{index}.wav")
...     _ = store.put_many([record])
>>> hits = search(store, record.clip, backend_key=backend.cache_key(), k=2)
>>> hits[0].path, round(hits[0].distance, 6)
('clip2.wav', 0.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import ParameterError, StoreError
from ..store.vectors import SearchHit

__all__ = [
    "SearchHit", "search", "search_audio", "embed_query", "stored_backends", "backend_for_store",
]  # fmt: skip


def search(
    store,
    query,
    *,
    backend_key: str,
    k: int = 10,
    level: str = "clip",
    exact: bool = False,
) -> list[SearchHit]:
    """The ``k`` stored clips or segments nearest an embedding, by cosine distance.

    Parameters
    ----------
    store : EmbeddingStore
    query : np.ndarray [shape=(dimension,)]
        A vector in the space of the backend configuration ``backend_key``.
    backend_key : str
        :meth:`Backend.cache_key` of the backend the store's vectors were made with.
    k : int
        Number of hits.
    level : {"clip", "segment"}
        ``"clip"`` searches one pooled vector per stored record; ``"segment"`` searches
        every stored frame vector, each hit with its span in the file.
    exact : bool
        Compare with every stored vector instead of using the store's vector index.

    Returns
    -------
    hits : list of SearchHit
        At most ``k``, by ascending cosine distance (``1 - cos``).

    Raises
    ------
    StoreError
        If the store holds no embeddings of ``backend_key`` (or no frames, for segments).
    ParameterError
        If ``query`` is not a finite non-zero vector of the stored dimension, or ``k``
        or ``level`` is invalid.
    """
    return store.search_vectors(query, backend_key=backend_key, k=k, level=level, exact=exact)


def embed_query(path_or_waveform, backend, *, sr: int | None = None) -> np.ndarray:
    """The pooled clip embedding of an example, as search queries use it.

    Parameters
    ----------
    path_or_waveform : str, Path or np.ndarray [shape=(n,)]
        An audio file, or a mono waveform (then ``sr`` is required).
    backend : Backend
    sr : int, optional
        Sample rate of a waveform.

    Returns
    -------
    query : np.ndarray [shape=(backend.dimension,), dtype=float32]

    Raises
    ------
    AudioError
        If the file cannot be read as audio; the message names it.
    """
    from ..embedding import embed_file, embed_signal

    if isinstance(path_or_waveform, (str, Path)):
        embeddings = embed_file(backend, path_or_waveform)
    else:
        if sr is None:
            raise ParameterError("expected sr, the sample rate of the query waveform, got None")
        embeddings = embed_signal(backend, np.asarray(path_or_waveform), int(sr))
    return np.asarray(embeddings.clip, dtype=np.float32)


def search_audio(
    store,
    path_or_waveform,
    backend,
    *,
    k: int = 10,
    level: str = "clip",
    exact: bool = False,
    sr: int | None = None,
) -> list[SearchHit]:
    """The ``k`` stored clips or segments that sound most like an example.

    The example is embedded with ``backend`` (its pooled clip vector is the query, at
    either level), then :func:`search` looks in that backend configuration's vectors.

    Parameters
    ----------
    store : EmbeddingStore
    path_or_waveform : str, Path or np.ndarray [shape=(n,)]
        The example: an audio file, or a mono waveform with its rate ``sr``.
    backend : Backend
        Must be the configuration the store was filled with (same name and parameters).
    k, level, exact
        As in :func:`search`.
    sr : int, optional
        Sample rate of a waveform example.

    Returns
    -------
    hits : list of SearchHit

    Raises
    ------
    AudioError
        If the example file cannot be read.
    StoreError
        If the store holds no embeddings of this backend configuration.
    """
    from ..store.vectors import check_level, no_vectors

    check_level(level)
    backend_key = backend.cache_key()
    # Checked before embedding: a wrong backend should fail at once, not after the model ran.
    known = store.backend_keys()
    if backend_key not in known:
        raise no_vectors(backend_key, level, known)
    query = embed_query(path_or_waveform, backend, sr=sr)
    return search(store, query, backend_key=backend_key, k=k, level=level, exact=exact)


def stored_backends(store) -> dict[str, dict]:
    """Which backend configurations a store holds embeddings of.

    Returns
    -------
    backends : dict
        ``backend_key -> {"backend": name, "params": dict, "records": int}``.
    """
    return store.configurations()


def backend_for_store(store, name: str | None = None, params: dict | None = None):
    """The backend to embed queries with: the configuration the store was filled with.

    Parameters
    ----------
    store : EmbeddingStore
    name : str, optional
        Backend name; ``None`` picks the only one stored (or ``birdnet`` among several).
    params : dict, optional
        Backend parameters; ``None`` takes those of the stored configuration.

    Returns
    -------
    Backend
        Whose :meth:`~earmark.backends.base.Backend.cache_key` names a table of ``store``.

    Raises
    ------
    StoreError
        If the store holds no embeddings, none of this backend, or embeddings made by
        another version or configuration of it.
    ParameterError
        If the store holds several configurations and ``name`` does not choose one.
    """
    from ..backends import DEFAULT_BACKEND, from_identity, get_backend

    stored = stored_backends(store)
    if not stored:
        raise StoreError(f"{_where(store)} holds no embeddings; fill it with `earmark embed`")
    described = "; ".join(
        info["backend"] + (f" {info['params']}" if info["params"] else "")
        + f" ({info['records']} records)"
        for info in stored.values()
    )
    if params is not None:
        backend = get_backend(name or DEFAULT_BACKEND, **params)
        if backend.cache_key() not in stored:
            raise StoreError(
                f"{_where(store)} holds no embeddings of backend {backend.name} with "
                f"parameters {params}; it holds: {described}"
            )
        return backend
    named = [key for key, info in stored.items() if name in (None, info["backend"])]
    if name is None and len(named) > 1:
        named = [key for key in named if stored[key]["backend"] == DEFAULT_BACKEND] or named
    if not named:
        raise StoreError(
            f"{_where(store)} holds no embeddings of backend {name!r}; it holds: {described}"
        )
    if len(named) > 1:
        raise ParameterError(
            f"{_where(store)} holds several configurations ({described}); "
            "choose one with --backend (and --backend-param)"
        )
    info = stored[named[0]]
    backend = from_identity(info, source=_where(store))
    if backend.cache_key() != named[0]:
        raise StoreError(
            f"the {info['backend']} embeddings in {_where(store)} were made by another "
            f"version or weights of the backend than the one installed ({backend.version}); "
            "queries would not be comparable: re-embed with `earmark embed`"
        )
    return backend


def _where(store) -> str:
    directory = getattr(store, "directory", None)
    return f"the store at {directory}" if directory is not None else "the store"
