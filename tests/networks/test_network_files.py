"""A trained network saved as a model file: loads through load_model and predicts the same
probabilities; a file with arrays of the wrong shape, NaN weights or a forged front end
is refused with one clear error naming it."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("torch")

from earmark.exceptions import ModelFileError  # noqa: E402
from earmark.models import load_model, predict_files  # noqa: E402
from earmark.networks import NetworkClassifier, fit_manifest  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A vgg-small network fitted (2 epochs) on 18 bundled digits (3 digits, 3 speakers)."""
    from earmark.datasets import load_demo

    manifest = load_demo()
    keep = np.isin(manifest.y, ["0", "1", "2"]) & np.isin(manifest.groups, sorted(set(manifest.groups))[:3])
    manifest = manifest.subset(np.flatnonzero(keep)[::2])
    network = fit_manifest(manifest, "vgg-small", epochs=2)
    path = network.save(tmp_path_factory.mktemp("network") / "digits.earmark")
    return network, path, [str(p) for p in manifest.paths]


def test_saved_network_loads_and_predicts_the_same(saved):
    network, path, files = saved
    loaded = load_model(path)
    assert isinstance(loaded, NetworkClassifier) and loaded.kind == "network"
    assert loaded.classes_.tolist() == network.classes_.tolist()
    before = network.score_files(files[:6])
    after = loaded.score_files(files[:6])
    np.testing.assert_allclose(after.P, before.P, atol=1e-6)
    assert loaded.training["validation_rows"] == network.training["validation_rows"]
    rows = predict_files(loaded, files[:2])
    assert all(row.label in network.classes_ for row in rows)


def _rewrite(source, target, *, arrays=None, metadata=None):
    with zipfile.ZipFile(source) as archive:
        meta = json.loads(archive.read("model.json"))
        data = archive.read("arrays.npz")
    loaded = dict(np.load(io.BytesIO(data), allow_pickle=False))
    if arrays:
        arrays(loaded)
    if metadata:
        metadata(meta)
    buffer = io.BytesIO()
    np.savez(buffer, **loaded)
    data = buffer.getvalue()
    meta["members"] = {"arrays.npz": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("model.json", json.dumps(meta))
        archive.writestr("arrays.npz", data)
    return target


def _first_conv(arrays):
    return next(name for name in arrays if name.endswith("weight") and arrays[name].ndim == 4)


@pytest.mark.parametrize("attack, message", [
    (dict(arrays=lambda a: a.update({_first_conv(a): a[_first_conv(a)][:, :, :2]})), r"has shape"),
    (dict(arrays=lambda a: a[_first_conv(a)].__setitem__((0, 0, 0, 0), np.nan)), r"NaN"),
    (dict(arrays=lambda a: a.pop("param/head.bias")), r"missing \['head.bias'\]"),
    (dict(arrays=lambda a: a.update({"param/extra": np.zeros(3, np.float32)})), r"unexpected \['extra'\]"),
    (dict(metadata=lambda m: m["frontend"].update(n_samples=10**12)), r"n_samples"),
    (dict(metadata=lambda m: m["frontend"].update(name="aisfx-block3", n_samples=103424)), r"reads 'log-mel'"),
    (dict(metadata=lambda m: m["params"].update(architecture="resnet-1000")), r"unknown network"),
    (dict(metadata=lambda m: m.update(scale=0.0)), r"standardisation"),
])  # fmt: skip
def test_crafted_network_files_are_refused_with_the_reason(saved, tmp_path, attack, message):
    _network, path, _files = saved
    crafted = _rewrite(path, tmp_path / "crafted.earmark", **attack)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_model(crafted)
    assert str(crafted) in str(caught.value)
