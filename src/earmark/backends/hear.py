"""Adapter for any HEAR-API module: plug in models earmark cannot ship.

The HEAR 2021 common API (Turian et al., "HEAR: Holistic Evaluation of Audio
Representations") asks a model package for three functions::

    load_model(model_file_path="") -> model          # model.sample_rate,
                                                     # model.scene_embedding_size,
                                                     # model.timestamp_embedding_size
    get_scene_embeddings(audio, model) -> (n_sounds, scene_embedding_size)
    get_timestamp_embeddings(audio, model) -> (embeddings, timestamps_ms)

with ``audio`` of shape ``(n_sounds, n_samples)`` at ``model.sample_rate``. Dozens of
published models follow it. Give :class:`HearBackend` the module's import name (and its
weights file, if it takes one): earmark cuts audio into ``window_s`` windows every
``hop_s`` and each batch of windows goes to ``get_scene_embeddings``, so frames,
timestamps, caching and pooling work as for any backend.

Most HEAR modules are PyTorch and want ``torch.Tensor`` input; others take NumPy or
TensorFlow. The adapter tries the input the model looks like it wants first (a tensor
for a ``torch.nn.Module``, else a NumPy array) and falls back to the other, once, when
the model loads; outputs may be tensors or arrays.

The licence is whatever the module's authors chose: earmark cannot know it, so using
the model under its terms is the user's responsibility (``licence.commercial_use`` is
None: unknown until you have checked).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..exceptions import BackendError, BackendUnavailableError, ParameterError
from .base import Backend, Licence, file_sha256

__all__ = ["HearBackend"]


class _class_or_instance_method:
    """A method that receives the class when called on it and the instance otherwise.

    ``HearBackend.is_available()`` asks about the adapter (it needs nothing), while
    ``backend.is_available()`` asks about the module this instance was given.
    """

    def __init__(self, function):
        self.function = function
        functools.update_wrapper(self, function)

    def __get__(self, instance, owner):
        return functools.partial(self.function, owner if instance is None else instance)


def _to_numpy(value) -> np.ndarray:
    """A torch/TensorFlow tensor or array-like as a NumPy array."""
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # TensorFlow
        value = value.numpy()
    return np.asarray(value)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions (slow to build: every package's files)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _torch_module_class():
    """``torch.nn.Module`` if torch is already imported (by the HEAR module), else None."""
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "nn", None), "Module", None)


class HearBackend(Backend):
    """Any HEAR-API module as an embedding backend.

    Parameters
    ----------
    module : str
        Import name of the HEAR module, e.g. ``"hearbaseline.naive"``.
    weights : str or Path, optional
        File (or folder) passed to ``load_model``; hashed into the cache key.
    window_s : float
        Window length in seconds: the audio one ``get_scene_embeddings`` row sees.
    hop_s : float, optional
        Step between windows in seconds; half the window by default.
    batch_size : int
        Windows per ``get_scene_embeddings`` call (does not change the output).

    Examples
    --------
    >>> backend = HearBackend(module="hearbaseline.naive", weights="naive.pt")  # doctest: +SKIP
    >>> backend.dimension  # doctest: +SKIP
    4096
    """

    name = "hear"
    description = "Any HEAR 2021 API module you have installed (module= and weights=)"
    licence = Licence(
        "unknown (set by the module you plug in)",
        commercial_use=None,
        note="check the model's own licence; using it is your responsibility",
    )
    install_hint = "pip install the package that provides the HEAR module"
    code_version = "1"
    local_params = ("module", "weights")

    def __init__(
        self,
        *,
        module: str = "",
        weights: str | Path | None = None,
        window_s: float = 1.0,
        hop_s: float | None = None,
        batch_size: int = 16,
    ):
        weights = None if weights is None else str(weights)
        super().__init__(module=module, weights=weights, window_s=window_s, hop_s=hop_s)
        self.module = module
        self.weights = weights
        self.batch_size = batch_size
        self._model = None
        self._hear = None
        self._input_kind: str | None = None

    # ------------------------------------------------------ what the model declares
    # Known only once the model is loaded, so reading any of them loads it.
    @property
    def sample_rate(self) -> int:
        return self.load()._sample_rate

    @property
    def dimension(self) -> int:
        return self.load()._dimension

    @property
    def window_samples(self) -> int:
        return self.load()._window_samples

    @property
    def hop_samples(self) -> int:
        return self.load()._hop_samples

    # ------------------------------------------------------------- availability
    @_class_or_instance_method
    def is_available(target) -> bool:
        """On the class: True (the adapter needs nothing). On an instance: True if its
        module's top-level package is installed, found without importing it."""
        if isinstance(target, type):
            return True
        top = target.module.partition(".")[0] if isinstance(target.module, str) else ""
        try:
            return bool(top) and importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            return False

    @_class_or_instance_method
    def require(target) -> None:
        if isinstance(target, type):
            return
        if not isinstance(target.module, str) or not target.module:
            raise ParameterError(
                "the hear backend needs module='<import name of a HEAR-API module>', "
                f"got module={target.module!r}"
            )
        if not target.is_available():
            raise BackendUnavailableError(
                f"backend 'hear' needs the module {target.module!r}, which is not "
                f"installed; {target.install_hint}"
            )

    # ----------------------------------------------------------------- identity
    def weights_paths(self) -> Sequence[Path]:
        if self.weights is None:
            return ()
        path = Path(self.weights).expanduser()
        if not path.exists():
            raise ParameterError(f"hear: weights {self.weights!r} not found")
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file())
        return [path]

    def identity(self) -> dict[str, Any]:
        identity = super().identity()
        # The weights' hash identifies them; where they lie on disk does not matter.
        identity["params"] = {k: v for k, v in identity["params"].items() if k != "weights"}
        return identity

    def _package_version(self) -> str:
        return self._module_version

    @cached_property
    def _module_version(self) -> str:
        """The distribution's version, or a hash of the module's source if it has none."""
        from importlib.metadata import PackageNotFoundError, version

        top = self.module.partition(".")[0]
        for distribution in _distributions().get(top, []):
            try:
                return f"{distribution}=={version(distribution)}"
            except PackageNotFoundError:
                continue
        # A module of the user's own: its code is its version. Hash the whole top-level
        # package, since a HEAR module usually leans on helpers beside it.
        spec = importlib.util.find_spec(top)
        if spec is None:
            return "unknown"
        if spec.submodule_search_locations:
            files = sorted(
                path for folder in spec.submodule_search_locations
                for path in Path(folder).rglob("*.py")
            )
        else:
            files = [Path(spec.origin)] if spec.origin and Path(spec.origin).is_file() else []
        if not files:
            return "unknown"
        digest = hashlib.sha256()
        for path in files:
            digest.update(file_sha256(path).encode())
        return f"source-{digest.hexdigest()[:16]}"

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        try:
            hear = importlib.import_module(self.module)
        except ModuleNotFoundError as error:
            raise BackendUnavailableError(
                f"backend 'hear': cannot import {self.module!r} ({error})"
            ) from error
        except Exception as error:
            raise BackendError(f"hear: importing {self.module!r} failed: {error!r}") from error
        for function in ("load_model", "get_scene_embeddings"):
            if not callable(getattr(hear, function, None)):
                found = getattr(hear, function, None)
                got = "none" if found is None else type(found).__name__
                raise BackendError(
                    f"hear: expected module {self.module!r} to define a function "
                    f"{function}, got {got}"
                )
        arguments = () if self.weights is None else (str(Path(self.weights).expanduser()),)
        self.weights_paths()  # checks that the weights exist
        try:
            model = hear.load_model(*arguments)
        except Exception as error:
            call = f"{self.module}.load_model({', '.join(map(repr, arguments))})"
            raise BackendError(f"hear: {call} failed: {error!r}") from error

        self._hear, self._model = hear, model
        self._sample_rate = self._positive_int_attribute("sample_rate")
        self._dimension = self._positive_int_attribute("scene_embedding_size")
        window_s, hop_s = self.params["window_s"], self.params["hop_s"]
        hop_s = window_s / 2 if hop_s is None else hop_s
        self._window_samples = int(round(window_s * self._sample_rate))
        self._hop_samples = int(round(hop_s * self._sample_rate))
        if self._window_samples <= 0 or self._hop_samples <= 0:
            raise ParameterError(
                f"hear: expected window_s and hop_s of at least one sample at "
                f"{self._sample_rate} Hz, got window_s={window_s}, hop_s={hop_s}"
            )
        # One small call now finds the input type the module takes and checks its output,
        # so a broken module fails here, with a clear message, not deep in a pipeline.
        probe = np.random.default_rng(0).uniform(-0.5, 0.5, (2, self._window_samples))
        self._input_kind = self._find_input_kind(probe.astype(np.float32))

    def _positive_int_attribute(self, attribute: str) -> int:
        value = getattr(self._model, attribute, None)
        integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not integer or value <= 0:
            raise BackendError(
                f"hear: expected the model from {self.module}.load_model() to have "
                f"{attribute} as a positive int, got {value!r}"
            )
        return int(value)

    def _find_input_kind(self, probe: np.ndarray) -> str:
        kinds = ["numpy", "torch"]
        module_class = _torch_module_class()
        if module_class is not None and isinstance(self._model, module_class):
            kinds.reverse()
        elif importlib.util.find_spec("torch") is None:
            kinds.remove("torch")
        failures = []
        for kind in kinds:
            try:
                X = self._scene_embeddings(probe, kind)
            except BackendError:
                raise
            except Exception as error:  # the module's own failure on this input type
                failures.append(f"{kind} input: {error!r}")
                continue
            if not np.isfinite(X).all():
                raise BackendError(
                    f"hear: expected finite embeddings from {self.module}."
                    "get_scene_embeddings on a short noise burst, got NaN or inf"
                )
            return kind
        raise BackendError(
            f"hear: {self.module}.get_scene_embeddings(audio, model) failed on audio of "
            f"shape {probe.shape}: " + "; ".join(failures)
        )

    def _to_input(self, windows: np.ndarray, kind: str):
        if kind == "numpy":
            return windows
        import torch

        audio = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        parameter = next(iter(getattr(self._model, "parameters", lambda: [])()), None)
        return audio if parameter is None else audio.to(parameter.device)

    def _no_grad(self, kind: str):
        if kind == "torch":
            import torch

            return torch.no_grad()
        return contextlib.nullcontext()

    def _scene_embeddings(self, windows: np.ndarray, kind: str) -> np.ndarray:
        with self._no_grad(kind):
            output = self._hear.get_scene_embeddings(self._to_input(windows, kind), self._model)
        X = _to_numpy(output)
        expected = (windows.shape[0], self._dimension)
        if X.shape != expected:
            raise BackendError(
                f"hear: expected {self.module}.get_scene_embeddings to return shape "
                f"{expected} for audio of shape {windows.shape}, got {X.shape}"
            )
        return X.astype(np.float32, copy=False)

    # ---------------------------------------------------------------- embedding
    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return self._scene_embeddings(windows, self._input_kind)

    # --------------------------------------------------------------- validation
    def validate(self, *, durations_s: Sequence[float] = (1.07, 1.98)) -> dict[str, Any]:
        """Check the whole HEAR API of the module, as hear-validator does.

        Beyond what loading checks (functions, ``sample_rate``, ``scene_embedding_size``,
        scene embedding shape), checks ``get_timestamp_embeddings`` on noise of each
        duration: embeddings ``(n_sounds, n_timestamps, timestamp_embedding_size)``,
        timestamps ``(n_sounds, n_timestamps)`` in ms, increasing, inside the audio.

        Returns
        -------
        report : dict
            What the module declares and which input type it takes.

        Raises
        ------
        BackendError
            At the first failed check, saying what was expected and what came.
        """
        self.load()
        report = {
            "module": self.module,
            "sample_rate": self._sample_rate,
            "scene_embedding_size": self._dimension,
            "input": self._input_kind,
        }
        function = getattr(self._hear, "get_timestamp_embeddings", None)
        if not callable(function):
            raise BackendError(
                f"hear: expected module {self.module!r} to define a function "
                "get_timestamp_embeddings, got none"
            )
        size = self._positive_int_attribute("timestamp_embedding_size")
        report["timestamp_embedding_size"] = size
        rng = np.random.default_rng(0)
        for duration_s in durations_s:
            n = int(duration_s * self._sample_rate)
            audio = rng.uniform(-1, 1, (2, n)).astype(np.float32)
            with self._no_grad(self._input_kind):
                output = function(self._to_input(audio, self._input_kind), self._model)
            if not isinstance(output, (tuple, list)) or len(output) != 2:
                raise BackendError(
                    f"hear: expected get_timestamp_embeddings to return (embeddings, "
                    f"timestamps), got {type(output).__name__}"
                )
            embeddings, timestamps = (_to_numpy(part) for part in output)
            if embeddings.ndim != 3 or embeddings.shape[0] != 2 or embeddings.shape[2] != size:
                raise BackendError(
                    f"hear: expected timestamp embeddings of shape (2, n_timestamps, "
                    f"{size}) for audio of shape {audio.shape}, got {embeddings.shape}"
                )
            if timestamps.shape != embeddings.shape[:2]:
                raise BackendError(
                    f"hear: expected timestamps of shape {embeddings.shape[:2]}, "
                    f"got {timestamps.shape}"
                )
            if timestamps.shape[1] > 1 and not (np.diff(timestamps, axis=1) > 0).all():
                raise BackendError("hear: expected timestamps to increase, got a step <= 0")
            if timestamps.size and (timestamps.min() < 0 or timestamps.max() > 1000 * duration_s):
                raise BackendError(
                    f"hear: expected timestamps within 0-{1000 * duration_s:g} ms, got "
                    f"{timestamps.min():g}-{timestamps.max():g} ms"
                )
        return report
