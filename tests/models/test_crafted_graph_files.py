"""Hostile and damaged graph-tagger files: every one refused by ``load_model`` with one
``ModelFileError`` naming the file, before any network is built from it; and through
``earmark predict``, one clean error line."""

from __future__ import annotations

import io
import subprocess
import sys

import _crafted as crafted
import numpy as np
import pytest

from earmark.exceptions import ModelFileError
from earmark.graph import GraphTagger
from earmark.models import load_model


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A real graph-tagger file (log-mel regions, tiny), fitted on synthetic patches."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 16, 16)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 8)
    X[y == "b", :, :5] += 2
    tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=4, epochs=2, calibrate=False).fit(X, y)
    tagger.patch_config_ = {"sr": 16000, "n_mels": 16, "n_fft": 512, "hop_length": 256,
                            "patch_frames": 16, "patch_hop_frames": 8, "max_patches": 4,
                            "spectrogram": "db"}  # fmt: skip
    return tagger.save(tmp_path_factory.mktemp("graph") / "tagger.earmark")


def _arrays(members) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _with_arrays(members, arrays) -> dict[str, bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return {**members, "arrays.npz": buffer.getvalue()}


def _metadata(**changes):
    def change(metadata, members):
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".")
                metadata[outer] = {**metadata[outer], inner: value}
            else:
                metadata[key] = value
        return metadata, members

    return change


def _reshaped(metadata, members):
    arrays = _arrays(members)
    arrays["param/input.weight"] = np.zeros((5, 64), np.float32)  # hidden is 4
    metadata["shapes"]["param/input.weight"] = [5, 64]
    return metadata, _with_arrays(members, arrays)


def _nan(metadata, members):
    arrays = _arrays(members)
    arrays["param/label_nodes"][0, 0] = np.nan
    return metadata, _with_arrays(members, arrays)


def _missing(metadata, members):
    arrays = _arrays(members)
    del arrays["param/layer1.weight"]
    return metadata, _with_arrays(members, arrays)


def _extra(metadata, members):
    arrays = _arrays(members)
    arrays["param/backdoor"] = np.zeros(3, np.float32)
    return metadata, _with_arrays(members, arrays)


def _object_array(metadata, members):
    arrays = _arrays(members)
    arrays["param/readout.bias"] = arrays["param/readout.bias"].astype(np.int64)
    return metadata, _with_arrays(members, arrays)


CASES = {
    "wrong shape": (_reshaped, "input.weight"),
    "NaN weight": (_nan, "NaN"),
    "missing array": (_missing, "layer1.weight"),
    "extra array": (_extra, "unexpected arrays"),
    "integer weights": (_object_array, "dtype"),
    "absurd width": (_metadata(**{"params.hidden": 10**7}), "hidden"),
    "absurd depth": (_metadata(**{"params.n_layers": 1000}), "n_layers"),
    "zero pool": (_metadata(**{"params.pool": [0, 2]}), "pool"),
    "unknown mode": (_metadata(**{"params.mode": "os.system"}), "mode"),
    "unknown parameter": (_metadata(**{"params.module": "earmark_crafted_marker"}), "unknown"),
    "absurd temperature": (_metadata(temperature=1e9), "temperature"),
    "negative scale": (_metadata(scale=-1.0), "standardisation"),
    "node shape": (_metadata(node_shape=[64, 2, 10**6]), "node_shape"),
    "wrong node shape": (_metadata(node_shape=[64, 2, 3]), "shape"),
    "patch config": (_metadata(**{"patch_config.sr": 10**9}), "patch_config"),
    "multilabel text": (_metadata(multilabel="yes"), "multilabel"),
    "pooled path text": (_metadata(pooled_path="yes"), "pooled_path"),
    "pooled arrays, no pooled path": (_metadata(pooled_path=False), "unexpected arrays"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_graph_file_is_refused(case, source, tmp_path):
    make, expected = CASES[case]
    metadata, members = crafted.read(source)
    metadata, members = make(metadata, members)
    path = crafted.write(tmp_path / f"{case.replace(' ', '-')}.earmark", metadata, members)

    with pytest.raises(ModelFileError, match=expected) as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_a_file_from_before_the_pooled_path_still_loads(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 16, 16)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 8)
    X[y == "b", :, :5] += 2
    tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=4, epochs=2, calibrate=False,
                         pooled_path=False).fit(X, y)  # fmt: skip
    metadata, members = crafted.read(tagger.save(tmp_path / "new.earmark"))
    # What an earlier version wrote: neither the parameter nor the flag.
    del metadata["pooled_path"], metadata["params"]["pooled_path"], metadata["training"]["pooled_path"]
    old = crafted.write(tmp_path / "old.earmark", metadata, members)

    loaded = load_model(old)

    assert loaded.pooled_path_ is False and "pooled.weight" not in loaded.params_
    np.testing.assert_allclose(loaded.predict_proba(X), tagger.predict_proba(X), rtol=1e-6)


def test_the_real_file_loads_and_predict_refuses_a_crafted_one_cleanly(source, tmp_path):
    assert load_model(source).kind == "graph-tagger"
    metadata, members = _nan(*crafted.read(source))
    path = crafted.write(tmp_path / "nan.earmark", metadata, members)
    clip = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(clip, np.zeros(16000, np.float32), 16000)
    run = subprocess.run([sys.executable, "-m", "earmark", "predict", str(path), str(clip)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().startswith("error:") and "NaN" in run.stderr
