"""Reading any model file: one entry point, told apart by the file's own metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..exceptions import ModelFileError
from ._container import (
    ARRAYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    PIPELINE,
    Limits,
    check_members,
    read_container,
    read_npz,
)

__all__ = ["load_model", "KINDS"]

#: Every kind of model a file may hold.
KINDS = ("clip", "frames", "prototype-network", "anomaly", "graph-tagger", "network")


def _check_common(metadata: dict, where: str) -> None:
    for key in ("classes", "kind"):
        if key not in metadata:
            raise ModelFileError(f"{where}: model.json lacks {key!r}")
    classes = metadata["classes"]
    if not isinstance(classes, list) or not classes or \
            not all(isinstance(c, (str, int, float, bool)) for c in classes):
        raise ModelFileError(f"{where}: model.json's classes must be a non-empty list of names")
    if metadata["kind"] not in KINDS:
        raise ModelFileError(f"{where}: model kind {metadata['kind']!r}; this earmark reads {', '.join(KINDS)}")


def load_model(path, *, limits: Limits = Limits()):
    """The model in a file, of whatever kind, checked before anything is built.

    Parameters
    ----------
    path : str or Path
    limits : Limits
        Sizes beyond which a file is refused (see :class:`~earmark.models.Limits`).

    Returns
    -------
    Model
        An :class:`~earmark.models.EarmarkModel` (kinds ``clip``, ``frames``) or a
        :class:`~earmark.interpret.PrototypeNetwork` (kind ``prototype-network``), an
        :class:`~earmark.models.AnomalyModel` (kind ``anomaly``), a
        :class:`~earmark.graph.GraphTagger` (kind ``graph-tagger``) or a
        :class:`~earmark.networks.NetworkClassifier` (kind ``network``).

    Raises
    ------
    ModelFileError
        One message naming the file: missing, damaged, too big, written by a newer
        earmark, or holding anything earmark does not produce.

    Examples
    --------
    >>> load_model("no-such.earmark")
    Traceback (most recent call last):
    ...
    earmark.exceptions.ModelFileError: no-such.earmark: no such model file
    """
    from ._network import LEGACY_FORMAT, LEGACY_METADATA, network_from_parts

    path = Path(path)
    where = str(path)
    try:
        metadata, members = read_container(path, limits=limits)
    except ModelFileError as error:
        if "(no model.json)" not in str(error):
            raise
        # The prototype network's own format before the one model format.
        try:
            metadata, members = read_container(path, limits=limits, metadata_name=LEGACY_METADATA)
        except ModelFileError as legacy:
            if f"(no {LEGACY_METADATA})" in str(legacy):
                raise error from None
            raise
        if metadata.get("format") != LEGACY_FORMAT:
            raise ModelFileError(f"{where}: not an earmark model file") from None
        _check_version(metadata, where, newest=2)
        data = members.get(ARRAYS)
        if data is None or hashlib.sha256(data).hexdigest() != metadata.get("arrays_sha256"):
            raise ModelFileError(f"{where}: the arrays do not match their recorded hash; damaged or modified")
        metadata.setdefault("kind", "prototype-network")
        return network_from_parts(metadata, read_npz(data, limits=limits, where=where), where=where)

    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{where}: model.json does not describe an earmark model")
    version = _check_version(metadata, where, newest=FORMAT_VERSION)
    if version == 1:  # clip and frame models before the one format: one hash, no members list
        metadata.setdefault("kind", "clip")
        data = members.get(PIPELINE)
        if data is None or hashlib.sha256(data).hexdigest() != metadata.get("pipeline_sha256"):
            raise ModelFileError(f"{where}: the pipeline does not match its recorded hash; the file "
                                 f"was damaged or modified")
        metadata["members"] = {PIPELINE: None}
    else:
        check_members(metadata, members, where)
    _check_common(metadata, where)
    if metadata["kind"] == "prototype-network":
        if ARRAYS not in members:
            raise ModelFileError(f"{where}: a prototype network without arrays")
        return network_from_parts(metadata, read_npz(members[ARRAYS], limits=limits, where=where),
                                  where=where)
    if metadata["kind"] == "graph-tagger":
        from ._graph_file import graph_tagger_from_parts

        if ARRAYS not in members:
            raise ModelFileError(f"{where}: a graph tagger without arrays")
        return graph_tagger_from_parts(metadata, read_npz(members[ARRAYS], limits=limits, where=where),
                                       where=where)
    if metadata["kind"] == "network":
        from ._trained_network import trained_network_from_parts

        if ARRAYS not in members:
            raise ModelFileError(f"{where}: a network without arrays")
        return trained_network_from_parts(metadata, read_npz(members[ARRAYS], limits=limits, where=where),
                                          where=where)
    if metadata["kind"] == "anomaly":
        from ._anomaly_file import anomaly_from_parts

        _check_backend(metadata.get("backend"), where)
        if ARRAYS not in members:
            raise ModelFileError(f"{where}: an anomaly model without arrays")
        return anomaly_from_parts(metadata, read_npz(members[ARRAYS], limits=limits, where=where),
                                  where=where)
    from ._embedding_model import EarmarkModel
    from ._estimators import load_pipeline

    for key in ("learner", "backend"):
        if key not in metadata:
            raise ModelFileError(f"{where}: model.json lacks {key!r}")
    _check_backend(metadata["backend"], where)
    if PIPELINE not in members:
        raise ModelFileError(f"{where}: a {metadata['kind']} model without its pipeline")
    pipeline = load_pipeline(members[PIPELINE], where=where, limits=limits)
    return EarmarkModel.from_file_parts(metadata, pipeline, where=where)


def _check_version(metadata: dict, where: str, *, newest: int) -> int:
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{where}: model.json has no valid format_version")
    if version > newest:
        raise ModelFileError(
            f"{where}: written in model format {version} by a newer earmark; this one reads up "
            f"to format {newest}: upgrade earmark"
        )
    return version


def _check_backend(identity, where: str) -> None:
    """The backend named in a file: registered, with parameters its schema declares.

    Only the registry and earmark's own backend modules are consulted; nothing the file
    names is imported. Local parameters (the HEAR adapter's module) are asked of the user
    when the backend is built (:func:`earmark.backends.from_identity`).
    """
    from ..backends import check_identity
    from ..exceptions import ParameterError

    if not isinstance(identity, dict) or not isinstance(identity.get("backend"), str):
        raise ModelFileError(f"{where}: model.json's backend is not a backend identity")
    try:
        check_identity(identity, source=where)
    except ParameterError as error:
        message = str(error)
        raise ModelFileError(message if message.startswith(where) else f"{where}: {message}") from None
    dimension = identity.get("dimension")
    if dimension is not None and (not isinstance(dimension, int) or not 0 < dimension <= 1 << 20):
        raise ModelFileError(f"{where}: backend dimension {dimension!r}")
