"""The graph tagger as a model kind: plain arrays in the one file format.

Kind ``"graph-tagger"``: ``model.json`` holds the estimator's parameters, the node
standardisation and shape, the temperature, the patch configuration and the training
summary; ``arrays.npz`` every learned array. Nothing is pickled. On loading, every
parameter is checked against sane ranges (the estimator's own check), the patch
configuration against the prototype network's ranges, every array's shape against the
metadata and the network's structure (:meth:`~earmark.graph.GraphTagger.check_state`),
and no array may hold NaN or infinite values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import EarmarkError, ModelFileError
from ..files import jsonable
from ._network import check_patch_config

__all__ = ["save_graph_tagger", "graph_tagger_from_parts"]

KIND = "graph-tagger"


def save_graph_tagger(tagger, path) -> Path:
    """Write a fitted :class:`~earmark.graph.GraphTagger` to ``path``."""
    from .. import __version__
    from ._container import write_container

    arrays = {f"param/{name}": value for name, value in tagger.params_.items()}
    classes = tagger.classes_
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in tagger.get_params().items()
              if not hasattr(v, "randint")}  # fmt: skip
    metadata = {
        "kind": KIND,
        "classes": jsonable(classes.tolist()),
        "classes_dtype": "object" if classes.dtype.kind == "O" else classes.dtype.str,
        "learner": "graph-tagger",
        "backend": None,
        "params": params,
        "multilabel": bool(tagger.multilabel_),
        "pooled_path": bool(tagger.pooled_path_),
        "mean": tagger.mean_,
        "scale": tagger.scale_,
        "temperature": tagger.temperature_,
        "node_shape": list(tagger.node_shape_),
        "patch_config": tagger.patch_config_,
        "loss_curve": [float(v) for v in tagger.loss_curve_],
        "shapes": {name: list(value.shape) for name, value in arrays.items()},
        "training": tagger.training,
        "earmark_version": __version__,
    }
    return write_container(path, metadata, arrays=arrays)


def graph_tagger_from_parts(metadata: dict, arrays: dict[str, np.ndarray], *, where: str):
    """Build and check a graph tagger from a file's metadata and arrays.

    Raises
    ------
    ModelFileError
    """
    from ..graph.tagger import GraphTagger, parameter_names

    try:
        params = metadata["params"]
        if not isinstance(params, dict):
            raise ModelFileError(f"{where}: params is not an object")
        unknown = sorted(set(params) - set(GraphTagger().get_params()))
        if unknown:
            raise ModelFileError(f"{where}: unknown graph tagger parameters {unknown}")
        tagger = GraphTagger(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        tagger._check_params()  # noqa: SLF001 - the estimator's own parameter check
        # Files written before the pooled path existed have none.
        tagger.pooled_path_ = metadata.get("pooled_path", False)
        if not isinstance(tagger.pooled_path_, bool):
            raise ModelFileError(f"{where}: pooled_path must be true or false")
        names = parameter_names(int(tagger.n_layers), tagger.pooled_path_)
        shapes = metadata["shapes"]
        extra = sorted(set(arrays) - {f"param/{n}" for n in names})
        if extra:
            raise ModelFileError(f"{where}: unexpected arrays {extra}")
        for name in (f"param/{n}" for n in names):
            if name not in arrays:
                raise ModelFileError(f"{where}: array {name} is missing")
            if list(arrays[name].shape) != shapes[name]:
                raise ModelFileError(f"{where}: array {name} has shape {arrays[name].shape}, "
                                     f"expected {tuple(shapes[name])}")  # fmt: skip
            if arrays[name].dtype.kind != "f":
                raise ModelFileError(f"{where}: array {name} has dtype {arrays[name].dtype}")
            if not np.isfinite(arrays[name]).all():
                raise ModelFileError(f"{where}: array {name} holds NaN or infinite values")
        dtype = object if metadata["classes_dtype"] == "object" else np.dtype(metadata["classes_dtype"])
        if np.dtype(dtype).kind not in "OUiub":
            raise ModelFileError(f"{where}: classes of dtype {dtype}")
        classes = metadata["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, (str, int, bool)) for c in classes):
            raise ModelFileError(f"{where}: classes must be a list of names")
        tagger.classes_ = np.asarray(classes, dtype=dtype)
        tagger.multilabel_ = metadata["multilabel"]
        if not isinstance(tagger.multilabel_, bool):
            raise ModelFileError(f"{where}: multilabel must be true or false")
        tagger.params_ = {name: arrays[f"param/{name}"].astype(np.float32) for name in names}
        tagger.mean_, tagger.scale_ = float(metadata["mean"]), float(metadata["scale"])
        tagger.temperature_ = float(metadata["temperature"])
        shape = metadata["node_shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in shape)):
            raise ModelFileError(f"{where}: node_shape {shape!r} is not three sizes in 1..4096")
        tagger.node_shape_ = tuple(shape)
        tagger.patch_config_ = check_patch_config(metadata.get("patch_config"), where)
        if tagger.patch_config_ is not None:
            from ..interpret.encoders import ENCODERS
            from ..interpret.features import PatchConfig

            if PatchConfig(**tagger.patch_config_).spectrogram != ENCODERS[tagger.encoder]:
                raise ModelFileError(f"{where}: the patch configuration does not suit the {tagger.encoder} encoder")
        tagger.loss_curve_ = [float(v) for v in metadata.get("loss_curve", [])]
        tagger.n_features_in_ = None
        tagger.check_state()
    except ModelFileError:
        raise
    except EarmarkError as error:
        raise ModelFileError(f"{where}: {error}") from None
    except Exception as error:  # missing keys, bad values: one story
        raise ModelFileError(
            f"{where}: cannot read the graph tagger ({type(error).__name__}: {error})"
        ) from None
    return tagger
