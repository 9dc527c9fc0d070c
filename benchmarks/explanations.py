"""Are earmark's explanations faithful? Deletion/insertion against random order, stability.

Run on demand, not a test (set OMP_NUM_THREADS=1 on a shared machine):

    python benchmarks/explanations.py                           # mfcc, both datasets
    python benchmarks/explanations.py --backends birdnet --clips 12
    python benchmarks/explanations.py --methods occlusion lime --baselines floor zero
    python benchmarks/explanations.py --backends protonet-aisfx --clips 20   # prototype network

For each dataset a logistic regression is trained on one honest split's training side
(Speech Commands: the official lists, so no speaker is on both sides; Philharmonia:
grouped by instrument and dynamic, five group folds; the split with the largest
training side is used), from embeddings in the
user's cache (``--cache-dir``). Held-out test clips (a fixed random pick of ``--clips``)
are explained for the class the model predicts, and each explanation is checked on the
model: deletion and insertion AUC against the mean of ``--random-orders`` random orders,
rank stability under white noise at 30 dB SNR, and across LIME seeds. The figure the
issue asks for is the share of clips whose deletion AUC is below the random-order one
(bar: 80 %), and the share whose map is also not flat
(:func:`earmark.interpret.reliability.is_flat`; issue 16's bar: 90 % of 20 clips, BirdNET +
logistic regression, whose calibrated probability is what the map explains the log-odds
of). Prints one table and writes every figure as JSON (``--output``).

``protonet-aisfx`` and ``protonet-log-mel`` in ``--backends`` explain a prototype
network (that encoder, trained on the same training side, default settings) instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.interpret.explain import explain_file
from earmark.interpret.features import manifest_patches
from earmark.interpret.perturb import model_backend
from earmark.interpret.protonet import clip_proba, fit_manifest
from earmark.interpret.reliability import deletion_insertion, is_flat, stability
from earmark.models import EarmarkModel
from earmark.pipeline import clip_embeddings
from earmark.splits import make_splits
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {"speech-commands": "speech-commands-mini", "philharmonia": "philharmonia-mini"}


def held_out_split(manifest, seed: int):
    """Train and test rows of the dataset's honest split (see the module docstring)."""
    folds = manifest.folds if manifest.has_folds else None
    groups = manifest.groups if manifest.has_groups else None
    plan = make_splits(manifest.y, folds=folds, groups=groups, random_state=seed)
    # The split that trains on the most items: the official training fold where there
    # is one, so the model explained is the best the data allows.
    split = max(plan.splits, key=lambda split: len(split.train))
    return split.train, split.test, f"{plan.strategy}: {split.name}"


def prototype_network(manifest, encoder: str, seed: int):
    """A prototype network trained on the split's training side, and its held-out accuracy."""
    train, test, split_name = held_out_split(manifest, seed)
    network = fit_manifest(manifest.subset(train), encoder=encoder, random_state=seed)
    patches = manifest_patches(manifest.subset(test), network._config())
    P, ok = clip_proba(network, patches, len(test))
    accuracy = float(np.mean(network.classes_[P[ok].argmax(axis=1)] == manifest.y[test][ok]))
    return network, model_backend(network), manifest, train, test, split_name, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backends", nargs="+", default=["mfcc"])
    parser.add_argument("--methods", nargs="+", default=["occlusion"],
                        choices=["occlusion", "lime"])
    parser.add_argument("--baselines", nargs="+", default=["floor"], choices=["floor", "zero"])
    parser.add_argument("--clips", type=int, default=40, help="test clips per dataset")
    parser.add_argument("--stability-clips", type=int, default=10,
                        help="of those, how many also get the (costlier) stability check")
    parser.add_argument("--samples", type=int, default=256, help="LIME masks")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--random-orders", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BirdNET interpreter threads")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmark-explanations.json"))
    args = parser.parse_args()

    console = Console(stderr=True)
    store = open_store(args.cache_dir)
    rows, per_clip = [], []
    for dataset in args.datasets:
        manifest = load_dataset(args.shared / DATASETS[dataset])
        for name in args.backends:
            if name.startswith("protonet-"):
                model, backend, items, train, test, split_name, accuracy = prototype_network(
                    manifest, name.removeprefix("protonet-"), args.seed
                )
            else:
                params = {"num_threads": args.threads} if name == "birdnet" else {}
                backend = get_backend(name, **params)
                X, ok, _ = clip_embeddings(manifest, backend, store, progress=False)
                items = manifest.subset(ok)
                train, test, split_name = held_out_split(items, args.seed)
                model = EarmarkModel.train(X[train], items.y[train], backend=backend)
                accuracy = float(np.mean(model.predict(X[test]) == items.y[test]))
            rng = np.random.default_rng(args.seed)
            chosen = rng.choice(test, size=min(args.clips, len(test)), replace=False)
            console.print(
                f"{dataset} / {name}: trained on {len(train)}, {len(test)} held out "
                f"({split_name}); test accuracy {accuracy:.1%}; explaining {len(chosen)}",
                highlight=False,
            )
            for method in args.methods:
                for baseline in args.baselines:
                    results = []
                    for k, index in enumerate(chosen):
                        path = items.paths[index]
                        started = time.perf_counter()
                        e = explain_file(model, path, method=method, baseline=baseline,
                                         n_samples=args.samples, seed=args.seed,
                                         backend=backend)
                        explain_s = time.perf_counter() - started
                        deletion, insertion = deletion_insertion(
                            e, model, backend=backend, n_steps=args.steps,
                            n_random=args.random_orders, seed=args.seed,
                        )
                        noise = seeds = None
                        if k < args.stability_clips:
                            noise, seeds = stability(e, model, backend=backend, n_noise=2,
                                                     n_seeds=2, seed=args.seed)
                        results.append({
                            "dataset": dataset, "backend": name, "method": method,
                            "baseline": baseline, "path": str(path),
                            "true": str(items.y[index]), "label": str(e.label),
                            "base_score": e.base_score, "empty_score": e.empty_score,
                            "deletion_auc": deletion.auc,
                            "deletion_random_auc": deletion.random_auc,
                            "insertion_auc": insertion.auc,
                            "insertion_random_auc": insertion.random_auc,
                            "noise_stability": noise, "seed_stability": seeds,
                            "explain_s": explain_s, "n_scored": e.params["n_scored"],
                            "flat": is_flat(e.importance),
                            "importance_spread": float(np.ptp(e.importance)),
                        })
                    per_clip += results
                    rows.append(summarise(results, dataset, name, method, baseline, accuracy))
                    console.print(describe(rows[-1]), highlight=False)
    show(rows)
    args.output.write_text(json.dumps({"summary": rows, "clips": per_clip}, indent=2))
    console.print(f"wrote {args.output}")


def summarise(results, dataset, backend, method, baseline, accuracy) -> dict:
    def mean(key):
        values = [r[key] for r in results if r[key] is not None and np.isfinite(r[key])]
        return float(np.mean(values)) if values else None

    beats = [r["deletion_auc"] < r["deletion_random_auc"] for r in results]
    usable = [b and not r["flat"] for b, r in zip(beats, results)]
    beats_insertion = [r["insertion_auc"] > r["insertion_random_auc"] for r in results]
    return {
        "dataset": dataset, "backend": backend, "method": method, "baseline": baseline,
        "test_accuracy": accuracy, "clips": len(results),
        "deletion_beats_random": float(np.mean(beats)),
        "flat": float(np.mean([r["flat"] for r in results])),
        "non_flat_and_beats_random": float(np.mean(usable)),
        "insertion_beats_random": float(np.mean(beats_insertion)),
        "deletion_auc": mean("deletion_auc"), "deletion_random_auc": mean("deletion_random_auc"),
        "insertion_auc": mean("insertion_auc"),
        "insertion_random_auc": mean("insertion_random_auc"),
        "noise_stability": mean("noise_stability"), "seed_stability": mean("seed_stability"),
        "explain_s": mean("explain_s"), "n_scored": mean("n_scored"),
    }


def _f(value, spec=".3f") -> str:
    return "-" if value is None else format(value, spec)


def describe(row) -> str:
    return (
        f"  {row['method']:9} {row['baseline']:5} deletion < random on "
        f"{row['deletion_beats_random']:.0%} of {row['clips']} clips (non-flat too: "
        f"{row['non_flat_and_beats_random']:.0%}, flat: {row['flat']:.0%}); deletion AUC "
        f"{_f(row['deletion_auc'])} vs {_f(row['deletion_random_auc'])}, insertion AUC "
        f"{_f(row['insertion_auc'])} vs {_f(row['insertion_random_auc'])}; stability noise "
        f"{_f(row['noise_stability'], '.2f')} seeds {_f(row['seed_stability'], '.2f')}; "
        f"{_f(row['explain_s'], '.2f')} s per explanation"
    )


def show(rows) -> None:
    table = Table(title="Explanations on held-out clips (deletion: lower is better)")
    for column in ("dataset", "backend", "method", "baseline", "clips", "del<rand",
                   "ins>rand", "del AUC (rand)", "ins AUC (rand)", "stab. noise",
                   "stab. seeds", "s/expl."):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["dataset"], r["backend"], r["method"], r["baseline"], str(r["clips"]),
            f"{r['deletion_beats_random']:.0%}", f"{r['insertion_beats_random']:.0%}",
            f"{_f(r['deletion_auc'])} ({_f(r['deletion_random_auc'])})",
            f"{_f(r['insertion_auc'])} ({_f(r['insertion_random_auc'])})",
            _f(r["noise_stability"], ".2f"), _f(r["seed_stability"], ".2f"),
            _f(r["explain_s"], ".2f"),
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
