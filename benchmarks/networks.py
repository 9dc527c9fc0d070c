"""Few-data study figures: networks from scratch and aiSFX fine-tuned, beside frozen probes.

Usage: ``python benchmarks/networks.py DATASET ARCHITECTURE [ARCHITECTURE ...]`` with
DATASET one of fsdd, philharmonia, speech-commands, demo (paths under ../shared/datasets
relative to the project root, or the bundled demo). Prints accuracy per fold and mean,
training seconds per fold (2 CPU threads), and writes a JSON line per run to
``benchmarks/results/networks.jsonl``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"fsdd": "fsdd", "philharmonia": "philharmonia-mini", "speech-commands": "speech-commands-mini"}


def load(name: str):
    from earmark.datasets import load_dataset, load_demo

    if name == "demo":
        return load_demo()
    for base in (ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets")):
        if (base / DATASETS[name]).is_dir():
            return load_dataset(base / DATASETS[name])
    raise SystemExit(f"no {name} under ../shared/datasets")


def _report_each_fit() -> list:
    """Print each fold's training summary as it ends; keep the seconds."""
    from earmark.networks import NetworkClassifier

    seconds = []
    fit = NetworkClassifier.fit

    def reporting(self, X, y, *, groups=None):
        out = fit(self, X, y, groups=groups)
        summary = {k: v for k, v in self.training.items() if not k.endswith("_rows")}
        seconds.append(summary["seconds"])
        print("  fold:", json.dumps(summary, default=str), flush=True)
        return out

    NetworkClassifier.fit = reporting
    return seconds


def main(dataset: str, architectures: list[str], **params) -> None:
    from earmark.evaluation import cross_validate
    from earmark.networks import network_inputs

    fit_seconds = _report_each_fit()

    manifest = load(dataset)
    folds = manifest.folds if manifest.has_folds else None
    groups = manifest.groups if manifest.has_groups else None
    for architecture in architectures:
        start = time.perf_counter()
        X, kept, learner, failures = network_inputs(manifest, architecture)
        inputs_s = time.perf_counter() - start
        print(f"{dataset} {architecture}: inputs {X.shape} in {inputs_s:.0f} s", flush=True)
        folds = kept.folds if kept.has_folds else None
        groups = kept.groups if kept.has_groups else None
        learner.set_params(**params)
        start = time.perf_counter()
        n_splits = len(set(groups.tolist())) if groups is not None and folds is None and dataset in ("fsdd", "demo") else 5
        result = cross_validate(X, kept.y, folds=folds, groups=groups, learner=learner, n_splits=n_splits)
        seconds = time.perf_counter() - start
        folds_s = fit_seconds[-len(result.splits):]
        row = {"fit_s_per_fold": float(np.mean(folds_s)),"dataset": dataset, "architecture": architecture, "params": params,
               "strategy": result.strategy, "folds": len(result.splits),
               "accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
               "fold_accuracy": result.fold_accuracy, "accuracy_pooled": result.accuracy,
               "inputs_s": inputs_s, "train_s_per_fold": seconds / len(result.splits),
               "n_items": len(kept.y), "failures": len(failures)}
        print(json.dumps(row), flush=True)
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        with open(out / "networks.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if "=" not in a]
    params = {k: (float(v) if "." in v else int(v)) for k, v in (a.split("=") for a in sys.argv[1:] if "=" in a)}
    main(args[0], args[1:], **params)
