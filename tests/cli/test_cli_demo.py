"""``earmark demo`` end to end on the bundled recordings, with fast backends and a short curve.

The real demo (BirdNET, six curve sizes, five draws) takes minutes; the steps and the files
are the same with ``mfcc`` and the ``placeholder`` baseline.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from _cli_data import PNG_SIGNATURE

N_DEMO = 300


def test_demo_writes_evaluation_curve_model_and_predictions(cli, tmp_path, monkeypatch):
    import earmark.embedding
    from earmark.datasets import load_demo
    from earmark.models import EarmarkModel

    embedded = []
    original = earmark.embedding.embed_file

    def counting_embed_file(backend, path, **kwargs):
        embedded.append((backend.name, Path(path).name))
        return original(backend, path, **kwargs)

    monkeypatch.setattr(earmark.embedding, "embed_file", counting_embed_file)
    out = tmp_path / "demo"
    run = cli(
        "demo", "--backend", "mfcc", "--baseline", "placeholder", "--draws", "1",
        "--sizes", "2,all", "-o", out,
    )

    assert run.code == 0, run.stderr
    assert run.stdout == ""
    assert "Free Spoken Digit Dataset" in run.stderr  # the data's licence asks for credit
    # Every clip embedded once per backend; the predictions came from the cache.
    assert len(embedded) == 2 * N_DEMO
    assert len(set(embedded)) == 2 * N_DEMO

    evaluation = json.loads((out / "evaluation.json").read_text())
    speakers = sorted(set(load_demo().groups.tolist()))
    assert evaluation["strategy"] == f"leave one group out ({len(speakers)} groups)"
    assert evaluation["n_items"] == N_DEMO
    assert evaluation["accuracy"] > 0.25, "MFCC is well above chance (10%) on spoken digits"

    curve_stem = out / "learning-curve-mfcc-vs-placeholder-logreg"
    curves = json.loads(curve_stem.with_suffix(".json").read_text())
    assert sorted(curves) == ["mfcc", "placeholder"]
    assert [point["size"] for point in curves["mfcc"]["points"]] == [2, "all"]

    for picture in (out / "confusion-matrix.png", curve_stem.with_suffix(".png")):
        assert picture.read_bytes()[:8] == PNG_SIGNATURE, picture

    model = EarmarkModel.load(out / "digits.earmark")
    assert model.classes_.tolist() == [str(digit) for digit in range(10)]
    assert model.backend_identity["backend"] == "mfcc"
    assert model.training["n_items"] == N_DEMO - N_DEMO // len(speakers)

    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    held_out = speakers[-1]
    assert len(rows) == N_DEMO // len(speakers)
    assert all(f"_{held_out}_" in Path(row["path"]).name for row in rows)
    assert all(row["error"] == "" and row["label"] in model.classes_ for row in rows)
    correct = sum(row["label"] == Path(row["path"]).name[0] for row in rows)
    assert f"labels {correct}/{len(rows)} recordings correctly" in run.stderr
