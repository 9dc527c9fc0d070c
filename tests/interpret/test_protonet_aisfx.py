"""The prototype network on aiSFX's frozen convolutions: real Philharmonia notes, its
prototypes are still real training segments, NumPy matches torch, the file round-trips,
refinement prunes it, and the patches are exactly what the aiSFX backend reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earmark.audio import load
from earmark.backends.aisfx import AisfxBackend
from earmark.exceptions import ParameterError
from earmark.interpret.encoders import aisfx_backend
from earmark.interpret.features import PatchConfig, log_mel_patches, manifest_patches
from earmark.interpret.protonet import PrototypeNetwork, clip_proba, fit_manifest
from earmark.interpret.refine import refine_manifest
from earmark.manifest import Manifest
from earmark.models import predict_files

pytestmark = pytest.mark.skipif(
    not AisfxBackend.is_available(), reason="the aisfx encoder needs torch and the aisfx wheel"
)
INSTRUMENTS = ("flute", "trombone", "cello")
CONFIG = PatchConfig.aisfx(max_patches=1)


def notes(philharmonia_dir, part: int, take: int) -> Manifest:
    """Every other note of each instrument (part 0 or 1: disjoint, same pitch range)."""
    rows = [{"path": str(p), "labels": name} for name in INSTRUMENTS
            for p in sorted((philharmonia_dir / name).glob("*.mp3"))[part::2][:take]]  # fmt: skip
    assert len(rows) == take * len(INSTRUMENTS)
    return Manifest(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def fitted(philharmonia_dir):
    import torch

    torch.set_num_threads(1)
    train = notes(philharmonia_dir, 0, 10)
    network = fit_manifest(
        train, CONFIG, encoder="aisfx", channels=(8, 8), prototypes_per_class=2,
        epochs=15, head_epochs=10, random_state=0,
    )  # fmt: skip
    return network, train


def test_patches_are_the_backends_network_input(philharmonia_dir):
    path = sorted((philharmonia_dir / "flute").glob("*.mp3"))[0]
    y, _ = load(path, sr=44100)

    X, start_s = log_mel_patches(y, PatchConfig.aisfx())

    window = np.pad(y, (0, max(0, CONFIG.patch_samples - y.size)))[: CONFIG.patch_samples]
    np.testing.assert_array_equal(X[0], aisfx_backend().log_mel(window[None])[0])
    assert X.shape[1:] == (100, 96) and start_s[0] == 0.0
    with pytest.raises(ParameterError, match="PatchConfig.aisfx"):
        PatchConfig(spectrogram="aisfx")
    with pytest.raises(ParameterError, match="reads 'aisfx' patches"):
        fit_manifest(notes(philharmonia_dir, 0, 2), PatchConfig(), encoder="aisfx")


def test_classifies_held_out_notes_and_its_prototypes_are_real_segments(fitted, philharmonia_dir):
    network, train = fitted
    test = notes(philharmonia_dir, 1, 6)
    patches = manifest_patches(test, CONFIG)

    P, ok = clip_proba(network, patches, len(test))
    accuracy = np.mean(network.classes_[P[ok].argmax(axis=1)] == test.y[ok])

    assert accuracy >= 0.6  # three instruments: chance is a third
    assert network.encode(patches.X).shape[1:] == (8, 12, 12)
    for j, segment in enumerate(network.prototype_segments_):
        y, _ = load(segment["path"], sr=44100, start_s=segment["start_s"])
        patch, _ = log_mel_patches(y, CONFIG)
        np.testing.assert_allclose(network.params_["prototypes"][j], network.encode(patch)[0], atol=1e-4)
        assert str(train.y[list(train.paths).index(segment["path"])]) == network.classes_[network.prototype_class_[j]]


def test_numpy_inference_matches_torch(fitted, philharmonia_dir):
    import torch

    from earmark.interpret._protonet_torch import ProtoNetwork

    network, _ = fitted
    X = manifest_patches(notes(philharmonia_dir, 1, 2), CONFIG).X
    module = ProtoNetwork(network.params_, "aisfx")
    with torch.no_grad():
        logits, Z, D = module(torch.from_numpy(network._inputs(X)))

    np.testing.assert_allclose(network.encode(X), Z.numpy(), atol=1e-4)
    np.testing.assert_allclose(network.predict_proba(X), torch.softmax(logits, 1).numpy(), atol=1e-4)


def test_file_round_trip_keeps_the_encoder(fitted, philharmonia_dir, tmp_path):
    network, _ = fitted
    paths = list(notes(philharmonia_dir, 1, 1).paths) + [str(tmp_path / "missing.wav")]

    loaded = PrototypeNetwork.load(network.save(tmp_path / "notes.protonet"))

    assert loaded.encoder == "aisfx" and loaded.patch_config_["spectrogram"] == "aisfx"
    rows, again = [p.to_dict() for p in predict_files(network, paths)], [p.to_dict() for p in predict_files(loaded, paths)]
    assert rows == again
    assert len(rows) == 4 and all(row["label"] in INSTRUMENTS for row in rows[:3])
    assert rows[3]["label"] is None and "missing.wav: file not found" in rows[3]["error"]


def test_refinement_prunes_channels_and_keeps_real_prototypes(fitted):
    network, train = fitted

    refined, report = refine_manifest(network, train, epochs=2, min_channel_share=0.9)

    assert report.n_channels_after < report.n_channels_before
    assert report.n_parameters_after < report.n_parameters_before
    assert refined.params_["conv1.weight"].shape[2:] == (1, 1)
    patches = manifest_patches(train, CONFIG)
    for j, segment in enumerate(refined.prototype_segments_):
        np.testing.assert_allclose(
            refined.params_["prototypes"][j], refined.encode(patches.X[[segment["row"]]])[0], atol=1e-4
        )


def test_frozen_maps_are_remembered_by_content_not_by_array(philharmonia_dir):
    from earmark.interpret.encoders import frozen_maps

    X = manifest_patches(notes(philharmonia_dir, 1, 1), CONFIG).X
    first = frozen_maps("aisfx", X)
    again = frozen_maps("aisfx", X.copy())
    changed = X.copy()
    changed[0] = 0.0  # silence in the first patch

    other = frozen_maps("aisfx", changed)

    assert again is first and not first.flags.writeable
    np.testing.assert_array_equal(other[1:], first[1:])
    assert not np.allclose(other[0], first[0])
    np.testing.assert_array_equal(first, aisfx_backend().feature_maps(X))


def test_without_the_aisfx_wheel_fitting_is_one_clear_error(philharmonia_dir, monkeypatch):
    import importlib.util

    from earmark.exceptions import BackendUnavailableError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aisfx" else real_find_spec(name, *a))  # fmt: skip
    aisfx_backend.cache_clear()
    try:
        with pytest.raises(BackendUnavailableError, match="pip install"):
            fit_manifest(notes(philharmonia_dir, 0, 2), encoder="aisfx")
    finally:
        aisfx_backend.cache_clear()
