"""Embedding backends: a declared contract (:class:`Backend`) and a registry."""

from .base import Backend, Licence
from .registry import BackendSpec, available, get_backend, register, registered

__all__ = ["Backend", "Licence", "BackendSpec", "available", "get_backend", "register", "registered"]
