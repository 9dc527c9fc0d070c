"""A model trained on a fused backend: saved, loaded and rebuilt through the registry only."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from _crafted import MARKER_MODULE, read, write, write_marker_module

from earmark.backends import get_backend
from earmark.exceptions import BackendError, ModelFileError
from earmark.learners import BlockScaler, PartsClassifier
from earmark.models import EarmarkModel, load_model, predict_files


@pytest.fixture(scope="module")
def saved(tmp_path_factory, fsdd_dir):
    """A logistic regression on placeholder+mfcc embeddings of 24 real digits."""
    from earmark.pipeline import clip_embeddings
    from earmark.store import MemoryStore

    backend = get_backend("placeholder+mfcc", **{"mfcc.n_mfcc": 13})
    paths = [str(fsdd_dir / "recordings" / f"{d}_jackson_{t}.wav") for d in (0, 1, 2) for t in range(8)]
    X, ok, _ = clip_embeddings(paths, backend, MemoryStore(), progress=False)
    model = EarmarkModel.train(X, [p.split("/")[-1][0] for p in paths], backend=backend)
    path = model.save(tmp_path_factory.mktemp("fused") / "digits.earmark")
    return path, paths, backend


def test_the_model_keeps_its_parts_learners_and_rebuilds_its_parts(saved, fsdd_dir, tmp_path):
    path, paths, backend = saved
    model = load_model(path)
    parts = model.pipeline.named_steps["classifier"].estimators_[0]
    assert isinstance(parts, PartsClassifier) and tuple(parts.blocks) == (16, 78)
    # Other learners see all blocks at once, scaled block by block; that is kept too.
    X = np.random.default_rng(0).normal(size=(30, 94))
    svm = EarmarkModel.train(X, np.repeat(list("abc"), 10), backend=backend, learner="svm-linear")
    svm = load_model(svm.save(tmp_path / "svm.earmark"))
    scaler = svm.pipeline.named_steps["scale"]
    assert isinstance(scaler, BlockScaler) and tuple(scaler.blocks) == (16, 78)
    rebuilt = model.backend()
    assert rebuilt.name == "placeholder+mfcc" and rebuilt.cache_key() == backend.cache_key()
    predictions = predict_files(model, paths[:3])
    assert [p.label for p in predictions] == ["0", "0", "0"]


def _with_backend(path, target, change):
    metadata, members = read(path)
    change(metadata["backend"])
    return write(target, metadata, members)


def test_an_unknown_part_is_refused_when_read(saved, tmp_path):
    def unknown_part(identity):
        identity["backend"] = "placeholder+nonesuch"
        identity["parts"][1]["backend"] = "nonesuch"
        identity["params"] = {"placeholder": {}, "nonesuch": {}}

    crafted = _with_backend(saved[0], tmp_path / "unknown.earmark", unknown_part)
    with pytest.raises(ModelFileError, match="unknown backend 'nonesuch'"):
        load_model(crafted)


def test_a_part_parameter_the_schema_lacks_is_refused_when_read(saved, tmp_path):
    def smuggled(identity):
        identity["parts"][1]["params"]["weights"] = "/etc/passwd"

    crafted = _with_backend(saved[0], tmp_path / "smuggled.earmark", smuggled)
    with pytest.raises(ModelFileError, match="no parameter 'weights'"):
        load_model(crafted)


def test_a_hear_part_module_from_the_file_is_never_imported(saved, tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    write_marker_module(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))

    def hear_part(identity):
        identity["backend"] = "hear+mfcc"
        identity["parts"][0] = {"backend": "hear", "params": {"module": MARKER_MODULE}}
        identity["params"] = {"hear": {"module": MARKER_MODULE}, "mfcc": identity["params"]["mfcc"]}

    crafted = _with_backend(saved[0], tmp_path / "hear.earmark", hear_part)
    model = load_model(crafted)  # the file's structure is sound ...
    with pytest.raises(BackendError, match=r"--backend-param hear\.module="):
        model.backend()  # ... but its module is asked of the user, never read from it
    assert not marker.exists() and MARKER_MODULE not in sys.modules
