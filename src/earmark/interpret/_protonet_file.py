"""One file for a :class:`~earmark.interpret.protonet.PrototypeNetwork`.

A zip holding ``protonet.json`` (format name and version, classes, estimator parameters,
input standardisation, patch configuration, where each prototype comes from, training
summary, and the SHA-256 of the arrays) and ``arrays.npz`` (every learned array plus
the prototypes' spectrograms and sounds, as plain NumPy arrays). Loading never unpickles
(``allow_pickle=False``) and checks the hash, the format version and every array's
shape against the metadata. The file is written beside its target and renamed into
place, so an interrupted save never leaves half a model.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .._archive import read_members, write_members
from ..exceptions import ModelFileError

FORMAT_NAME = "earmark-prototype-network"
#: 2: the ``encoder`` parameter (a pretrained, frozen start); version 1 files read as
#: ``encoder="log-mel"``.
FORMAT_VERSION = 2
_METADATA = "protonet.json"
_ARRAYS = "arrays.npz"


def is_prototype_network_file(path) -> bool:
    """True if ``path`` is a zip holding ``protonet.json``: told by content, not suffix.

    Both model formats are zips; this one is known by its metadata member. A file that
    claims to be one is handed to :func:`load`, which then reports any damage precisely;
    anything unreadable (missing, not a zip) gives False, so the other loader says why.

    Examples
    --------
    >>> is_prototype_network_file("no-such-file.protonet")
    False
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return _METADATA in archive.namelist()
    except Exception:  # OSError, BadZipFile, truncation: not one we can recognise
        return False


def save(network, path) -> Path:
    from .. import __version__
    from .protonet import PARAMETER_NAMES

    path = Path(path)
    arrays = {f"param/{name}": network.params_[name] for name in PARAMETER_NAMES}
    arrays["prototype_patches"] = network.prototype_patches_
    if network.prototype_audio_ is not None:
        arrays["prototype_audio"] = network.prototype_audio_
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    array_bytes = buffer.getvalue()
    classes = network.classes_
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "classes": [_plain(c) for c in classes.tolist()],
        "classes_dtype": "object" if classes.dtype.kind == "O" else classes.dtype.str,
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
        "arrays_sha256": hashlib.sha256(array_bytes).hexdigest(),
        "earmark_version": __version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(metadata, indent=2, default=_plain)
    return write_members(path, {_METADATA: text, _ARRAYS: array_bytes})


def load(path):
    from .protonet import PARAMETER_NAMES, PrototypeNetwork

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such prototype network file")
    members = read_members(path, (_METADATA, _ARRAYS), what="a prototype network file",
                           json_names=(_METADATA,))
    metadata, array_bytes = members[_METADATA], members[_ARRAYS]
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a prototype network file (format is not {FORMAT_NAME!r})")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in format {version!r}; this earmark reads up to {FORMAT_VERSION}: "
            f"upgrade earmark"
        )
    if hashlib.sha256(array_bytes).hexdigest() != metadata.get("arrays_sha256"):
        raise ModelFileError(f"{path}: the arrays do not match their recorded hash; damaged or modified")
    try:
        with np.load(io.BytesIO(array_bytes), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        shapes = metadata["shapes"]
        for name in [f"param/{n}" for n in PARAMETER_NAMES] + ["prototype_patches"]:
            if list(arrays[name].shape) != shapes[name]:
                raise ModelFileError(f"{path}: array {name} has shape {arrays[name].shape}, "
                                     f"expected {tuple(shapes[name])}")  # fmt: skip
        network = PrototypeNetwork(**{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in metadata["params"].items()})  # fmt: skip
        dtype = object if metadata["classes_dtype"] == "object" else np.dtype(metadata["classes_dtype"])
        network.classes_ = np.asarray(metadata["classes"], dtype=dtype)
        network.params_ = {name: arrays[f"param/{name}"] for name in PARAMETER_NAMES}
        network.mean_, network.scale_ = float(metadata["mean"]), float(metadata["scale"])
        network.prototype_class_ = np.asarray(metadata["prototype_class"], dtype=np.int64)
        network.prototype_segments_ = list(metadata["prototype_segments"])
        network.prototype_patches_ = arrays["prototype_patches"]
        network.prototype_audio_ = arrays.get("prototype_audio")
        network.patch_config_ = metadata.get("patch_config")
        network.loss_curve_ = list(metadata.get("loss_curve", []))
        network.refinement_ = metadata.get("refinement")
        network.n_features_in_ = int(np.prod(network.prototype_patches_.shape[1:]))
    except ModelFileError:
        raise
    except Exception as error:  # missing keys, bad values: one story
        raise ModelFileError(
            f"{path}: cannot read the prototype network ({type(error).__name__}: {error})"
        ) from None
    return network


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
