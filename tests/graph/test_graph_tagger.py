"""The graph tagger: single- and multi-label fits, links, calibration, parameters against
the prototype network, and a saved file that round-trips to identical probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from _graph_data import notes, trained

from earmark.backends.aisfx import AisfxBackend
from earmark.exceptions import ParameterError
from earmark.graph import GraphTagger, node_maps
from earmark.models import load_model, predict_files

needs_aisfx = pytest.mark.skipif(
    not AisfxBackend.is_available(), reason="the aisfx encoder needs torch and the aisfx wheel"
)


def synthetic(n=48, seed=0):
    """Log-mel-like patches: class "b" is loud in the low bands, "c" late in time."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 32, 32)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], n // 3)
    X[y == "b", :, :8] += 3
    X[y == "c", 24:, :] += 3
    return X, y


def test_single_label_fit_links_and_calibration():
    X, y = synthetic()
    tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=8, epochs=80, batch_size=16).fit(X, y)

    P = tagger.predict_proba(X)
    links = tagger.links(X)
    assert P.shape == (48, 3) and np.allclose(P.sum(axis=1), 1)
    assert np.mean(tagger.predict(X) == y) > 0.9
    assert links.shape == (48, 3, 4, 4) and np.allclose(links.sum(axis=(2, 3)), 1, atol=1e-5)
    # The temperature was fitted on held-out patches, within its bounds.
    assert 0.05 <= tagger.temperature_ <= 20 and tagger.temperature_ != 1.0
    # Class "c" lives in the last 8 frames: its label node looks there more than
    # anywhere else (a uniform link would put a quarter of its mass there).
    c = list(tagger.classes_).index("c")
    by_time = links[y == "c", c].sum(axis=-1).mean(axis=0)
    assert by_time.argmax() == 3 and by_time[3] > 0.28


def test_multi_label_from_label_sets_and_the_hypergraph():
    X, y = synthetic()
    sets = [(label,) for label in y] + [("b", "c")] * 16
    X2 = np.concatenate([X, X[16:32].copy()])
    X2[48:, 24:, :] += 3  # loud low bands (b) and loud late frames (c)
    for mode in ("graph", "hypergraph"):
        tagger = GraphTagger(encoder="log-mel", mode=mode, pool=(1, 1), hidden=8, epochs=20,
                             k=4).fit(X2, sets)  # fmt: skip
        P = tagger.predict_proba(X2)
        assert tagger.multilabel_ and P.shape == (64, 3)
        assert not np.allclose(P.sum(axis=1), 1)  # one sigmoid per tag
        assert (tagger.predict(X2[48:]).sum(axis=1) >= 1).all()


def test_the_pooled_path_carries_what_the_hidden_width_cannot():
    # One hidden dimension, layer-normalised, is always zero: the label nodes then read
    # nothing, and only the pooled path can tell the classes apart.
    X, y = synthetic()
    accuracy = {}
    for pooled in (True, False):
        tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=1, epochs=60, batch_size=16,
                             calibrate=False, pooled_path=pooled).fit(X, y)  # fmt: skip
        accuracy[pooled] = np.mean(tagger.predict(X) == y)
        assert ("pooled.weight" in tagger.params_) is pooled and tagger.pooled_path_ is pooled
    assert accuracy[True] > 0.9 and accuracy[False] < 0.5, accuracy


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_pooled_path_started_at_the_probe_answers_as_the_probe(multilabel):
    """pooled_init="probe" (the default): the pooled path starts as a standardised logistic regression
    (C=1) on the pooled maps. With a learning rate too small to move it, the pooled
    path's logits are that regression's, folded into one linear map."""
    from sklearn.linear_model import LogisticRegression

    X, y = synthetic()
    labels = [(label,) for label in y[:40]] + [("b", "c")] * 8 if multilabel else y
    tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=4, epochs=1, learning_rate=1e-9,
                         calibrate=False, pooled_init="probe").fit(X, labels)  # fmt: skip
    assert tagger.pooled_path_ and tagger.multilabel_ is multilabel
    maps = (node_maps("log-mel", X, (1, 1)) - tagger.mean_) / tagger.scale_  # as the tagger reads
    pooled = maps.mean(axis=3).max(axis=2).astype(np.float64)  # as aiSFX pools
    ours = pooled @ tagger.params_["pooled.weight"].T + tagger.params_["pooled.bias"]
    Z = (pooled - pooled.mean(axis=0)) / pooled.std(axis=0)
    if multilabel:
        targets = np.array([[c in row for c in tagger.classes_] for row in labels])
        expected = np.column_stack([
            LogisticRegression(C=1.0, max_iter=1000).fit(Z, targets[:, c]).decision_function(Z)
            for c in range(3)])  # fmt: skip
    else:
        expected = LogisticRegression(C=1.0, max_iter=1000).fit(Z, y).decision_function(Z)
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)
    zero = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=4, epochs=1, learning_rate=1e-9,
                       calibrate=False, pooled_init="zero").fit(X, labels)  # fmt: skip
    assert np.abs(zero.params_["pooled.weight"]).max() < 1e-6


def test_auto_leaves_the_pooled_path_out_only_for_tags_never_heard_together():
    X, y = synthetic()
    sets = [(label,) for label in y]
    both = sets[:40] + [("b", "c")] * 8

    def fitted(labels):
        return GraphTagger(encoder="log-mel", pool=(1, 1), hidden=4, epochs=1, calibrate=False).fit(X, labels)

    assert fitted(y).pooled_path_ is True
    assert fitted(sets).pooled_path_ is False  # multi-label, one tag per item
    assert fitted(both).pooled_path_ is True
    assert fitted(sets).training["pooled_path"] is False


def test_parameters_are_refused_where_they_enter():
    X, y = synthetic(12)
    for bad in (dict(mode="tree"), dict(hidden=0), dict(pool=(0, 1)), dict(k=-1),
                dict(learning_rate=0.0), dict(dropout=1.5), dict(encoder="vgg"),
                dict(pooled_path="yes"), dict(calibrate="no"), dict(pooled_init="mean")):
        with pytest.raises(ParameterError):
            GraphTagger(encoder=bad.pop("encoder", "log-mel"), **bad).fit(X, y)
    with pytest.raises(ParameterError, match="multiples of 8"):
        GraphTagger(encoder="log-mel").fit(X[:, :30], y)
    with pytest.raises(ParameterError, match="at least 2 classes"):
        GraphTagger(encoder="log-mel").fit(X, ["a"] * 12)


@needs_aisfx
def test_fewer_learned_parameters_than_the_prototype_network(philharmonia_dir):
    from earmark.interpret.encoders import patch_config
    from earmark.interpret.features import manifest_patches
    from earmark.interpret.protonet import PrototypeNetwork

    tagger, manifest = trained(philharmonia_dir)
    patches = manifest_patches(manifest, patch_config("aisfx", max_patches=1))
    network = PrototypeNetwork(encoder="aisfx", epochs=1, head_epochs=0).fit(
        patches.X, manifest.y[patches.item])
    # Default sizes of both; aiSFX's frozen convolutions are counted for neither.
    default = GraphTagger(epochs=1, calibrate=False).fit(patches.X, manifest.y[patches.item])
    assert default.n_parameters_ < network.n_parameters_
    assert tagger.n_parameters_ < default.n_parameters_ and tagger.training["n_parameters"] == tagger.n_parameters_


@needs_aisfx
def test_saved_tagger_round_trips_to_identical_probabilities(philharmonia_dir, tmp_path):
    tagger, _ = trained(philharmonia_dir)
    held_out = notes(philharmonia_dir, 1, 4)
    path = tagger.save(tmp_path / "tagger.earmark")

    loaded = load_model(path)

    assert loaded.kind == "graph-tagger" and list(loaded.classes_) == list(tagger.classes_)
    paths = [str(p) for p in held_out.paths]
    np.testing.assert_array_equal(loaded.score_files(paths).P, tagger.score_files(paths).P)
    predictions = predict_files(loaded, paths)
    accuracy = np.mean([p.label == label for p, label in zip(predictions, held_out.y)])
    assert accuracy > 0.5, accuracy  # three instruments: chance is a third
    assert loaded.training == tagger.training
