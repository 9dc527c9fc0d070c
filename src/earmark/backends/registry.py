"""Registry of embedding backends, by name, imported lazily.

Each entry names the module and class that implement a backend; the module is imported
only when the backend is asked for, and the ML framework behind it only when the
backend first embeds, so ``earmark backends`` lists everything in a fraction of a second.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..exceptions import BackendError, ParameterError
from .base import Backend
from .fused import part_names, split_part_params

__all__ = [
    "BackendSpec", "register", "registered", "get_backend", "available", "DEFAULT_BACKEND",
    "spec", "check_params", "check_identity", "from_identity",
]

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

        For a fused backend (names joined by ``+``, see :mod:`earmark.backends.fused`),
        ``PART.NAME`` (e.g. ``birdnet.hop_s``) or ``PART={...}``.

    Examples
    --------
    >>> get_backend("placeholder").dimension
    16
    >>> get_backend("placeholder+mfcc", **{"placeholder.window_s": 0.25}).dimension
    136
    """
    names = part_names(name)
    if names is not None:
        from .fused import FusedBackend

        split = split_part_params(names, params)
        for part in names:
            schema = spec(part).load_class().parameter_schema()
            unknown = sorted(set(split[part]) - set(schema))
            if unknown:
                raise ParameterError(
                    f"backend {part!r} has no parameter {unknown[0]!r}; expected one of: "
                    f"{', '.join(sorted(schema)) or 'none'}"
                )
        return FusedBackend([get_backend(part, **split[part]) for part in names])
    return spec(name).load_class()(**params)


def spec(name: str) -> BackendSpec:
    """The registry entry of ``name``.

    Raises
    ------
    ParameterError
        If no backend of that name is registered (the message lists those that are).
        A fused name's entry is the fused backend's, once each part is known to be
        registered.
    """
    names = part_names(name)
    if names is not None:
        for part in names:
            spec(part)
        return BackendSpec(name, "earmark.backends.fused:FusedBackend")
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise ParameterError(f"unknown backend {name!r}; expected one of: {known}") from None


#: JSON types a parameter from a file may have, by the type of its default.
_SCALARS = (bool, int, float, str)


def check_params(name: str, params: Any, *, source: str = "the file") -> dict[str, Any]:
    """Backend parameters read from an untrusted source, checked against the schema.

    Only names the backend's constructor declares are accepted, each with a JSON scalar
    (or null) of its default's type; parameters that name code or files on this machine
    (:attr:`Backend.local_params`, e.g. the HEAR adapter's ``module`` and ``weights``)
    are never accepted from a file. Nothing is imported but the backend's own module.

    Parameters
    ----------
    name : str
        A registered backend.
    params : dict
    source : str
        What the parameters came from, for messages.

    Returns
    -------
    dict

    Raises
    ------
    ParameterError
        Naming the parameter and what was expected.

    Examples
    --------
    >>> check_params("placeholder", {"window_s": 0.25})
    {'window_s': 0.25}

    A fused backend's parameters are one object per part, each checked as its part's:

    >>> check_params("placeholder+mfcc", {"mfcc": {"n_mfcc": 13}})
    {'placeholder': {}, 'mfcc': {'n_mfcc': 13}}
    """
    cls = spec(name).load_class()
    if not isinstance(params, dict):
        raise ParameterError(f"{source}: expected backend parameters as an object, got {type(params).__name__}")
    names = part_names(name)
    if names is not None:
        unknown = [key for key in params if key not in names]
        if unknown:
            raise ParameterError(
                f"{source}: fused backend {name!r} has no part {unknown[0]!r}; expected "
                f"parameters of: {', '.join(names)}"
            )
        return {part: check_params(part, params.get(part) or {}, source=f"{source}, part {part!r}")
                for part in names}
    schema = cls.parameter_schema()
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if key not in schema:
            raise ParameterError(
                f"{source}: backend {name!r} has no parameter {key!r}; expected one of: "
                f"{', '.join(sorted(schema)) or 'none'}"
            )
        if key in cls.local_params:
            if value in (None, ""):
                continue
            raise ParameterError(
                f"{source}: backend {name!r} parameter {key!r} names code or a file on this "
                f"machine and is never taken from a file; give it yourself "
                f"(--backend-param {key}=...)"
            )
        default = schema[key]
        if value is not None and not isinstance(value, _SCALARS):
            raise ParameterError(
                f"{source}: backend parameter {key!r}: expected a number, string or boolean, "
                f"got {type(value).__name__}"
            )
        if default is not None and value is not None:
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if numeric \
                else isinstance(value, type(default))
            if not ok:
                raise ParameterError(
                    f"{source}: backend parameter {key!r}: expected {type(default).__name__}, "
                    f"got {value!r}"
                )
        checked[key] = value
    return checked


def check_identity(identity: Any, *, source: str = "the file") -> None:
    """Check a backend identity read from an untrusted file, importing nothing it names.

    The backend (each part of a fused one) must be registered, with parameters its
    schema declares (:func:`check_params`); local parameters (:attr:`Backend.local_params`)
    are skipped here and asked of the user when the backend is built
    (:func:`from_identity`).

    Raises
    ------
    ParameterError
    """
    if not isinstance(identity, dict) or not isinstance(identity.get("backend"), str):
        raise ParameterError(f"{source}: expected a backend identity with a 'backend' name")
    name = identity["backend"]
    stored = identity.get("params") or {}
    if not isinstance(stored, dict):
        raise ParameterError(f"{source}: expected backend parameters as an object")
    names = part_names(name)
    if names is None:
        cls = spec(name).load_class()
        check_params(name, {k: v for k, v in stored.items() if k not in cls.local_params},
                     source=source)
        return
    spec(name)  # every part registered, before anything else is read
    for part, part_identity in zip(names, _part_identities(names, identity, source)):
        check_identity(part_identity, source=f"{source}, part {part!r}")


def _part_identities(names: list[str], identity: dict, source: str) -> list[dict]:
    """Each part's identity in a fused one: its ``parts`` list, or (in a store's
    configuration, which holds only name and parameters) one per part's parameters."""
    stored = identity.get("params") or {}
    if not isinstance(stored, dict):
        raise ParameterError(f"{source}: expected backend parameters as an object")
    unknown = [key for key in stored if key not in names]
    if unknown:
        raise ParameterError(f"{source}: fused backend {identity['backend']!r} has no part {unknown[0]!r}")
    parts = identity.get("parts")
    if parts is None:
        return [{"backend": part, "params": stored.get(part) or {}} for part in names]
    if not isinstance(parts, list) or len(parts) != len(names) or not all(
        isinstance(entry, dict) and entry.get("backend") == part for entry, part in zip(parts, names)
    ):
        raise ParameterError(
            f"{source}: fused backend {identity['backend']!r}: expected 'parts' to list the "
            f"identities of {', '.join(names)}, in that order"
        )
    return parts


def from_identity(identity: Any, *, params: dict[str, Any] | None = None,
                  strict: bool = True, source: str = "the file") -> Backend:
    """Rebuild the backend an identity (or :meth:`Backend.config`) describes: the one way.

    Models, stores, search, ``serve`` and the Dask workers all rebuild backends here. The
    name must be registered and the parameters pass :func:`check_params`; ``params``
    (given by the user, trusted) are added on top, which is how the HEAR adapter's module
    and weights come back. With a recorded weights hash, the installed weights must match.

    Parameters
    ----------
    identity : dict
        :meth:`Backend.identity` or :meth:`Backend.config`.
    params : dict, optional
        Parameters from the user (e.g. ``--backend-param``), not checked against a file.
    strict : bool
        If False, other weights only warn.
    source : str
        Where the identity came from, for messages.

    Raises
    ------
    ParameterError
        An unknown backend, or parameters the backend does not declare.
    BackendError
        The installed weights are not the recorded ones (with ``strict``), or a local
        parameter the identity needs was not given.

    Examples
    --------
    >>> backend = get_backend("placeholder", window_s=0.25)
    >>> from_identity(backend.identity()).cache_key() == backend.cache_key()
    True
    """
    import warnings

    if not isinstance(identity, dict) or not isinstance(identity.get("backend"), str):
        raise ParameterError(f"{source}: expected a backend identity with a 'backend' name")
    name = identity["backend"]
    names = part_names(name)
    if names is not None:
        # Each part through this same function, with its own checks and weights hash.
        from .fused import FusedBackend

        spec(name)  # every part registered, before anything else is read
        given = split_part_params(names, params)
        parts = []
        for part, part_identity in zip(names, _part_identities(names, identity, source)):
            try:
                parts.append(from_identity(part_identity, params=given[part], strict=strict,
                                           source=f"{source}, part {part!r}"))
            except BackendError as error:  # a local parameter: name it as a fused one takes it
                message = str(error).replace("--backend-param ", f"--backend-param {part}.")
                raise BackendError(message) from None
        return FusedBackend(parts)
    cls = spec(name).load_class()
    stored = identity.get("params") or {}
    if not isinstance(stored, dict):
        raise ParameterError(f"{source}: expected backend parameters as an object")
    # Local parameters recorded in the file are never used, only asked for again.
    recorded = check_params(
        name, {k: v for k, v in stored.items() if k not in cls.local_params}, source=source
    )
    given = dict(params or {})
    missing = [key for key in cls.local_params
               if stored.get(key) not in (None, "") and key not in given]
    if missing:
        raise BackendError(
            f"{source}: made with backend {name!r}, whose {', '.join(missing)} earmark never "
            f"takes from a file; give {' and '.join(f'--backend-param {k}=...' for k in missing)}"
        )
    backend = get_backend(name, **{**recorded, **given})
    expected = identity.get("weights_sha256")
    if expected:
        installed = backend.weights_hash
        if installed != expected:
            message = (
                f"{source}: made from {name!r} weights with SHA-256 {str(expected)[:12]}..., "
                f"but the installed weights hash to {installed[:12]}... (version "
                f"{backend.version}, recorded {identity.get('version')}); its predictions "
                f"would be meaningless. Install the backend version it was made with, or "
                f"retrain"
            )
            if strict:
                raise BackendError(message)
            warnings.warn(message, stacklevel=2)
        elif identity.get("version") and backend.version != identity["version"]:
            warnings.warn(
                f"backend {name!r} is version {backend.version}, {source} recorded "
                f"{identity['version']}; the weights are the same, so results should hold",
                stacklevel=2,
            )
    return backend


def available(name: str) -> bool:
    """True if the backend's packages are installed (each part's, for a fused name)."""
    names = part_names(name)
    if names is not None:
        return all(available(part) for part in names)
    return spec(name).load_class().is_available()


register("birdnet", "earmark.backends.birdnet:BirdNetBackend")
register("aisfx", "earmark.backends.aisfx:AisfxBackend")
register("musicnn", "earmark.backends.musicnn:MusicnnBackend")
register("mfcc", "earmark.backends.mfcc:MfccBackend")
register("hear", "earmark.backends.hear:HearBackend")
register("placeholder", "earmark.backends.placeholder:PlaceholderBackend", for_tests_only=True)
