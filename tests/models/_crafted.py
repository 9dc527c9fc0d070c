"""Hostile and damaged model files, generated from real ones.

Each maker takes a directory and the real files it may start from (a saved logistic
regression, random forest and prototype network) and writes one crafted file. The
hash and member records are rewritten to match wherever the attack is on the content,
so the reader's deeper checks (types, arrays, ranges) are what must refuse it, not the
hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

#: A module on the test's PYTHONPATH that writes a marker file when imported: a model
#: file naming it must never cause it to be imported.
MARKER_MODULE = "earmark_crafted_marker"


def write_marker_module(directory: Path, marker: Path) -> None:
    (directory / f"{MARKER_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "def load_model(*a, **k):\n    raise SystemExit('loaded')\n"
        "class PrototypeClassifier:\n    pass\n"
    )


def read(path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
        members = {n: archive.read(n) for n in archive.namelist() if n != "model.json"}
    return metadata, members


def write(path: Path, metadata: dict | str | bytes, members: dict[str, bytes], *, rehash: bool = True) -> Path:
    if rehash and isinstance(metadata, dict):
        metadata = dict(metadata)
        metadata["members"] = {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in members.items()
        }
    text = metadata if isinstance(metadata, (str, bytes)) else json.dumps(metadata)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.json", text)
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# --------------------------------------------------------------- skops payloads
def _skops_parts(data: bytes) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        files = {n: archive.read(n) for n in archive.namelist() if n != "schema.json"}
    return schema, files


def _skops_bytes(schema: dict, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _find(node, predicate):
    """The first dict in a JSON tree for which ``predicate`` holds."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if predicate(item):
                return item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise LookupError("no such node")


def with_schema(source: Path, target: Path, change) -> Path:
    """``source`` with its skops schema changed in place by ``change(schema)``."""
    metadata, members = read(source)
    schema, files = _skops_parts(members["pipeline.skops"])
    change(schema)
    members["pipeline.skops"] = _skops_bytes(schema, files)
    return write(target, metadata, members)


def function_node(module: str, name: str) -> dict:
    return {"__class__": "function", "__module__": "builtins", "__loader__": "FunctionNode",
            "content": {"module_path": module, "function": name}, "is_json": False}


def hide_function(module: str, name: str):
    """Replace the logistic regression's ``max_iter`` with a function reference."""
    def change(schema):
        params = _find(schema, lambda n: n.get("__class__") == "LogisticRegression")
        params["content"]["content"]["max_iter"] = function_node(module, name)
    return change


def rename_module(class_name: str, module: str):
    def change(schema):
        _find(schema, lambda n: n.get("__class__") == class_name)["__module__"] = module
    return change


def object_node(module: str, name: str):
    """Put an object of ``module.name`` where the scaler sits."""
    def change(schema):
        node = _find(schema, lambda n: n.get("__class__") == "StandardScaler")
        node["__module__"], node["__class__"] = module, name
    return change


# ------------------------------------------------------------ forest node arrays
def with_tree_nodes(source: Path, target: Path, change) -> Path:
    """``source`` (a random forest) with the first tree's node table changed."""
    metadata, members = read(source)
    schema, files = _skops_parts(members["pipeline.skops"])
    tree = _find(schema, lambda n: n.get("__class__") == "Tree")
    nodes_file = tree["content"]["content"]["nodes"]["file"]
    nodes = np.load(io.BytesIO(files[nodes_file]), allow_pickle=False)
    change(nodes)
    buffer = io.BytesIO()
    np.save(buffer, nodes, allow_pickle=False)
    files[nodes_file] = buffer.getvalue()
    members["pipeline.skops"] = _skops_bytes(schema, files)
    return write(target, metadata, members)


def out_of_range_child(nodes):
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["left_child"][inner] = 10**6


def self_loop(nodes):
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["left_child"][inner] = inner


def out_of_range_feature(nodes):
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["feature"][inner] = 10**6


# ------------------------------------------------------------------- bombs
def zip_bomb(target: Path, *, gib: float = 2.0) -> Path:
    """A model file whose pipeline member inflates to ``gib`` GiB of zeros (~2 MB on disk)."""
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("model.json", json.dumps({"format": "earmark-model", "format_version": 2,
                                                   "kind": "clip", "classes": ["a"]}))
        with archive.open("pipeline.skops", "w", force_zip64=True) as handle:
            for _ in range(int(gib * 64)):
                handle.write(chunk)
    return target


def npz_bomb(source: Path, target: Path, *, mib: int = 1536) -> Path:
    """``source`` (a prototype network) whose arrays.npz holds one array of ``mib`` MiB of
    zeros, deflated inside the npz, so the npz member itself is small."""
    metadata, members = read(source)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with zipfile.ZipFile(io.BytesIO(members["arrays.npz"])) as original:
            for name in original.namelist():
                archive.writestr(name, original.read(name))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (mib << 18,)})
        with archive.open("bomb.npy", "w", force_zip64=True) as handle:
            handle.write(header.getvalue())
            for _ in range(mib // 16):
                handle.write(bytes(1 << 24))
    members["arrays.npz"] = buffer.getvalue()
    return write(target, metadata, members)


# ------------------------------------------------------------ network arrays
def with_arrays(source: Path, target: Path, change_arrays=None, change_metadata=None) -> Path:
    metadata, members = read(source)
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if change_arrays:
        change_arrays(arrays)
    if change_metadata:
        change_metadata(metadata)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    members["arrays.npz"] = buffer.getvalue()
    return write(target, metadata, members)


def nan_head(arrays):
    arrays["param/head.weight"] = arrays["param/head.weight"].copy()
    arrays["param/head.weight"][0, 0] = np.nan


def wrong_prototype_shape(arrays):
    arrays["param/prototypes"] = arrays["param/prototypes"][:, :, :1]


def huge_patches(metadata):
    for key in ("patch_frames", "n_mels", "sr"):
        metadata["patch_config"][key] *= 100_000


def prototype_class_out_of_range(metadata):
    metadata["prototype_class"] = [10**6] * len(metadata["prototype_class"])


def nan_section_statistics(metadata):
    """An anomaly model whose normal-set spread is NaN (JSON's NaN, which Python reads)."""
    metadata["sections"][0]["clip_spread"] = float("nan")


def nan_domain_threshold(metadata):
    """An anomaly model whose domain threshold is NaN: the domain would flag nothing."""
    metadata["sections"][0]["domains"][0]["clip_threshold"] = float("nan")


def nan_normal_set(arrays):
    arrays["section0/normal_"] = arrays["section0/normal_"].copy()
    arrays["section0/normal_"][0, 0] = np.nan


def narrow_normal_set(arrays):
    arrays["section0/normal_"] = arrays["section0/normal_"][:, :3]
