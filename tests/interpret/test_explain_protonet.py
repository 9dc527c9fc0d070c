"""Explaining a prototype network: its scorer reads the clip as the network reads a file,
and explanations and their checks run on it unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _protonet_data import WORDS, trained

from earmark.audio import load
from earmark.interpret.explain import explain, explain_file
from earmark.interpret.features import manifest_patches
from earmark.interpret.perturb import (
    PatchBackend,
    PrototypeScorer,
    class_scorer,
    model_backend,
)
from earmark.interpret.protonet import clip_proba
from earmark.interpret.reliability import assess
from earmark.manifest import Manifest
from earmark.models import predict_files


@pytest.fixture(scope="module")
def small(speech_commands_dir):
    return trained(speech_commands_dir)


def one_clip_per_word(manifest):
    return [manifest.paths[list(manifest.y).index(word)] for word in WORDS]


def test_scorer_of_an_unperturbed_clip_is_clip_proba_of_its_patches(small):
    network, manifest, _ = small
    config = network._config()
    for k, path in enumerate(one_clip_per_word(manifest)):
        scorer = class_scorer(network, k)
        y, _ = load(path, sr=config.sr)

        P = scorer.proba(np.stack([y, y]))

        patches = manifest_patches(Manifest(pd.DataFrame({"path": [path], "labels": ["?"]})), config)
        expected, ok = clip_proba(network, patches, 1)
        assert isinstance(scorer, PrototypeScorer) and ok[0]
        # The same patches through the same float32 network: equal up to float32 rounding.
        np.testing.assert_allclose(P, np.repeat(expected, 2, axis=0), rtol=1e-5, atol=1e-9)
        assert scorer(y[None])[0] == pytest.approx(expected[0, k], rel=1e-5)
        assert scorer.n_calls == 3 and scorer.sample_rate == config.sr == 16000


def test_explaining_a_file_scores_it_as_predict_files_does(small):
    network, manifest, _ = small
    path = one_clip_per_word(manifest)[1]
    predicted = [p.to_dict() for p in predict_files(network, [path])][0]

    explanation = explain_file(network, path, n_time=4, n_bands=4)
    reliability = assess(explanation, network, n_noise=1)

    assert explanation.label == predicted["label"]
    assert explanation.base_score == pytest.approx(predicted["score"], abs=1e-3)
    assert explanation.sr == network._config().sr and explanation.importance.shape == (4, 4)
    assert reliability.deletion.explained[-1] == explanation.empty_score
    # Removing the evidence, most important first, costs more than removing at random.
    assert reliability.deletion.auc < reliability.deletion.random_auc
    assert reliability.deletion.explained[0] == explanation.base_score


def test_a_clip_at_another_rate_is_explained_at_the_networks(small):
    import soxr

    network, manifest, _ = small
    y, sr = load(manifest.paths[0], sr=16000)
    y_8k = soxr.resample(y, sr, 8000).astype(np.float32)

    explanation = explain(network, y_8k, 8000, n_time=2, n_bands=2)

    assert isinstance(model_backend(network), PatchBackend)
    assert explanation.sr == 16000 and explanation.y.size == pytest.approx(y.size, abs=2)
    assert explanation.band_edges_hz[-1] == 4000.0  # the 8 kHz clip holds nothing above
