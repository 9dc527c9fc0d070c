"""One prediction shape for every model: taxonomy levels, backoff, and CSV a spreadsheet
cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.models import EarmarkModel, load_model, predict_files
from earmark.pipeline import clip_embeddings
from earmark.store import MemoryStore

PARITY = {str(d): ("even" if d % 2 == 0 else "odd") for d in range(10)}


@pytest.fixture(scope="module")
def digits():
    from earmark.datasets import demo_path, load_dataset

    manifest = load_dataset(demo_path())
    backend = get_backend("mfcc")
    X, kept, _ = clip_embeddings(manifest, backend, MemoryStore(), progress=False)
    return manifest.subset(kept), X, backend


def test_a_taxonomy_model_answers_at_every_level_and_backs_off(digits, tmp_path):
    manifest, X, backend = digits
    model = EarmarkModel.train(X, manifest.y, backend=backend, learner="prototype-hierarchical",
                               taxonomy=PARITY)
    model = load_model(model.save(tmp_path / "parity.earmark"))
    predictions = predict_files(model, manifest.paths[:20], backend=backend)

    for prediction in predictions:
        levels = prediction.extra["levels"]
        assert levels["level 1"] in ("even", "odd") and 0 < levels["level 1 score"] <= 1
        # The backoff label is the leaf or its group, never something else.
        assert prediction.extra["backoff"] in (prediction.top_k[0][0], levels["level 1"])
    groups = [p.extra["levels"]["level 1"] for p in predictions]
    truth = [PARITY[label] for label in manifest.y[:20]]
    assert np.mean(np.array(groups) == np.array(truth)) > 0.5


def test_flat_models_have_no_levels(digits):
    manifest, X, backend = digits
    model = EarmarkModel.train(X, manifest.y, backend=backend)
    assert all("levels" not in p.extra for p in predict_files(model, manifest.paths[:3], backend=backend))
