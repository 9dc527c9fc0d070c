"""Prototype network (APNet-style) against linear probes, before and after refinement.

Run on demand, not a test:

    OMP_NUM_THREADS=1 python benchmarks/protonet.py
    python benchmarks/protonet.py --datasets speech-commands --encoders aisfx   # quicker

On the keywords (Speech Commands mini, official folds) and instruments (Philharmonia
mini, grouped by instrument and dynamic) of ../shared/datasets, with exactly the splits
of ``benchmarks/accuracy.py`` (:func:`earmark.evaluation.cross_validate` with the
dataset's folds and groups, seed 0). Per split and encoder: a prototype network
(CPU, seed 0) whose encoder is learned from scratch on log-mel patches (``log-mel``) or
starts from aiSFX's frozen convolutions (``aisfx``), the same network refined
(:func:`earmark.interpret.refine.refine_manifest`, on the training part only), and
logistic regression on cached clip embeddings of every baseline backend. Prints mean
item accuracy over splits with parameter counts (learned ones: a frozen pretrained part
is not counted, and is named), and writes the rows as JSON.
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
from earmark.evaluation import cross_validate
from earmark.interpret.encoders import ENCODERS, patch_config
from earmark.interpret.features import manifest_patches
from earmark.interpret.protonet import clip_proba, fit_manifest
from earmark.interpret.refine import refine_manifest
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {"speech-commands": "speech-commands-mini", "philharmonia": "philharmonia-mini"}
# Instrument notes: the attack and the start of the sustain are enough, and two patches
# per note keep training to minutes on one CPU thread.
MAX_PATCHES = {"speech-commands": 1, "philharmonia": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--baselines", nargs="+", default=["birdnet", "aisfx", "musicnn", "mfcc"])
    parser.add_argument("--encoders", nargs="+", default=["log-mel", "aisfx"], choices=list(ENCODERS))
    parser.add_argument("--prototypes-per-class", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--refine-epochs", type=int, default=5)
    parser.add_argument("--channels", type=int, nargs=2, default=[16, 16])
    parser.add_argument(
        "--control", action="store_true",
        help="also retrain as refinement does but prune nothing, to separate pruning from "
        "the extra epochs",
    )
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmark-protonet.json"))
    args = parser.parse_args()

    console = Console(stderr=True)
    store = open_store(args.cache_dir)
    rows = []
    for dataset in args.datasets:
        manifest = load_dataset(args.shared / DATASETS[dataset])
        folds = manifest.folds if manifest.has_folds else None
        groups = manifest.groups if manifest.has_groups else None
        splits = None
        for name in args.baselines:
            X, ok, _run = clip_embeddings(manifest, get_backend(name), store, progress=True)
            result = cross_validate(
                X, manifest.y[ok], folds=None if folds is None else folds[ok],
                groups=None if groups is None else groups[ok], learner="logreg",
            )  # fmt: skip
            if splits is None:
                splits, used = result.splits, manifest.subset(ok)
            rows.append({
                "dataset": dataset, "model": f"logreg on {name}", "strategy": result.strategy,
                "accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
                "fold_accuracy": result.fold_accuracy,
                "parameters": int(X.shape[1] + 1) * len(np.unique(manifest.y)),
                "note": "head only; the embedding network is not counted",
            })  # fmt: skip
            console.print(f"{dataset:16} logreg on {name:8} {result.accuracy_mean:6.1%}", highlight=False)
        for encoder in args.encoders:
            config = patch_config(encoder, max_patches=MAX_PATCHES[dataset])
            before, after, params_before, params_after, seconds, reports = [], [], [], [], [], []
            control = []
            for split in splits:
                train, test = used.subset(split.train), used.subset(split.test)
                started = time.perf_counter()
                network = fit_manifest(
                    train, config, encoder=encoder, epochs=args.epochs, channels=tuple(args.channels),
                    prototypes_per_class=args.prototypes_per_class, random_state=0,
                )  # fmt: skip
                refined, report = refine_manifest(network, train, epochs=args.refine_epochs)
                seconds.append(time.perf_counter() - started)
                patches = manifest_patches(test, config)
                candidates = [(network, before), (refined, after)]
                if args.control:
                    # Exact duplicates only are merged; no channel is pruned.
                    unpruned, _ = refine_manifest(
                        network, train, epochs=args.refine_epochs, merge_threshold=0.0,
                        min_channel_share=0.0,
                    )
                    candidates.append((unpruned, control))
                for model, scores in candidates:
                    P, ok = clip_proba(model, patches, len(test))
                    scores.append(float(np.mean(model.classes_[P[ok].argmax(axis=1)] == test.y[ok])))
                params_before.append(network.n_parameters_)
                params_after.append(refined.n_parameters_)
                reports.append(report.to_dict())
                console.print(
                    f"{dataset:16} {encoder:8} {split.name[:30]:30} protonet {before[-1]:6.1%} -> refined "
                    f"{after[-1]:6.1%}  ({report.summary()}; {seconds[-1]:.0f} s)", highlight=False,
                )
            label = f"prototype network ({encoder} encoder)"
            variants = [(label, before, params_before), (f"{label}, refined", after, params_after)]
            if args.control:
                variants.append((f"{label}, retrained unpruned", control, params_before))
            for label, scores, params in variants:
                rows.append({
                    "dataset": dataset, "model": label, "strategy": result.strategy,
                    "accuracy_mean": float(np.mean(scores)), "accuracy_std": float(np.std(scores)),
                    "fold_accuracy": scores, "parameters": int(np.mean(params)),
                    "train_s_mean": float(np.mean(seconds)),
                    "note": ("whole network from scratch (encoder, prototypes, head)"
                             if encoder == "log-mel" else
                             "learned part only; aiSFX's frozen convolutions (4.7 M) not counted"),
                    **({"refinement": reports} if "refined" in label else {}),
                })  # fmt: skip
    table = Table(title="Mean split accuracy (± std over splits), same splits per dataset")
    for column in ("dataset", "model", "accuracy", "parameters", "split"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["dataset"], row["model"],
                      f"{row['accuracy_mean']:.1%} ± {row['accuracy_std']:.1%}",
                      f"{row['parameters']:,}", row["strategy"])  # fmt: skip
    Console().print(table)
    args.output.write_text(json.dumps(rows, indent=2))
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
