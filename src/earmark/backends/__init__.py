"""Embedding backends: a declared contract (:class:`Backend`) and a registry."""

from .base import Backend, Licence
from .fused import FusedBackend
from .registry import (
    DEFAULT_BACKEND, BackendSpec, available, check_identity, check_params, from_identity,
    get_backend, register, registered, spec,
)

__all__ = [
    "Backend", "FusedBackend", "Licence", "BackendSpec", "DEFAULT_BACKEND", "available",
    "check_identity", "check_params", "from_identity", "get_backend", "register", "registered", "spec",
]
