"""Accuracy of each backend and learner on the real datasets in ../shared/datasets.

Run on demand, not a test:

    python benchmarks/accuracy.py                       # every dataset, installed backends
    python benchmarks/accuracy.py --datasets fsdd --backends birdnet mfcc --learners logreg

Each dataset is split the honest way its layout gives (FSDD: leave one speaker out;
Speech Commands: the official lists; Philharmonia: grouped by instrument and dynamic).
Embeddings go through the user's cache (``--cache-dir``), so a second run only fits.
Prints one table and writes it as JSON (``--output``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from earmark.backends import get_backend
from earmark.backends.registry import registered
from earmark.datasets import load_dataset
from earmark.evaluation import cross_validate
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {
    "fsdd": "fsdd",
    "speech-commands": "speech-commands-mini",
    "philharmonia": "philharmonia-mini",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backends", nargs="+", default=None, help="default: every installed one")
    parser.add_argument("--learners", nargs="+", default=["logreg", "random-forest"])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmark-accuracy.json"))
    args = parser.parse_args()

    console = Console(stderr=True)
    names = args.backends or [
        spec.name
        for spec in registered(include_test_backends=False)
        if spec.name != "hear" and spec.load_class().is_available()
    ]
    store = open_store(args.cache_dir)
    rows = []
    for dataset in args.datasets:
        manifest = load_dataset(args.shared / DATASETS[dataset])
        folds = manifest.folds if manifest.has_folds else None
        groups = manifest.groups if manifest.has_groups else None
        for name in names:
            backend = get_backend(name)
            started = time.perf_counter()
            X, ok, run = clip_embeddings(manifest, backend, store, progress=True)
            embed_s = time.perf_counter() - started
            for learner in args.learners:
                result = cross_validate(
                    X, manifest.y[ok],
                    folds=None if folds is None else folds[ok],
                    groups=None if groups is None else groups[ok],
                    learner=learner,
                )
                rows.append({
                    "dataset": dataset, "backend": name, "learner": learner,
                    "items": int(ok.sum()), "failed": run.n_failed,
                    "strategy": result.strategy,
                    "accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
                    "macro_f1_mean": result.macro_f1_mean, "embed_s": embed_s,
                })
                console.print(
                    f"{dataset:16} {name:8} {learner:14} {result.accuracy_mean:6.1%} "
                    f"± {result.accuracy_std:5.1%}  ({result.strategy})", highlight=False,
                )
    table = Table(title="Mean split accuracy (± std over splits)")
    for column in ("dataset", "backend", "learner", "items", "accuracy", "macro-F1", "split"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["dataset"], row["backend"], row["learner"], str(row["items"]),
            f"{row['accuracy_mean']:.1%} ± {row['accuracy_std']:.1%}",
            f"{row['macro_f1_mean']:.3f}", row["strategy"],
        )
    Console().print(table)
    args.output.write_text(json.dumps(rows, indent=2))
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
