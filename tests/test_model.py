"""Saved models: exact round trips, and files that must be refused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import skops.io

from earmark.exceptions import (
    BackendError,
    EarmarkError,
    ModelFileError,
    ParameterError,
)
from earmark.models import FORMAT_VERSION, EarmarkModel, predict_files

# Small fits on the FSDD embeddings: one BLAS thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def trained(fsdd):
    train = fsdd.speakers != "theo"
    return EarmarkModel.train(fsdd.X[train], fsdd.y[train], backend=fsdd.identity)


@pytest.mark.parametrize("learner", ["logreg", "svm-rbf", "knn", "random-forest"])
def test_save_and_load_give_identical_probabilities(fsdd, tmp_path, learner):
    params = {"n_estimators": 50} if learner == "random-forest" else {}
    model = EarmarkModel.train(
        fsdd.X[::2], fsdd.y[::2], backend=fsdd.identity, learner=learner, **params
    )
    path = model.save(tmp_path / "digits.earmark")
    loaded = EarmarkModel.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(fsdd.X), model.predict_proba(fsdd.X))
    assert loaded.predict(fsdd.X).tolist() == model.predict(fsdd.X).tolist()
    assert loaded.classes_.tolist() == [str(d) for d in range(10)]
    assert loaded.learner == learner
    assert loaded.backend_identity == fsdd.identity


def test_file_records_what_the_model_is(trained, tmp_path):
    path = trained.save(tmp_path / "digits.earmark")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["model.json", "pipeline.skops"]
        metadata = json.loads(archive.read("model.json"))
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["backend"]["backend"] == "mfcc"
    assert metadata["backend"]["weights_sha256"] == trained.backend_identity["weights_sha256"]
    assert metadata["training"]["n_items"] == 200
    assert metadata["training"]["class_counts"] == {str(d): 20 for d in range(10)}
    assert metadata["training"]["earmark_version"]
    assert metadata["classes"] == [str(d) for d in range(10)]


def test_integer_labels_survive_the_round_trip(fsdd, tmp_path):
    labels = fsdd.y.astype(int)
    model = EarmarkModel.train(fsdd.X, labels, backend=fsdd.identity)
    loaded = EarmarkModel.load(model.save(tmp_path / "int.earmark"))
    assert loaded.classes_.tolist() == list(range(10))
    assert loaded.predict(fsdd.X[:5]).tolist() == model.predict(fsdd.X[:5]).tolist()


def test_unseen_speaker_files_are_classified_and_a_bad_file_gets_an_error_row(
    trained, fsdd_dir, tmp_path
):
    theo = [fsdd_dir / "recordings" / f"{d}_theo_{take}.wav" for d in range(10) for take in (5, 6)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    paths = [theo[0], broken, *theo[1:], tmp_path / "missing.wav"]
    rows = [p.to_dict() for p in predict_files(trained, paths, top_k=3)]
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    assert "broken.wav" in rows[1]["error"] and rows[1]["label"] is None
    assert "not found" in rows[-1]["error"]
    good = [row for row in rows if row["error"] is None]
    assert len(good) == 20
    for row in good:
        assert len(row["top_k"]) == 3
        assert row["label"] == row["top_k"][0]["label"]
        assert row["score"] >= row["top_k"][1]["score"] >= row["top_k"][2]["score"]
    truth = [p.name.split("_")[0] for p in theo]
    accuracy = np.mean([row["label"] == t for row, t in zip(good, truth)])
    assert accuracy > 0.5, f"{accuracy:.0%} of theo's unseen takes"


@pytest.mark.parametrize(
    "learner, params",
    [("prototype", {}), ("prototype-hierarchical", {"taxonomy": {"0": "low", "1": "low", "2": "low", "3": "high", "4": "high"}})],
)
def test_prototype_models_answer_unknown_for_digits_they_never_heard(
    fsdd, fsdd_dir, tmp_path, learner, params
):
    """Trained on digits 0-4 (takes 0-3 of six speakers); the same speakers' takes 5-6."""
    known = np.isin(fsdd.y, list("01234"))
    model = EarmarkModel.train(
        fsdd.X[known], fsdd.y[known], backend=fsdd.identity, learner=learner, **params
    )
    loaded = EarmarkModel.load(model.save(tmp_path / "five.earmark"))
    assert loaded.can_reject
    speakers = sorted(set(fsdd.speakers))
    paths = [
        fsdd_dir / "recordings" / f"{d}_{s}_{take}.wav"
        for d in range(10) for s in speakers for take in (5, 6)
    ]
    rows = [p.to_dict() for p in predict_files(loaded, paths)]
    unknown = np.array([row["unknown"] for row in rows])
    assert all(row["label"] == "unknown" for row in rows if row["unknown"])
    assert all(row["top_k"] and row["top_k"][0]["label"] in "01234" for row in rows)
    is_known = np.array([p.name[0] in "01234" for p in paths])
    # Measured: 7 % of known and 43 % of unknown digits rejected.
    assert unknown[is_known].mean() <= 0.3
    assert unknown[~is_known].mean() >= unknown[is_known].mean() + 0.2
    kept = [p.to_dict() for p in predict_files(loaded, paths, reject_unknown=False)]
    assert not any(row["unknown"] for row in kept)


def test_a_model_that_cannot_reject_says_so(trained):
    assert not trained.can_reject
    with pytest.raises(EarmarkError, match="cannot say 'unknown'"):
        trained.is_unknown(np.zeros((1, trained.backend_identity["dimension"])))


def test_backend_with_other_weights_is_refused(trained):
    assert trained.backend().name == "mfcc"
    other = EarmarkModel(
        trained.pipeline,
        backend_identity={**trained.backend_identity, "weights_sha256": "0" * 64},
        learner="logreg",
    )
    with pytest.raises(BackendError, match="installed weights"):
        other.backend()
    with pytest.warns(UserWarning, match="installed weights"):
        other.backend(strict=False)


def test_embeddings_of_the_wrong_dimension_are_refused(trained):
    with pytest.raises(ParameterError, match="dimension 120.*got 16"):
        trained.predict(np.zeros((2, 16), dtype=np.float32))


# ------------------------------------------------------------- refused files
def _rewrite(path, pipeline_bytes=None, **metadata_changes):
    """Write a model file with another pipeline or metadata, hash made to match."""
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
        original = archive.read("pipeline.skops")
    pipeline_bytes = original if pipeline_bytes is None else pipeline_bytes
    metadata["members"]["pipeline.skops"] = {
        "size": len(pipeline_bytes), "sha256": hashlib.sha256(pipeline_bytes).hexdigest()
    }
    metadata.update(metadata_changes)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps(metadata))
        archive.writestr("pipeline.skops", pipeline_bytes)


def test_a_pipeline_with_a_foreign_type_is_refused_by_name(trained, tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = trained.save(tmp_path / "tampered.earmark")
    smuggled = Pipeline([("run", FunctionTransformer(np.log1p)), *trained.pipeline.steps])
    _rewrite(path, skops.io.dumps(smuggled))
    with pytest.raises(ModelFileError, match="FunctionTransformer"):
        EarmarkModel.load(path)


def test_a_function_reference_is_refused(trained, tmp_path):
    """An os.system reference hidden where skops would resolve a function."""
    path = trained.save(tmp_path / "tampered.earmark")
    pipeline_bytes = skops.io.dumps(trained.pipeline)
    with zipfile.ZipFile(io.BytesIO(pipeline_bytes)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    schema["content"]["content"]["memory"] = {
        "__class__": "function",
        "__module__": "builtins",
        "__loader__": "FunctionNode",
        "content": {"module_path": "os", "function": "system"},
        "__id__": 1,
    }
    members["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    _rewrite(path, buffer.getvalue())
    with pytest.raises(ModelFileError, match="os.system"):
        EarmarkModel.load(path)


def test_a_truncated_file_is_refused(trained, tmp_path):
    path = trained.save(tmp_path / "cut.earmark")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="damaged"):
        EarmarkModel.load(path)


def test_a_flipped_byte_in_the_pipeline_is_caught(trained, tmp_path):
    path = trained.save(tmp_path / "flipped.earmark")
    with zipfile.ZipFile(path) as archive:
        metadata = archive.read("model.json")
        pipeline_bytes = bytearray(archive.read("pipeline.skops"))
    pipeline_bytes[len(pipeline_bytes) // 2] ^= 0xFF
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", metadata)
        archive.writestr("pipeline.skops", bytes(pipeline_bytes))
    with pytest.raises(ModelFileError, match="does not match its recorded size and hash"):
        EarmarkModel.load(path)


def test_other_files_are_refused(tmp_path, fsdd_dir):
    with pytest.raises(ModelFileError, match="no such model file"):
        EarmarkModel.load(tmp_path / "absent.earmark")
    with pytest.raises(ModelFileError, match="not an earmark model file"):
        EarmarkModel.load(fsdd_dir / "recordings" / "0_theo_0.wav")
    empty_zip = tmp_path / "empty.earmark"
    zipfile.ZipFile(empty_zip, "w").close()
    with pytest.raises(ModelFileError, match="not an earmark model file"):
        EarmarkModel.load(empty_zip)


def test_a_file_from_a_newer_earmark_is_refused(trained, tmp_path):
    path = trained.save(tmp_path / "future.earmark")
    _rewrite(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ModelFileError, match="newer earmark"):
        EarmarkModel.load(path)


# ------------------------------------------------------------ frame (MIL) models
@pytest.fixture(scope="module")
def mil_model(fsdd):
    """A multiple-instance model on frame embeddings of digits 0-3, plus its bags."""
    from earmark.backends import get_backend
    from earmark.embedding import embed_file

    backend = get_backend("mfcc")
    keep = np.flatnonzero(np.isin(fsdd.y, list("0123")))[:48]
    bags = [embed_file(backend, fsdd.paths[i]).X for i in keep]
    model = EarmarkModel.train_mil(
        bags, fsdd.y[keep], backend=backend, pooling="max", epochs=15, hidden=16
    )
    return model, bags, [fsdd.paths[i] for i in keep]


def test_a_frame_model_round_trips_with_identical_frame_scores(mil_model, tmp_path):
    model, bags, _ = mil_model
    path = model.save(tmp_path / "mil.earmark")
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
    assert metadata["kind"] == "frames"
    assert metadata["learner"] == "mil-max"
    assert metadata["training"]["n_items"] == 48
    assert sum(metadata["training"]["class_counts"].values()) == 48
    loaded = EarmarkModel.load(path)
    assert loaded.kind == "frames" and loaded.learner == "mil-max"
    X = np.concatenate(bags[:5])
    np.testing.assert_array_equal(loaded.segment_proba(X), model.segment_proba(X))
    assert loaded.segment_proba(X).shape == (len(X), 4)
    np.testing.assert_array_equal(loaded.predict_proba(bags), model.predict_proba(bags))


def test_a_frame_model_classifies_files_from_their_frames(mil_model):
    model, _, paths = mil_model
    rows = [p.to_dict() for p in predict_files(model, paths, top_k=2)]
    truth = [path.name.split("_")[0] for path in paths]
    assert all(row["error"] is None and len(row["top_k"]) == 2 for row in rows)
    assert np.mean([row["label"] == t for row, t in zip(rows, truth)]) > 0.5


def test_only_frame_models_score_frames(trained, mil_model, tmp_path):
    model, _, _ = mil_model
    assert trained.kind == "clip" and trained.metadata()["kind"] == "clip"
    assert not hasattr(trained, "segment_proba")
    assert hasattr(model, "segment_proba")
    with pytest.raises(ParameterError, match="dimension"):
        model.segment_proba(np.zeros((3, 7)))
    # A file of format 1, written before model kinds existed, is read as a clip model.
    path = trained.save(tmp_path / "old.earmark")
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
        pipeline_bytes = archive.read("pipeline.skops")
    del metadata["kind"], metadata["members"]
    metadata["format_version"] = 1
    metadata["pipeline_sha256"] = hashlib.sha256(pipeline_bytes).hexdigest()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps(metadata))
        archive.writestr("pipeline.skops", pipeline_bytes)
    assert EarmarkModel.load(path).kind == "clip"
