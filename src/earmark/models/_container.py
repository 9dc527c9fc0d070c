"""The one model file format: a zip of JSON metadata, NumPy arrays and a skops payload.

Every kind of model (:data:`earmark.models.KINDS`) is saved as a zip holding

- ``model.json``: format name and version, the model's kind, classes, backend identity,
  training summary, kind-specific metadata, and the size and SHA-256 of every other
  member (``members``);
- ``arrays.npz`` (optional): plain NumPy arrays, read with ``allow_pickle=False``;
- ``pipeline.skops`` (optional): scikit-learn parts, read by :mod:`earmark.models._skops`
  against an allow-list.

A model file may come from a stranger, so the reader trusts nothing it has not
checked, and checks before it spends: the file's size; every member's declared size,
the sum of them and their compression ratio before anything is inflated (a zip member
is never inflated past its declared size, so the declared sizes bound memory); nested
zips (npz and skops are zips) the same way; the JSON's size and nesting depth; each
``.npy`` header's shape and dtype against the bytes present; the hashes. Every failure
is one :class:`~earmark.exceptions.ModelFileError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..exceptions import ModelFileError
from ..files import atomic_path, jsonable

__all__ = ["Limits", "write_container", "read_container", "read_npz", "check_zip_bytes",
           "FORMAT_NAME", "FORMAT_VERSION", "METADATA", "ARRAYS", "PIPELINE"]

FORMAT_NAME = "earmark-model"
#: 1: clip and frame models (``pipeline_sha256``); 2: every kind, ``members`` hashes.
FORMAT_VERSION = 2
METADATA = "model.json"
ARRAYS = "arrays.npz"
PIPELINE = "pipeline.skops"

_MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What a model file may hold before the reader refuses it.

    The defaults fit every model earmark trains on tens of thousands of items (a
    nearest-neighbour learner keeps its training embeddings) and keep a hostile file's
    cost far under 1 GiB.
    """

    file_bytes: int = 512 * _MIB
    member_bytes: int = 192 * _MIB
    total_bytes: int = 384 * _MIB
    metadata_bytes: int = 16 * _MIB
    #: Inflated / deflated size, checked for members above ``ratio_floor_bytes``.
    compression_ratio: float = 1000.0
    ratio_floor_bytes: int = 16 * _MIB
    json_depth: int = 64
    members: int = 4096


def write_container(path, metadata: Mapping[str, Any], *, arrays: Mapping[str, np.ndarray] | None = None,
                    pipeline: bytes | None = None) -> Path:
    """Write a model file atomically; ``metadata`` gains the format and member hashes.

    Parameters
    ----------
    path : str or Path
    metadata : dict
        Must hold ``kind``; made JSON-safe with :func:`earmark.files.jsonable`.
    arrays : dict of str to np.ndarray, optional
    pipeline : bytes, optional
        A skops payload.

    Returns
    -------
    Path
    """
    payloads: dict[str, bytes] = {}
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
        payloads[ARRAYS] = buffer.getvalue()
    if pipeline is not None:
        payloads[PIPELINE] = pipeline
    document = dict(jsonable(dict(metadata)))
    document.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        members={name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                 for name, data in payloads.items()},
    )
    text = json.dumps(document, indent=2, allow_nan=False)
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(METADATA, text)
            for name, data in payloads.items():
                archive.writestr(name, data)
    return Path(path)


def check_zip_bytes(archive: zipfile.ZipFile, limits: Limits, where: str, *, budget: int | None = None) -> int:
    """Refuse a zip whose declared contents break ``limits``; return their total size.

    Nothing is inflated: only the central directory is read.
    """
    infos = archive.infolist()
    if len(infos) > limits.members:
        raise ModelFileError(f"{where} holds {len(infos)} members; at most {limits.members} allowed")
    total = 0
    for info in infos:
        if info.file_size > limits.member_bytes:
            raise ModelFileError(
                f"{where}: member {info.filename!r} would inflate to {info.file_size:,} bytes; "
                f"at most {limits.member_bytes:,} allowed"
            )
        if info.file_size > limits.ratio_floor_bytes and \
                info.file_size > limits.compression_ratio * max(info.compress_size, 1):
            raise ModelFileError(
                f"{where}: member {info.filename!r} compresses {info.file_size / max(info.compress_size, 1):,.0f}"
                f" to 1 (a zip bomb?); at most {limits.compression_ratio:,.0f} allowed"
            )
        total += info.file_size
    cap = limits.total_bytes if budget is None else budget
    if total > cap:
        raise ModelFileError(f"{where} would inflate to {total:,} bytes; at most {cap:,} allowed")
    return total


def _loads_json(data: bytes, limits: Limits, where: str) -> Any:
    if len(data) > limits.metadata_bytes:
        raise ModelFileError(f"{where}: metadata of {len(data):,} bytes; at most {limits.metadata_bytes:,}")
    # Depth is counted before parsing: the parser recurses once per level.
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limits.json_depth:
                raise ModelFileError(f"{where}: metadata nested deeper than {limits.json_depth} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1
        deepest = max(deepest, depth)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ModelFileError(f"{where}: metadata is not valid JSON ({error})") from None


def read_container(path, *, limits: Limits = Limits(), metadata_name: str = METADATA,
                   what: str = "an earmark model file") -> tuple[dict, dict[str, bytes]]:
    """Read a model file's metadata and members, checking sizes before inflating anything.

    Parameters
    ----------
    path : str or Path
    limits : Limits
    metadata_name : str
        The JSON member (``protonet.json`` in the prototype network's old format).
    what : str
        The kind of file, for messages.

    Returns
    -------
    metadata : dict
    members : dict of str to bytes
        Every other member, inflated.

    Raises
    ------
    ModelFileError
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ModelFileError(f"{where}: no such model file")
    size = path.stat().st_size
    if size > limits.file_bytes:
        raise ModelFileError(f"{where}: {size:,} bytes; a model file may have at most {limits.file_bytes:,}")
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_bytes(archive, limits, where)
            names = archive.namelist()
            if metadata_name not in names:
                raise ModelFileError(f"{where}: not {what} (no {metadata_name})")
            metadata = _loads_json(archive.read(metadata_name), limits, where)
            members = {name: archive.read(name) for name in names if name != metadata_name}
    except ModelFileError:
        raise
    except Exception as error:  # BadZipFile, CRC mismatch, zlib.error, truncation: one story
        raise ModelFileError(f"{where}: damaged or not {what} ({type(error).__name__}: {error})") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: {metadata_name} is not a JSON object")
    return metadata, members


def check_members(metadata: dict, members: dict[str, bytes], where: str) -> None:
    """Every member listed in ``metadata['members']`` present, with its size and hash."""
    declared = metadata.get("members")
    if not isinstance(declared, dict):
        raise ModelFileError(f"{where}: model.json lists no members")
    for name, record in declared.items():
        if name not in members:
            raise ModelFileError(f"{where}: member {name!r} is missing")
        if not isinstance(record, dict) or record.get("size") != len(members[name]) \
                or record.get("sha256") != hashlib.sha256(members[name]).hexdigest():
            raise ModelFileError(
                f"{where}: member {name!r} does not match its recorded size and hash; the file "
                f"was damaged or modified"
            )
    extra = set(members) - set(declared)
    if extra:
        raise ModelFileError(f"{where}: unexpected members {sorted(extra)}")


#: dtypes an array in a model file may have: numbers, booleans, fixed-width text.
_ARRAY_KINDS = set("biufU")


def read_npz(data: bytes, *, limits: Limits = Limits(), where: str = "arrays.npz") -> dict[str, np.ndarray]:
    """The arrays of an npz payload, each header checked against the bytes present.

    Raises
    ------
    ModelFileError
        A bomb, a pickled (object) array, a header whose shape and dtype need more bytes
        than the member holds, or a damaged payload.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip_bytes(archive, limits, where)
            for info in archive.infolist():
                raw = archive.read(info)
                stream = io.BytesIO(raw)
                version = np.lib.format.read_magic(stream)
                header = {(1, 0): np.lib.format.read_array_header_1_0,
                          (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if header is None:
                    raise ModelFileError(f"{where}: array {info.filename!r} has npy version {version}")
                shape, fortran, dtype = header(stream)
                if dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
                    raise ModelFileError(f"{where}: array {info.filename!r} has dtype {dtype}; "
                                         f"only numbers, booleans and text are allowed")
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                if any(n < 0 for n in shape) or count * dtype.itemsize != len(raw) - stream.tell():
                    raise ModelFileError(
                        f"{where}: array {info.filename!r} declares shape {shape} of {dtype}, "
                        f"which does not match the {len(raw) - stream.tell():,} bytes it holds"
                    )
                array = np.frombuffer(raw, dtype=dtype, count=count, offset=stream.tell())
                array = array.reshape(shape, order="F" if fortran else "C").copy()
                arrays[info.filename.removesuffix(".npy")] = array
    except ModelFileError:
        raise
    except Exception as error:
        raise ModelFileError(f"{where}: damaged arrays ({type(error).__name__}: {error})") from None
    return arrays
