"""Margin sampling against random labelling: what the labelling loop's queue is worth.

The question ``earmark serve`` answers with its "most uncertain next" list: after the
same number of labels, is a classifier better when a person labelled the clips it was
least sure of (margin sampling, :func:`earmark.explore.active.train_target`) than clips
picked at random?

Data: FSDD (3000 recordings, 6 speakers x 10 digits x 50 takes), clip embeddings from
the user's cache (``earmark embed`` fills it; the run embeds what is missing). For each
digit, a one-vs-rest target ("is this a 3?", 10 % of clips positive). Honest split:
three folds, each labelling within four speakers and scoring on the two held out
(never seen, never labelled). Each run starts from 1 positive and 3 negative labels
drawn at random (the seed), then ``--rounds`` rounds of ``--batch`` labels each, chosen
by margin sampling or at random from the pool; the simulated person answers with the
true digit. Score: average precision on the held-out speakers (chance = 0.10).

Run (about a minute per backend on 2 cores, once the embeddings are cached):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/active_learning.py --backends mfcc birdnet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
FOLDS = (("george", "jackson"), ("lucas", "nicolas"), ("theo", "yweweler"))


def embeddings(backend_name: str, cache_dir: str | None):
    from earmark.backends import get_backend
    from earmark.datasets import load_dataset
    from earmark.pipeline import clip_embeddings
    from earmark.store import open_store

    manifest = load_dataset(SHARED / "fsdd")
    X, ok, _ = clip_embeddings(manifest, get_backend(backend_name), open_store(cache_dir))
    manifest = manifest.subset(ok)
    digits = np.asarray(manifest.y)
    return X, digits, np.asarray(manifest.groups)


def run_one(X_pool, positive, X_test, y_test, *, strategy, seed, rounds, batch):
    """Average precision on the test speakers after labelling, and positives labelled."""
    from sklearn.metrics import average_precision_score

    from earmark.explore.active import train_target
    from earmark.explore.collection import Collection
    from earmark.explore.labels import Label

    n = len(X_pool)
    keys = [f"{row:032x}" for row in range(n)]
    pool = Collection("benchmark", keys, [""] * n, np.full(n, np.nan), np.full(n, np.nan),
                      np.ones(n), X_pool)
    rng = np.random.default_rng(seed)
    rows = [int(rng.choice(np.flatnonzero(positive)))]
    rows += [int(row) for row in rng.choice(np.flatnonzero(~positive), 3, replace=False)]

    def labels():
        return [Label("digit", keys[row], "positive" if positive[row] else "negative", "")
                for row in rows]

    for _ in range(rounds):
        if strategy == "margin":
            trained = train_target(pool, labels(), target="digit", n_uncertain=batch)
            rows += [pool.index_of(clip["key"]) for clip in trained.uncertain]
        else:
            free = np.setdiff1d(np.arange(n), rows)
            rows += [int(row) for row in rng.choice(free, batch, replace=False)]
    estimator = train_target(pool, labels(), target="digit", n_uncertain=0).estimator
    score = average_precision_score(y_test, estimator.predict_proba(X_test)[:, 1])
    return score, int(positive[rows].sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["mfcc", "birdnet"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    n_labels = 4 + args.rounds * args.batch
    print(f"FSDD, one digit vs the rest, {n_labels} labels, 3 speaker folds x 10 digits x "
          f"{args.seeds} seeds; AP on held-out speakers (chance 0.10)")
    print(f"{'backend':10} {'strategy':9} {'mean AP':>8} {'sd':>6} {'positives labelled':>19} "
          f"{'margin wins':>12}")
    for backend_name in args.backends:
        X, digits, speakers = embeddings(backend_name, args.cache_dir)
        results = {"margin": [], "random": []}
        found = {"margin": [], "random": []}
        for held_out in FOLDS:
            test = np.isin(speakers, held_out)
            for digit in sorted(set(digits)):
                for seed in range(args.seeds):
                    for strategy in results:
                        score, n_positive = run_one(
                            X[~test], digits[~test] == digit, X[test], digits[test] == digit,
                            strategy=strategy, seed=seed, rounds=args.rounds, batch=args.batch,
                        )
                        results[strategy].append(score)
                        found[strategy].append(n_positive)
        wins = np.mean(np.array(results["margin"]) > np.array(results["random"]))
        for strategy, scores in results.items():
            print(f"{backend_name:10} {strategy:9} {np.mean(scores):8.3f} {np.std(scores):6.3f} "
                  f"{np.mean(found[strategy]):19.1f} "
                  f"{(f'{wins:.0%}' if strategy == 'margin' else ''):>12}")
        ratio = np.mean(results["margin"]) / np.mean(results["random"])
        print(f"{backend_name:10} margin / random AP ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
