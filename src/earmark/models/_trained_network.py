"""A network trained on the user's clips as a model kind: plain arrays in the one format.

Kind ``"network"`` (:class:`earmark.networks.NetworkClassifier`): ``model.json`` holds the
architecture, the estimator's parameters, the front end, input standardisation and the
training summary; ``arrays.npz`` the module's state (weights and batch-norm statistics)
as ``param/<name>``. Nothing is pickled. On loading, the architecture and front end are
checked by name and range, and every array against the state of a freshly built module
of that architecture: same names, same shapes, finite values; only then are the weights
loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import EarmarkError, ModelFileError
from ..files import jsonable

__all__ = ["save_trained_network", "trained_network_from_parts"]

KIND = "network"


def save_trained_network(network, path) -> Path:
    """Write a fitted :class:`~earmark.networks.NetworkClassifier` (with a front end) to ``path``."""
    from .. import __version__
    from ._container import write_container

    if network.frontend_ is None:
        raise EarmarkError("only a network fitted from audio files (earmark.networks.fit_manifest) "
                           "can be saved: it must know how to read new files")  # fmt: skip
    arrays = {f"param/{name}": value for name, value in network.params_.items()}
    classes = network.classes_
    metadata = {
        "kind": KIND,
        "classes": jsonable(classes.tolist()),
        "classes_dtype": "object" if classes.dtype.kind == "O" else classes.dtype.str,
        "learner": network.architecture,
        "backend": None,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in network.get_params().items()
                   if not hasattr(v, "randint")},  # fmt: skip
        "frontend": network.frontend_,
        "input_shape": list(network.input_shape_),
        "mean": network.mean_,
        "scale": network.scale_,
        "shapes": {name: list(value.shape) for name, value in arrays.items()},
        "history": jsonable(network.history_),
        "training": network.training,
        "earmark_version": __version__,
    }
    return write_container(path, metadata, arrays=arrays)


def trained_network_from_parts(metadata: dict, arrays: dict[str, np.ndarray], *, where: str):
    """Build and check a network from a file's metadata and arrays.

    Raises
    ------
    ModelFileError
    """
    from ..networks import ARCHITECTURES, Frontend, NetworkClassifier
    from ..training import require_torch

    try:
        params = metadata["params"]
        if not isinstance(params, dict):
            raise ModelFileError(f"{where}: params is not an object")
        known = NetworkClassifier().get_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ModelFileError(f"{where}: unknown network parameters {unknown}")
        network = NetworkClassifier(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        spec = network._check_params()  # noqa: SLF001 - the estimator's own parameter check
        if metadata.get("learner") != network.architecture or network.architecture not in ARCHITECTURES:
            raise ModelFileError(f"{where}: architecture {network.architecture!r} does not match the file")
        frontend = Frontend(**metadata["frontend"])
        if frontend.name != spec.frontend:
            raise ModelFileError(f"{where}: network {spec.name!r} reads {spec.frontend!r}, "
                                 f"the file says {frontend.name!r}")  # fmt: skip
        shape = tuple(metadata["input_shape"])
        if shape != frontend.shape:
            raise ModelFileError(f"{where}: input shape {shape} does not match front end {frontend.shape}")
        dtype = object if metadata["classes_dtype"] == "object" else np.dtype(metadata["classes_dtype"])
        if np.dtype(dtype).kind not in "OUiub":
            raise ModelFileError(f"{where}: classes of dtype {dtype}")
        classes = metadata["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or \
                not all(isinstance(c, (str, int, bool)) for c in classes):
            raise ModelFileError(f"{where}: classes must be a list of at least 2 names")
        mean, scale = float(metadata["mean"]), float(metadata["scale"])
        if not (np.isfinite(mean) and np.isfinite(scale) and scale > 0):
            raise ModelFileError(f"{where}: input standardisation is not finite and positive")
        require_torch(f"network {network.architecture!r}")
        from ..networks import check_state

        state = {name[len("param/"):]: value for name, value in arrays.items() if name.startswith("param/")}
        if set(arrays) - {f"param/{k}" for k in state}:
            raise ModelFileError(f"{where}: unexpected arrays {sorted(set(arrays) - {f'param/{k}' for k in state})}")
        check_state(network.architecture, state, n_classes=len(classes), n_mels=shape[2])
        network.classes_ = np.asarray(classes, dtype=dtype)
        network.params_ = state
        network.input_shape_ = shape
        network.mean_, network.scale_ = mean, scale
        network.frontend_ = frontend.to_dict()
        network.history_ = dict(metadata.get("history") or {})
        summary = metadata.get("training") or {}
        network.fit_rows_ = np.asarray(summary.get("fit_rows", []), dtype=np.int64)
        network.validation_rows_ = np.asarray(summary.get("validation_rows", []), dtype=np.int64)
        network.validation_groups_ = list(summary.get("validation_groups", []))
        network.n_features_in_ = int(np.prod(shape))
    except ModelFileError:
        raise
    except EarmarkError as error:
        raise ModelFileError(f"{where}: {error}") from None
    except Exception as error:  # missing keys, bad values: one story
        raise ModelFileError(f"{where}: cannot read the network ({type(error).__name__}: {error})") from None
    return network
