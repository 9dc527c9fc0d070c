"""Registry of embedding backends, by name, imported lazily.

Each entry names the module and class that implement a backend; the module is imported
only when the backend is asked for, and the ML framework behind it only when the
backend first embeds, so ``earmark backends`` lists everything in a fraction of a second.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..exceptions import ParameterError
from .base import Backend

__all__ = ["BackendSpec", "register", "registered", "get_backend", "available", "DEFAULT_BACKEND"]

DEFAULT_BACKEND = "birdnet"


@dataclass(frozen=True)
class BackendSpec:
    name: str
    target: str  # "package.module:ClassName"
    for_tests_only: bool = False

    def load_class(self) -> type[Backend]:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


_REGISTRY: dict[str, BackendSpec] = {}


def register(name: str, target: str, *, for_tests_only: bool = False) -> None:
    """Register a backend class under ``name`` (``target`` is ``"module:Class"``)."""
    _REGISTRY[name] = BackendSpec(name, target, for_tests_only)


def registered(*, include_test_backends: bool = True) -> list[BackendSpec]:
    """Every registered backend, in registration order."""
    return [s for s in _REGISTRY.values() if include_test_backends or not s.for_tests_only]


def get_backend(name: str = DEFAULT_BACKEND, **params: Any) -> Backend:
    """Instantiate a registered backend.

    Parameters
    ----------
    name : str
        Registry name (``earmark backends`` lists them).
    **params
        Backend parameters (e.g. ``hop_s`` for ``birdnet``, ``model`` for ``musicnn``).

    Examples
    --------
    >>> get_backend("placeholder").dimension
    16
    """
    try:
        spec = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ParameterError(f"unknown backend {name!r}; expected one of: {known}") from None
    return spec.load_class()(**params)


def available(name: str) -> bool:
    """True if the backend's packages are installed."""
    return _REGISTRY[name].load_class().is_available()


register("birdnet", "earmark.backends.birdnet:BirdNetBackend")
register("aisfx", "earmark.backends.aisfx:AisfxBackend")
register("musicnn", "earmark.backends.musicnn:MusicnnBackend")
register("mfcc", "earmark.backends.mfcc:MfccBackend")
register("hear", "earmark.backends.hear:HearBackend")
register("placeholder", "earmark.backends.placeholder:PlaceholderBackend", for_tests_only=True)
