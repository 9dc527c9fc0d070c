"""The prototype network as a model kind: saved as plain arrays in the one file format.

Kind ``"prototype-network"``: ``model.json`` holds the estimator's parameters, input
standardisation, patch configuration, where each prototype comes from and the training
summary; ``arrays.npz`` every learned array plus the prototypes' spectrograms and sounds.
Nothing is pickled. On loading, the patch configuration is checked against sane ranges,
every array's shape against the metadata and the network's own structure
(:meth:`~earmark.interpret.protonet.PrototypeNetwork.check_state`), and prototype
classes against the class list.

Files of the network's own earlier format (``protonet.json``, versions 1 and 2) still load
through the same checked reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import EarmarkError, ModelFileError
from ..files import jsonable

__all__ = ["save_network", "network_from_parts", "LEGACY_FORMAT", "LEGACY_METADATA"]

KIND = "prototype-network"
#: The network's own format before the one model format (read, never written).
LEGACY_FORMAT = "earmark-prototype-network"
LEGACY_METADATA = "protonet.json"

#: Patch configuration values a file may set: beyond these, cutting patches would cost
#: memory and time out of all proportion to any real model.
_PATCH_RANGES = {
    "sr": (1000, 192_000), "n_mels": (1, 512), "n_fft": (16, 16384), "hop_length": (1, 16384),
    "patch_frames": (1, 4096), "patch_hop_frames": (1, 4096), "max_patches": (1, 10_000),
}


def save_network(network, path) -> Path:
    """Write a fitted :class:`~earmark.interpret.protonet.PrototypeNetwork` to ``path``."""
    from .. import __version__
    from ..interpret.protonet import PARAMETER_NAMES
    from ._container import write_container

    arrays = {f"param/{name}": network.params_[name] for name in PARAMETER_NAMES}
    arrays["prototype_patches"] = network.prototype_patches_
    if network.prototype_audio_ is not None:
        arrays["prototype_audio"] = network.prototype_audio_
    classes = network.classes_
    metadata = {
        "kind": KIND,
        "classes": jsonable(classes.tolist()),
        "classes_dtype": "object" if classes.dtype.kind == "O" else classes.dtype.str,
        "learner": "prototype-network",
        "backend": None,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in network.get_params().items()
                   if not hasattr(v, "randint")},  # fmt: skip
        "mean": network.mean_,
        "scale": network.scale_,
        "prototype_class": network.prototype_class_.tolist(),
        "prototype_segments": network.prototype_segments_,
        "patch_config": network.patch_config_,
        "loss_curve": [float(v) for v in network.loss_curve_],
        "n_parameters": network.n_parameters_,
        "shapes": {name: list(value.shape) for name, value in arrays.items()},
        "refinement": getattr(network, "refinement_", None),
        "training": network.training,
        "earmark_version": __version__,
    }
    return write_container(path, metadata, arrays=arrays)


def check_patch_config(config: Any, where: str) -> dict | None:
    """A file's patch configuration, refused outside sane ranges (None stays None)."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: patch_config is not an object")
    for name, (low, high) in _PATCH_RANGES.items():
        value = config.get(name)
        if value is None and name == "max_patches":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ModelFileError(
                f"{where}: patch_config {name}={value!r} is outside {low}..{high}; refusing it"
            )
    return config


def network_from_parts(metadata: dict, arrays: dict[str, np.ndarray], *, where: str):
    """Build and check a network from a file's metadata and arrays.

    Raises
    ------
    ModelFileError
    """
    from ..interpret.features import PatchConfig
    from ..interpret.protonet import PARAMETER_NAMES, PrototypeNetwork

    try:
        shapes = metadata["shapes"]
        for name in [f"param/{n}" for n in PARAMETER_NAMES] + ["prototype_patches"]:
            if name not in arrays:
                raise ModelFileError(f"{where}: array {name} is missing")
            if list(arrays[name].shape) != shapes[name]:
                raise ModelFileError(f"{where}: array {name} has shape {arrays[name].shape}, "
                                     f"expected {tuple(shapes[name])}")  # fmt: skip
        for name, array in arrays.items():
            if array.dtype.kind not in "fiub":
                raise ModelFileError(f"{where}: array {name} has dtype {array.dtype}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ModelFileError(f"{where}: array {name} holds NaN or infinite values")
        config = check_patch_config(metadata.get("patch_config"), where)
        params = metadata["params"]
        if not isinstance(params, dict):
            raise ModelFileError(f"{where}: params is not an object")
        known = PrototypeNetwork().get_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ModelFileError(f"{where}: unknown network parameters {unknown}")
        network = PrototypeNetwork(**{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in params.items()})  # fmt: skip
        network._check_params()  # noqa: SLF001 - the estimator's own parameter check
        dtype = object if metadata["classes_dtype"] == "object" else np.dtype(metadata["classes_dtype"])
        if np.dtype(dtype).kind not in "OUiub":
            raise ModelFileError(f"{where}: classes of dtype {dtype}")
        classes = metadata["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, (str, int, bool)) for c in classes):
            raise ModelFileError(f"{where}: classes must be a list of names")
        network.classes_ = np.asarray(classes, dtype=dtype)
        network.params_ = {name: arrays[f"param/{name}"].astype(np.float32) for name in PARAMETER_NAMES}
        network.mean_, network.scale_ = float(metadata["mean"]), float(metadata["scale"])
        if not (np.isfinite(network.mean_) and np.isfinite(network.scale_) and network.scale_ > 0):
            raise ModelFileError(f"{where}: input standardisation is not finite and positive")
        network.prototype_class_ = np.asarray(metadata["prototype_class"], dtype=np.int64)
        network.prototype_segments_ = list(metadata["prototype_segments"])
        network.prototype_patches_ = arrays["prototype_patches"].astype(np.float32)
        network.prototype_audio_ = arrays.get("prototype_audio")
        network.patch_config_ = config
        network.loss_curve_ = [float(v) for v in metadata.get("loss_curve", [])]
        network.refinement_ = metadata.get("refinement")
        network.n_features_in_ = int(np.prod(network.prototype_patches_.shape[1:]))
        if config is not None:
            PatchConfig(**config)
        network.check_state()
    except ModelFileError:
        raise
    except EarmarkError as error:
        raise ModelFileError(f"{where}: {error}") from None
    except Exception as error:  # missing keys, bad values: one story
        raise ModelFileError(
            f"{where}: cannot read the prototype network ({type(error).__name__}: {error})"
        ) from None
    return network
