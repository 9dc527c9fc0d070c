"""Embedding backends: a declared contract (:class:`Backend`) and a registry."""

from .base import Backend, Licence
from .registry import (
    DEFAULT_BACKEND, BackendSpec, available, check_params, from_identity, get_backend, register,
    registered, spec,
)

__all__ = [
    "Backend", "Licence", "BackendSpec", "DEFAULT_BACKEND", "available", "check_params",
    "from_identity", "get_backend", "register", "registered", "spec",
]
