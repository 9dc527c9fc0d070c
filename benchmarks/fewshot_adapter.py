"""Does a prototypical adapter help on classes it never saw? Measured, not assumed.

Run on demand, not a test:

    python benchmarks/fewshot_adapter.py                          # Speech Commands, birdnet + mfcc
    python benchmarks/fewshot_adapter.py --dataset philharmonia --n-base 8 --splits 5

For each class split (seed ``s``), :func:`~earmark.fewshot.episodes.split_classes` picks
``--n-base`` base classes; a :class:`~earmark.fewshot.adapter.PrototypicalAdapter` is
trained on them alone (its early stopping holds out some *base* classes), and 5-way
1-shot and 5-shot episodes are drawn from the remaining, novel classes with support and
query from different groups (speakers for Speech Commands). The same episodes are scored
with prototypes on:

* ``raw``: the embeddings as they are, with earmark's default prototypes (L2, centre on
  the support, shrunk whitening, cosine) and with plain standardised euclidean ones;
* ``pca``: the adapter's untrained starting point (standardise with base statistics,
  principal components of the base classes, L2), to tell training from projection;
* ``adapted``: the trained adapter's output, with the same two prototype variants.

Each split gives one mean over its episodes; the table shows the mean over splits with a
95 % Student-t interval over splits (splits are the independent unit: episodes of one
split share its classes), and the paired gain of ``adapted`` over ``raw`` per split.
Embeddings come from the user's cache (``earmark.store.open_store()``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.fewshot.adapter import PrototypicalAdapter
from earmark.fewshot.episodes import split_classes
from earmark.fewshot.evaluation import evaluate_episodes
from earmark.fewshot.prototypes import PrototypeClassifier
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {
    "speech-commands": "speech-commands-mini",
    "philharmonia": "philharmonia-mini",
    "fsdd": "fsdd",
}
PROTOTYPES = {
    "default": lambda: PrototypeClassifier(),
    "euclidean": lambda: PrototypeClassifier(
        metric="euclidean", normalize=False, standardize=True, whiten=False
    ),
}


def t_interval(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(values.mean()), float("nan")
    half = values.std(ddof=1) / np.sqrt(values.size) * stats.t.ppf(0.975, values.size - 1)
    return float(values.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="speech-commands", choices=list(DATASETS))
    parser.add_argument("--backends", nargs="+", default=["birdnet", "mfcc"])
    parser.add_argument("--n-base", type=int, default=20, help="base classes per split")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--output", type=Path, default=Path("benchmark-fewshot-adapter.json"))
    args = parser.parse_args()

    manifest = load_dataset(args.shared / DATASETS[args.dataset])
    store = open_store()
    rows = []
    for backend_name in args.backends:
        X, ok, _ = clip_embeddings(manifest, get_backend(backend_name), store, progress=False)
        y = np.asarray(manifest.y)[ok]
        groups = np.asarray(manifest.groups)[ok] if manifest.has_groups else None
        for split in range(args.splits):
            base_classes, novel = split_classes(y, args.n_base, seed=split)
            base = np.isin(y, base_classes)
            started = time.perf_counter()
            adapter = PrototypicalAdapter(random_state=split).fit(
                X[base], y[base], groups=None if groups is None else groups[base]
            )
            fit_s = time.perf_counter() - started
            untrained = PrototypicalAdapter(random_state=split, learning_rate=0.0, max_epochs=1)
            untrained.fit(X[base], y[base], groups=None if groups is None else groups[base])
            spaces = {"raw": X, "pca": untrained.transform(X), "adapted": adapter.transform(X)}
            for space, E in spaces.items():
                for proto_name, build in PROTOTYPES.items():
                    result = evaluate_episodes(
                        E, y, groups=groups, estimator=build(), ways=args.ways,
                        shots=args.shots, queries=args.queries, episodes=args.episodes,
                        classes=novel, seed=split,
                    )
                    for point in result.points:
                        rows.append({
                            "dataset": args.dataset, "backend": backend_name, "split": split,
                            "space": space, "prototypes": proto_name, "ways": point.ways,
                            "shots": point.shots, "accuracy": point.mean,
                            "episode_ci95": point.ci95, "n_episodes": point.n_episodes,
                            "adapter_fit_s": fit_s, "best_epoch": adapter.best_epoch_,
                            "epochs": adapter.n_epochs_,
                        })
            print(
                f"{backend_name} split {split}: adapter {fit_s:.1f} s, best epoch "
                f"{adapter.best_epoch_} of {adapter.n_epochs_}; "
                + ", ".join(
                    f"{r['space']}/{r['prototypes']} {r['shots']}-shot {r['accuracy']:.3f}"
                    for r in rows if r["backend"] == backend_name and r["split"] == split
                ),
                flush=True,
            )
    print_table(rows, args)
    args.output.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.output}")


def print_table(rows, args) -> None:
    print(
        f"\n{args.dataset}: {args.ways}-way episodes on novel classes, {args.n_base} base "
        f"classes, {args.splits} splits x {args.episodes} episodes; mean over splits "
        f"± 95 % t-interval over splits"
    )
    print(f"{'backend':8} {'shots':>5} {'space':8} {'prototypes':10} {'accuracy':>17} "
          f"{'gain vs raw (paired)':>22}")
    keys = sorted({(r["backend"], r["shots"]) for r in rows})
    for backend, shots in keys:
        for proto in PROTOTYPES:
            raw = {r["split"]: r["accuracy"] for r in rows if (r["backend"], r["shots"],
                   r["space"], r["prototypes"]) == (backend, shots, "raw", proto)}
            for space in ("raw", "pca", "adapted"):
                values = {r["split"]: r["accuracy"] for r in rows if (r["backend"], r["shots"],
                          r["space"], r["prototypes"]) == (backend, shots, space, proto)}
                mean, half = t_interval(list(values.values()))
                gain = ""
                if space != "raw":
                    g_mean, g_half = t_interval([values[s] - raw[s] for s in values])
                    gain = f"{g_mean:+.3f} ± {g_half:.3f}"
                print(f"{backend:8} {shots:5d} {space:8} {proto:10} {mean:9.3f} ± {half:.3f} "
                      f"{gain:>22}")


if __name__ == "__main__":
    main()
