"""The prototype network: learns from real clips, its prototypes are real training
segments, NumPy inference matches torch, and the file round-trips exactly."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest
from _protonet_data import SMALL, WORDS, labels_of, trained
from sklearn.base import clone

from earmark.audio import load
from earmark.exceptions import ModelFileError, ParameterError
from earmark.interpret.features import PatchConfig, log_mel_patches
from earmark.interpret.protonet import PrototypeNetwork, clip_proba
from earmark.models import predict_files


@pytest.fixture(scope="module")
def small(speech_commands_dir):
    return trained(speech_commands_dir)


def test_fits_real_clips_better_than_chance(small):
    network, manifest, patches = small
    y = labels_of(manifest, patches)

    accuracy = np.mean(network.predict(patches.X) == y)

    assert network.classes_.tolist() == sorted(WORDS)
    assert network.n_prototypes_ == 2 * len(WORDS)
    assert accuracy > 0.6  # three classes: chance is a third
    assert network.loss_curve_[-1] < network.loss_curve_[0]


def test_each_prototype_is_the_latent_of_a_real_training_segment(small):
    network, manifest, patches = small
    config = PatchConfig(**network.patch_config_)
    for j, segment in enumerate(network.prototype_segments_):
        # Cut the segment again from its file, as a user would from the page's caption.
        y, _ = load(segment["path"], sr=config.sr, start_s=segment["start_s"])
        patch, _ = log_mel_patches(y, PatchConfig(**{**network.patch_config_, "max_patches": 1}))
        np.testing.assert_allclose(network.prototype_patches_[j], patch[0], atol=1e-3)
        np.testing.assert_allclose(
            network.params_["prototypes"][j], network.encode(patch)[0], atol=1e-4
        )
        # Pushed within its own class, and the sound is that segment's.
        assert manifest.y[patches.item[segment["row"]]] == network.classes_[network.prototype_class_[j]]
        n = min(len(y), config.patch_samples)
        np.testing.assert_allclose(network.prototype_audio_[j][:n], y[:n], atol=1e-6)


def test_numpy_inference_matches_the_torch_network(small):
    import torch

    from earmark.interpret._protonet_torch import ProtoNetwork

    network, _, patches = small
    module = ProtoNetwork(network.params_)
    with torch.no_grad():
        logits, Z, D = module(torch.from_numpy(network._inputs(patches.X)))

    np.testing.assert_allclose(network.encode(patches.X), Z.numpy(), atol=1e-4)
    np.testing.assert_allclose(network.distances(patches.X), D.numpy(), rtol=1e-3, atol=1e-4)
    expected = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(network.predict_proba(patches.X), expected, atol=1e-4)


def test_save_and_load_give_identical_predictions(small, tmp_path):
    network, _, patches = small

    path = network.save(tmp_path / "words.protonet")
    loaded = PrototypeNetwork.load(path)

    np.testing.assert_array_equal(loaded.predict_proba(patches.X), network.predict_proba(patches.X))
    assert loaded.predict(patches.X).tolist() == network.predict(patches.X).tolist()
    assert loaded.prototype_segments_ == network.prototype_segments_
    np.testing.assert_array_equal(loaded.prototype_audio_, network.prototype_audio_)
    assert loaded.get_params() == network.get_params()
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
    assert metadata["format"] == "earmark-model" and metadata["kind"] == "prototype-network"
    assert metadata["n_parameters"] == network.n_parameters_
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_load_refuses_damaged_and_foreign_files(small, tmp_path):
    network, _, _ = small
    path = network.save(tmp_path / "good.protonet")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "damaged.protonet").write_bytes(bytes(data))
    (tmp_path / "text.protonet").write_text("not a model")

    for name in ("damaged.protonet", "text.protonet", "missing.protonet"):
        with pytest.raises(ModelFileError, match=name):
            PrototypeNetwork.load(tmp_path / name)


def test_predict_files_classifies_clips_and_names_a_bad_file(small, tmp_path):
    network, manifest, patches = small
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")

    rows = [p.to_dict() for p in predict_files(network, [manifest.paths[0], bad])]

    P, ok = clip_proba(network, patches, len(manifest))
    assert rows[0]["error"] is None and rows[0]["label"] == network.classes_[P[0].argmax()]
    assert 0 <= rows[0]["nearest_prototype"] < network.n_prototypes_
    assert rows[1]["label"] is None and "broken.wav" in rows[1]["error"]


def test_same_seed_same_network_and_clone_keeps_parameters(small):
    _, manifest, patches = small
    X, y = patches.X[:12], labels_of(manifest, patches)[:12]
    X, y = np.r_[X, patches.X[-12:]], np.r_[y, labels_of(manifest, patches)[-12:]]
    params = {**SMALL, "epochs": 2, "head_epochs": 1}

    first = PrototypeNetwork(**params).fit(X, y)
    second = clone(first).fit(X, y)

    for name, value in first.params_.items():
        np.testing.assert_array_equal(value, second.params_[name], err_msg=name)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((4, 10, 16)), ["a", "b"] * 2, "multiples of 4"),
        (np.zeros((4, 16, 16)), ["a"] * 4, "at least 2 classes"),
        (np.zeros((4, 16, 16)), ["a", "b"], "expected 4 labels"),
        (np.full((4, 16, 16), np.nan), ["a", "b"] * 2, "NaN"),
    ],
)
def test_bad_input_is_refused_with_what_was_expected(X, y, message):
    with pytest.raises(ParameterError, match=message):
        PrototypeNetwork(epochs=1).fit(X, y)


def test_predicting_patches_of_another_shape_is_refused(small):
    network, _, _ = small
    with pytest.raises(ParameterError, match="expected patches of shape"):
        network.predict(np.zeros((2, 32, 64), dtype=np.float32))


@pytest.mark.parametrize("epochs", [1, 2, 5])
def test_short_runs_on_few_patches_train_and_keep_real_prototypes(epochs):
    # Fewer optimiser steps than a learning-rate warm-up would like (refinement retrains
    # for a few epochs only): training must still run and end with pushed prototypes.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 16, 16)).astype(np.float32)
    X[3:, :, :8] += 3
    y = ["a"] * 3 + ["b"] * 3
    network = PrototypeNetwork(channels=(4, 4), prototypes_per_class=1, epochs=epochs,
                               head_epochs=1).fit(X, y)  # fmt: skip

    assert np.isfinite(network.loss_curve_).all() and len(network.loss_curve_) == epochs + 1
    rows = [segment["row"] for segment in network.prototype_segments_]
    np.testing.assert_allclose(network.encode(X[rows]), network.params_["prototypes"], atol=1e-5)


def test_learns_an_easy_problem_almost_perfectly():
    # After the push and head tuning, not just before: the prototypes the network ends
    # with must still separate what it learned to separate.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 16, 16)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 20)
    X[y == "b", :, :5] += 2
    X[y == "c", :, 11:] += 2
    network = PrototypeNetwork(channels=(8, 8), epochs=20, head_epochs=5).fit(X, y)

    assert np.mean(network.predict(X) == y) >= 0.95


def test_a_version_1_file_without_an_encoder_reads_as_log_mel(small, tmp_path):
    network, _, patches = small
    path = network.save(tmp_path / "new.protonet")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(members.pop("model.json"))
    assert metadata["format_version"] == 2 and metadata["params"]["encoder"] == "log-mel"
    # What earmark wrote before the one model format and before encoders existed.
    metadata.update(format="earmark-prototype-network", format_version=1,
                    arrays_sha256=hashlib.sha256(members["arrays.npz"]).hexdigest())
    del metadata["params"]["encoder"], metadata["members"], metadata["kind"]
    members["protonet.json"] = json.dumps(metadata).encode()
    old = tmp_path / "old.protonet"
    with zipfile.ZipFile(old, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    loaded = PrototypeNetwork.load(old)

    assert loaded.encoder == "log-mel"
    np.testing.assert_array_equal(loaded.predict_proba(patches.X), network.predict_proba(patches.X))


def test_predict_files_names_every_file_when_none_can_be_read(small, tmp_path):
    network, _, _ = small
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    missing = tmp_path / "missing.wav"

    rows = [p.to_dict() for p in predict_files(network, [broken, missing])]

    assert [row["label"] for row in rows] == [None, None]
    assert rows[0]["error"].startswith(f"{broken}: ") and "could not be" not in rows[0]["error"]
    assert rows[1]["error"] == f"{missing}: file not found"
