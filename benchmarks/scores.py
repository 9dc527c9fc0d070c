"""Scores a user can trust: calibration (ECE) per learner and per-class thresholds.

Run on demand, not a test:

    python benchmarks/scores.py --datasets fsdd philharmonia --learners logreg svm-rbf

For each dataset (honest splits as ``earmark evaluate`` makes them) and learner:
accuracy, ECE (15 bins) and Brier of the pooled out-of-fold probabilities, and the ECE
that sampling alone would give a perfectly calibrated model on that many items. Then, for
``--threshold-learner``, per-class thresholds for precision 0.9 chosen on each training
part's cross-validated (grouped) scores and applied to the held-out part: the precision
reached per class, pooled over splits, for classes with at least 20 items.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.evaluation import cross_validate
from earmark.learners import fit_learner, make_learner
from earmark.pipeline import clip_embeddings
from earmark.splits import make_splits
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {"fsdd": "fsdd", "speech-commands": "speech-commands-mini",
            "philharmonia": "philharmonia-mini"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backend", default="birdnet")
    parser.add_argument("--learners", nargs="+", default=["logreg", "svm-rbf", "knn", "mlp",
                                                          "random-forest", "prototype"])
    parser.add_argument("--threshold-learner", default="logreg")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--output", type=Path, default=Path("benchmark-scores.json"))
    args = parser.parse_args()
    store, backend = open_store(None), get_backend(args.backend)
    out = []
    for dataset in args.datasets:
        manifest = load_dataset(args.shared / DATASETS[dataset])
        X, ok, _ = clip_embeddings(manifest, backend, store, progress=False)
        y = manifest.y[ok]
        folds = manifest.folds[ok] if manifest.has_folds else None
        groups = manifest.groups[ok] if manifest.has_groups else None
        for learner in args.learners:
            result = cross_validate(X, y, folds=folds, groups=groups, learner=learner)
            row = {"dataset": dataset, "learner": learner, "strategy": result.strategy,
                   "accuracy": result.accuracy, "ece": result.ece, "brier": result.brier,
                   "mean_confidence": result.calibration["mean_confidence"],
                   "ece_noise_floor": result.calibration["ece_floor"]}
            out.append(row)
            print(json.dumps(row), flush=True)
        out.append(threshold_table(X, y, folds, groups, dataset, args.threshold_learner))
        print(json.dumps(out[-1]), flush=True)
    args.output.write_text(json.dumps(out, indent=2))


def threshold_table(X, y, folds, groups, dataset, learner, target=0.9, minimum=20):
    plan = make_splits(y, folds=folds, groups=groups)
    calibration_groups = groups if groups is not None else folds
    claims: dict = {}
    for split in plan.splits:
        fitted, _ = fit_learner(
            make_learner(learner, target_precision=target), X[split.train], y[split.train],
            groups=None if calibration_groups is None else calibration_groups[split.train],
        )
        answers = fitted[-1].predict_thresholded(fitted[:-1].transform(X[split.test]))
        for answer, truth in zip(answers, y[split.test]):
            if answer != "unknown":
                claims.setdefault(answer, []).append(answer == truth)
    labels, counts = np.unique(y, return_counts=True)
    rows = []
    for label, count in zip(labels.tolist(), counts):
        if count < minimum:
            continue
        hits = claims.get(label, [])
        rows.append({"label": label, "items": int(count), "answered": len(hits),
                     "precision": float(np.mean(hits)) if hits else None})
    return {"dataset": dataset, "thresholds_for_precision": target, "learner": learner,
            "strategy": plan.strategy, "classes": rows}


if __name__ == "__main__":
    main()
