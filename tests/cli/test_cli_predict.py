"""``earmark predict``: taxonomy columns, and CSV a spreadsheet cannot run."""

from __future__ import annotations

import csv

import pytest

from earmark.backends import get_backend
from earmark.models import EarmarkModel
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


def test_predict_csv_has_level_columns_and_escapes_formulas(digits, tmp_path, cli):
    manifest, X, backend = digits
    model_path = EarmarkModel.train(X, manifest.y, backend=backend, learner="prototype-hierarchical",
                                    taxonomy=PARITY).save(tmp_path / "parity.earmark")
    hostile = tmp_path / "=HYPERLINK(1).wav"
    hostile.write_bytes(open(manifest.paths[0], "rb").read())
    out = tmp_path / "predictions.csv"
    done = cli("predict", str(model_path), str(hostile), manifest.paths[1], "-o", str(out), "-q")
    assert done.code == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert {"level 1", "level 1 score", "backoff"} <= set(rows[0])
    assert all(not row["path"].startswith("=") for row in rows)
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_unknown_is_asked_for_with_any_learner(digits, tmp_path, cli):
    """A logistic-regression model answers 'unknown' only with --unknown; the clips it
    rejects are those the library's ``unknown_mask`` rejects."""
    import json

    import numpy as np

    manifest, X, backend = digits
    held = manifest.groups == "lucas"
    train = ~held & np.isin(manifest.y, list("01234"))
    model = EarmarkModel.train(X[train], manifest.y[train], backend=backend,
                               groups=manifest.groups[train])
    model_path = model.save(tmp_path / "low.earmark")
    paths = [str(p) for p in manifest.paths[held]]
    plain = cli("predict", str(model_path), *paths, "--json", "--cache-dir", str(tmp_path / "c"))
    asked = cli("predict", str(model_path), *paths, "--json", "--unknown",
                "--cache-dir", str(tmp_path / "c"))
    assert plain.code == 0 and asked.code == 0, asked.stderr
    assert not any(row["unknown"] for row in json.loads(plain.stdout))
    rows = json.loads(asked.stdout)
    expected = model.pipeline[-1].unknown_mask(model._final_input(X[held]))
    assert [row["unknown"] for row in rows] == expected.tolist()
    assert 0 < sum(expected) < len(paths)
    assert all(row["label"] == "unknown" for row in rows if row["unknown"])
