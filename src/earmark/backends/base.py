"""The contract every embedding backend declares and keeps.

A backend is a model that turns fixed-length windows of mono audio at its own sample
rate into vectors. It declares:

- ``sample_rate`` (Hz), ``dimension`` (length of one embedding),
- ``window_samples`` and ``hop_samples`` (how audio is cut into frames), and
  ``lead_samples`` (zeros the model expects before the signal),
- ``pooling`` (how frame embeddings become one clip embedding),
- its licence, version and a hash of its weights, recorded with every cached vector.

Everything else (reading files, resampling, cutting into windows with exact sample
arithmetic, batching, streaming long files, timestamps) lives in
:mod:`earmark.embedding`, once, for every backend. This is the HEAR idea (a model only
has to embed) with perch-hoplite's declared wrapper; see ``tests/backends/`` for the
compliance test every registered backend passes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ..exceptions import BackendError, BackendUnavailableError

__all__ = ["Backend", "Licence", "file_sha256"]


@dataclass(frozen=True)
class Licence:
    """Terms under which a backend's weights may be used.

    ``commercial_use`` is False when the licence forbids it (e.g. CC BY-NC-SA), None
    when earmark cannot know (a model the user plugs in); ``attribution`` is the credit
    line a user must give when it is required.
    """

    name: str
    commercial_use: bool | None
    attribution: str = ""
    note: str = ""

    def summary(self) -> str:
        text = self.name
        if self.commercial_use is False:
            text += " (non-commercial use only)"
        if self.note:
            text += f"; {self.note}"
        return text


def file_sha256(path, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class Backend(ABC):
    """Base class of embedding backends.

    Subclasses set the class attributes, implement :meth:`_load` (import the framework
    and read the weights, called once, lazily) and :meth:`_embed_windows`. ``__init__``
    only stores keyword parameters, which are part of the cache key.

    Class attributes
    ----------------
    name : str
        Registry name.
    licence : Licence
    requires : tuple of str
        Importable modules the backend needs; checked without importing them.
    extra : str or None
        The ``pip install earmark[extra]`` that brings them.
    fixed_batch : bool
        True if the model must always be called with ``batch_size`` windows (the
        pipeline pads the last batch instead of resizing the model's input).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    licence: ClassVar[Licence]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    install_hint: ClassVar[str] = ""
    fixed_batch: ClassVar[bool] = False
    #: Bump when a change to the backend's code changes its output.
    code_version: ClassVar[str] = "1"
    #: Parameters that name code or files on the user's machine (a module to import, a
    #: weights path). They are never taken from a model file or a store, which may come
    #: from a stranger: the user gives them again (:func:`~earmark.backends.from_identity`).
    local_params: ClassVar[tuple[str, ...]] = ()

    sample_rate: int
    dimension: int
    window_samples: int
    hop_samples: int
    batch_size: int = 32
    pooling: str = "mean"
    #: Zeros the model expects before the signal, as a centred STFT pads: frame ``i``
    #: covers samples ``[i * hop - lead, i * hop - lead + window)`` of the signal, so
    #: that a model trained on ``center=True`` spectrograms sees its own frame grid.
    #: Must be smaller than ``window_samples``.
    lead_samples: int = 0
    #: The frame's focus: the part of its window it describes, centred in the window;
    #: None: the whole window. A model that reads context around what it labels declares
    #: it (aiSFX's step grid: 0.19 s described in 0.58 s heard), and a frame's
    #: timestamps are then its focus's (:func:`earmark.embedding.frame_times`).
    focus_samples: int | None = None

    def __init__(self, **params: Any):
        self._params = dict(params)
        self._loaded = False

    # ----------------------------------------------------------------- identity
    @property
    def params(self) -> dict[str, Any]:
        """Parameters that change the output; part of every cache key."""
        return dict(self._params)

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate

    @property
    def version(self) -> str:
        """Backend code version plus the version of the package that ships the weights."""
        return f"{self.name}-{self.code_version}+{self._package_version()}"

    def _package_version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for module in self.requires[:1]:
            try:
                return version(module)
            except PackageNotFoundError:
                return "unknown"
        return "none"

    @cached_property
    def weights_hash(self) -> str:
        """SHA-256 of the weights (or of the parameters, for models without weights)."""
        paths = self.weights_paths()
        if not paths:
            payload = json.dumps({"name": self.name, **self.params}, sort_keys=True)
            return hashlib.sha256(payload.encode()).hexdigest()
        digest = hashlib.sha256()
        for path in paths:
            digest.update(file_sha256(path).encode())
        return digest.hexdigest()

    def weights_paths(self) -> Sequence[Path]:
        """Files holding the weights, hashed into :attr:`weights_hash`."""
        return ()

    def config(self) -> dict[str, Any]:
        """Name and parameters: what :func:`~earmark.backends.from_identity` rebuilds from.

        Examples
        --------
        >>> from earmark.backends import get_backend
        >>> get_backend("placeholder", window_s=0.25).config()
        {'backend': 'placeholder', 'params': {'window_s': 0.25, 'hop_s': None}}
        """
        return {"backend": self.name, "params": self.params}

    @classmethod
    def parameter_schema(cls) -> dict[str, Any]:
        """Keyword parameters of the constructor and their defaults (the declared schema).

        A parameter read from a file must be one of these names, with a JSON scalar of
        its default's type (see :func:`~earmark.backends.check_params`).
        """
        import inspect

        schema = {}
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            schema[name] = None if parameter.default is parameter.empty else parameter.default
        return schema

    def identity(self) -> dict[str, Any]:
        """Everything needed to know whether two embeddings are comparable."""
        return {
            "backend": self.name,
            "version": self.version,
            "weights_sha256": self.weights_hash,
            "params": self.params,
            "sample_rate": self.sample_rate,
            "dimension": self.dimension,
            "window_samples": self.window_samples,
            "hop_samples": self.hop_samples,
            "lead_samples": self.lead_samples,
            "pooling": self.pooling,
        }

    def cache_key(self) -> str:
        """Short hash of :meth:`identity`: two backends with equal keys embed alike."""
        payload = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # ------------------------------------------------------------ availability
    @classmethod
    def is_available(cls) -> bool:
        """True if every required module can be imported (without importing it)."""
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    @classmethod
    def require(cls) -> None:
        if not cls.is_available():
            missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
            hint = cls.install_hint or (
                f"pip install 'earmark[{cls.extra}]'" if cls.extra else "see the README"
            )
            raise BackendUnavailableError(
                f"backend {cls.name!r} needs {', '.join(missing)}, which is not installed; "
                f"install it with: {hint}"
            )

    def load(self) -> "Backend":
        """Import the framework and read the weights, once."""
        if not self._loaded:
            self.require()
            self._load()
            self._loaded = True
        return self

    def _load(self) -> None:  # pragma: no cover - trivial default
        """Load the model; subclasses with weights override this."""

    # --------------------------------------------------------------- embedding
    @abstractmethod
    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows.

        Parameters
        ----------
        windows : np.ndarray [shape=(batch, window_samples), dtype=float32]

        Returns
        -------
        X : np.ndarray [shape=(batch, dimension)]
        """

    def check_windows(self, windows: np.ndarray) -> np.ndarray:
        """Load the model and return ``windows`` as a C-contiguous float32 batch.

        Raises
        ------
        BackendError
            If the shape is not ``(batch, window_samples)``.
        """
        self.load()
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.window_samples:
            raise BackendError(
                f"{self.name}: expected windows of shape (batch, {self.window_samples}), "
                f"got {windows.shape}"
            )
        return windows

    def _checked(self, what: str, values, n: int, width: int) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (n, width):
            raise BackendError(
                f"{self.name}: expected {what} of shape ({n}, {width}), got {values.shape}"
            )
        return values

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows, checking the declared shapes.

        Parameters
        ----------
        windows : np.ndarray [shape=(batch, window_samples), dtype=float32]

        Returns
        -------
        X : np.ndarray [shape=(batch, dimension), dtype=float32]
        """
        windows = self.check_windows(windows)
        X = self._embed_windows(windows)
        return self._checked("embeddings", X, windows.shape[0], self.dimension)

    #: Names of the classes :meth:`score_windows` scores, or None if it scores none.
    class_names: Sequence[str] | None = None

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Class scores of checked windows; backends with a classifier override this."""
        raise BackendError(f"backend {self.name!r} has no class scores")

    def _embed_and_score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both outputs of checked windows. Models that compute them in one pass
        override this, so that asking for both does not run the network twice."""
        return self._embed_windows(windows), self._score_windows(windows)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Class scores of the model's own classifier, for backends that have one.

        Parameters
        ----------
        windows : np.ndarray [shape=(batch, window_samples), dtype=float32]

        Returns
        -------
        scores : np.ndarray [shape=(batch, len(class_names)), dtype=float32]
        """
        if self.class_names is None:
            raise BackendError(f"backend {self.name!r} has no class scores")
        windows = self.check_windows(windows)
        scores = self._score_windows(windows)
        return self._checked("scores", scores, windows.shape[0], len(self.class_names))

    def embed_and_score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and class scores of a batch, from one pass where the model allows.

        Returns
        -------
        X : np.ndarray [shape=(batch, dimension), dtype=float32]
        scores : np.ndarray [shape=(batch, len(class_names)), dtype=float32]
        """
        if self.class_names is None:
            raise BackendError(f"backend {self.name!r} has no class scores")
        windows = self.check_windows(windows)
        X, scores = self._embed_and_score_windows(windows)
        n = windows.shape[0]
        return (
            self._checked("embeddings", X, n, self.dimension),
            self._checked("scores", scores, n, len(self.class_names)),
        )

    def pool(self, X: np.ndarray) -> np.ndarray:
        """Pool frame embeddings into one clip embedding.

        Parameters
        ----------
        X : np.ndarray [shape=(n_frames, dimension)]

        Returns
        -------
        x : np.ndarray [shape=(dimension,), dtype=float32]
        """
        if X.shape[0] == 0:
            raise BackendError(f"{self.name}: cannot pool zero frames")
        if self.pooling == "max":
            return X.max(axis=0).astype(np.float32)
        return X.mean(axis=0, dtype=np.float64).astype(np.float32)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"
