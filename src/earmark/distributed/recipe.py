"""How a worker process gets the same backend the client asked for, loaded once.

A loaded backend holds a model interpreter that cannot be pickled, so workers are sent
a :class:`BackendRecipe` instead (registry name and constructor arguments) and build the
backend themselves. Each recipe carries the client's
:meth:`~earmark.backends.base.Backend.cache_key`; a worker whose backend comes out with
another key (another package version, other weights) refuses to embed, because its
vectors would be filed under a key that does not describe them.

Built backends are kept in a per-process pool (:func:`borrowed_backend`): a worker loads
its model once, by the :class:`~earmark.distributed.worker.BackendPlugin` as it starts
or by its first task, and keeps it for every later task. A model interpreter is not safe
to share between threads, so a worker running several tasks at once holds one backend per
running task, never one shared by two threads.
"""

from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..exceptions import BackendUnavailableError, ParameterError

__all__ = ["BackendRecipe", "borrowed_backend", "loaded_backends"]

#: Constructor arguments that say how fast a backend runs, never what it outputs; the
#: worker sets them from its own share of the machine.
_THREAD_ARGUMENTS = ("num_threads",)


@dataclass(frozen=True)
class BackendRecipe:
    """A picklable description of a backend configuration.

    Attributes
    ----------
    name : str
        Registry name (:func:`~earmark.backends.get_backend`).
    kwargs : dict
        Constructor arguments: the backend's parameters plus settings that do not change
        its output (such as ``batch_size``).
    cache_key : str
        The client's :meth:`Backend.cache_key`, checked on every worker.
    threads : int
        Model threads per task (``num_threads`` for backends that take it). One worker
        process per core with one thread each scales best: threads inside one model
        call synchronise far more often than separate processes.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> recipe = BackendRecipe.from_backend(get_backend("placeholder", window_s=0.25))
    >>> recipe.kwargs["window_s"], recipe.build().cache_key() == recipe.cache_key
    (0.25, True)
    """

    name: str
    kwargs: dict[str, Any] = field(hash=False)
    cache_key: str
    threads: int = 1
    #: A fused backend's parts, each a recipe of its own (empty for a plain backend).
    parts: tuple = ()

    @property
    def token(self) -> str:
        """One string per configuration and thread count: the pool's key."""
        return f"{self.cache_key}-{self.threads}"

    @classmethod
    def from_backend(cls, backend, *, threads: int = 1) -> "BackendRecipe":
        """The recipe of ``backend``, checked to rebuild into the same cache key.

        Raises
        ------
        ParameterError
            If the backend cannot be rebuilt from its registry name and constructor
            arguments (a backend object configured by hand after construction).
        """
        if not isinstance(threads, int) or threads < 1:
            raise ParameterError(f"expected threads >= 1, got {threads!r}")
        parts = getattr(backend, "parts", None)
        if parts:  # a fused backend: each part travels as its own recipe
            recipe = cls(backend.name, {}, backend.cache_key(), threads,
                         tuple(cls.from_backend(part, threads=threads) for part in parts))
            rebuilt = recipe.build(check=False).cache_key()
            if rebuilt != recipe.cache_key:
                raise ParameterError(
                    f"backend {backend.name!r} cannot be rebuilt on the workers from its "
                    f"parts: expected cache key {recipe.cache_key}, got {rebuilt}"
                )
            return recipe
        params = backend.params
        kwargs: dict[str, Any] = {}
        for name, parameter in inspect.signature(type(backend).__init__).parameters.items():
            if name == "self" or name in _THREAD_ARGUMENTS:
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name in params:
                kwargs[name] = params[name]
            elif hasattr(backend, name):
                kwargs[name] = getattr(backend, name)
        recipe = cls(backend.name, kwargs, backend.cache_key(), threads)
        rebuilt = recipe.build(check=False).cache_key()
        if rebuilt != recipe.cache_key:
            raise ParameterError(
                f"backend {backend.name!r} cannot be rebuilt on the workers from "
                f"{kwargs}: expected cache key {recipe.cache_key}, got {rebuilt}"
            )
        return recipe

    def build(self, *, check: bool = True):
        """A new, unloaded backend from this recipe.

        Raises
        ------
        BackendUnavailableError
            With ``check``, if this machine builds a backend of another cache key.
        """
        from ..backends import FusedBackend, from_identity, spec

        if self.parts:
            backend = FusedBackend([part.build(check=check) for part in self.parts])
            return self._checked(backend, check)
        cls = spec(self.name).load_class()
        accepted = cls.parameter_schema()
        kwargs = {name: value for name, value in self.kwargs.items()
                  if name not in cls.local_params}
        # Rebuilt the one way every backend is (registry name, checked parameters); the
        # client's own local parameters (a HEAR module, weights) and this worker's thread
        # count are trusted settings, not read from anywhere else.
        settings = {name: value for name, value in self.kwargs.items()
                    if name in cls.local_params}
        settings.update({name: self.threads for name in _THREAD_ARGUMENTS if name in accepted})
        backend = from_identity({"backend": self.name, "params": kwargs}, params=settings,
                                source=f"the Dask recipe of backend {self.name!r}")
        return self._checked(backend, check)

    def _checked(self, backend, check: bool):
        if check and backend.cache_key() != self.cache_key:
            import socket

            raise BackendUnavailableError(
                f"backend {self.name!r} on {socket.gethostname()} has cache key "
                f"{backend.cache_key()}, the client's is {self.cache_key}: install the "
                f"same earmark, backend packages and weights on every worker "
                f"(here: {backend.version})"
            )
        return backend


_pool_lock = threading.Lock()
_idle: dict[str, list] = {}
_built: dict[str, int] = {}


@contextmanager
def borrowed_backend(recipe: BackendRecipe) -> Iterator:
    """A loaded backend of ``recipe`` for the calling thread, returned to the pool after.

    The first call in a process builds and loads the backend; later calls reuse it.

    Yields
    ------
    Backend
    """
    with _pool_lock:
        idle = _idle.setdefault(recipe.token, [])
        backend = idle.pop() if idle else None
    if backend is None:
        backend = recipe.build().load()
        with _pool_lock:
            _built[recipe.token] = _built.get(recipe.token, 0) + 1
    try:
        yield backend
    finally:
        with _pool_lock:
            _idle[recipe.token].append(backend)


def preload(recipe: BackendRecipe) -> None:
    """Build and load one backend of ``recipe`` into this process's pool, if none is."""
    with _pool_lock:
        if _built.get(recipe.token):
            return
    with borrowed_backend(recipe):
        pass


def loaded_backends() -> dict[str, int]:
    """How many backends of each recipe token this process has built (and loaded)."""
    with _pool_lock:
        return dict(_built)
