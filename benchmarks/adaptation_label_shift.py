"""Adaptation under a change of recorder *and* of class proportions; ``auto`` against doing nothing.

Run on demand, not a test (cached embeddings from the user's store; OMP_NUM_THREADS=1):

    python benchmarks/adaptation_label_shift.py --backend birdnet
    python benchmarks/adaptation_label_shift.py --backend mfcc --output mfcc.json
    python benchmarks/adaptation_label_shift.py --report birdnet.json mfcc.json

Cases (fixed seeds; the target's labels only score, and pick nothing):

* ``fsdd-imbalanced``: each FSDD speaker in turn is the target, 600 clips of the other
  five the source; the target is subsampled so that its classes fall geometrically from
  50 clips to 5 (a 10:1 label shift, class order drawn with the seed);
* ``fsdd-balanced``: the same speakers, 200 target clips drawn at random;
* ``commands-to-fsdd``: a change of collection. The source is the 100 Speech Commands
  clips of the words "zero" to "nine" (16 kHz, many speakers, 10 per word); the target
  is FSDD (8 kHz, 6 speakers) subsampled 10:1 as above (150 clips for the commonest digit);
  seeds 0 and 1;
* ``philharmonia``: forte is the source, pianissimo and piano the targets (all clips).

Protocol: transductive, as ``earmark evaluate --adapt``: each method adapts to the
target's embeddings and labels them; the probe is logistic regression; no parameter was
tuned on these targets after ``auto`` was fixed (see earmark.adaptation.selection for
what was looked at before). Reported per case: target accuracy of every method and of
``auto``, and the total-variation distance between each method's estimated target class
proportions and the true ones (0 = exact, 1 = disjoint), next to that of the source
proportions (what assuming no label shift costs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
METHODS = ("standardize", "coral", "selftrain", "priors", "standardize+priors", "coral+priors",
           "prototypes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="birdnet")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cases", nargs="+",
                        default=["fsdd-imbalanced", "fsdd-balanced", "commands-to-fsdd", "philharmonia"])
    parser.add_argument("--output", type=Path, default=Path("benchmark-adaptation-label-shift.json"))
    parser.add_argument("--report", type=Path, nargs="+", default=None)
    args = parser.parse_args()
    if args.report:
        report([row for path in args.report for row in json.loads(path.read_text())])
        return
    rows = []
    for name, Xs, ys, Xt, yt in cases(args.backend, args.shared, args.cases):
        started = time.perf_counter()
        row = run_one(Xs, ys, Xt, yt)
        row.update(case=name, backend=args.backend)
        rows.append(row)
        print(f"{name:32} none {row['accuracy']['none']:.3f} auto {row['accuracy']['auto']:.3f} "
              + " ".join(f"{m}={v:.3f}" for m, v in row["accuracy"].items() if m not in ("none", "auto"))
              + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        args.output.write_text(json.dumps(rows, indent=2))
    report(rows)
    print(f"wrote {args.output}")


def embeddings(folder: str, backend_name: str, shared: Path):
    from earmark.backends import get_backend
    from earmark.datasets import load_dataset
    from earmark.pipeline import clip_embeddings
    from earmark.store import open_store

    manifest = load_dataset(shared / folder)
    X, ok, _ = clip_embeddings(manifest, get_backend(backend_name), open_store(None), progress=False)
    manifest = manifest.subset(ok)
    domains = np.asarray(manifest.domains, dtype=str) if manifest.has_domains else None
    return X.astype(np.float64), np.asarray(manifest.y).astype(str), domains


def imbalanced(y, rng, n_max: int, ratio: float = 10.0) -> np.ndarray:
    """Indices with class sizes falling geometrically from n_max to n_max / ratio."""
    classes = np.unique(y)
    order = rng.permutation(len(classes))
    shares = ratio ** (-np.arange(len(classes)) / (len(classes) - 1))
    chosen = []
    for label, share in zip(classes[order], shares):
        members = np.flatnonzero(y == label)
        count = min(len(members), max(1, int(round(n_max * share))))
        chosen += list(rng.choice(members, count, replace=False))
    return np.array(sorted(chosen))


def cases(backend: str, shared: Path, wanted):
    if {"fsdd-imbalanced", "fsdd-balanced", "commands-to-fsdd"} & set(wanted):
        X, y, speakers = embeddings("fsdd", backend, shared)
    for kind in ("fsdd-imbalanced", "fsdd-balanced"):
        if kind not in wanted:
            continue
        for target in sorted(set(speakers.tolist())):
            rng = np.random.default_rng(0)
            source = rng.choice(np.flatnonzero(speakers != target), 600, replace=False)
            items = np.flatnonzero(speakers == target)
            if kind == "fsdd-imbalanced":
                items = items[imbalanced(y[items], rng, 50)]
            else:
                items = rng.choice(items, 200, replace=False)
            yield f"{kind} {target}", X[source], y[source], X[items], y[items]
    if "commands-to-fsdd" in wanted:
        Xc, words, _ = embeddings("speech-commands-mini", backend, shared)
        keep = np.isin(words, WORDS)
        yc = np.array([str(WORDS.index(word)) for word in words[keep]])
        for seed in (0, 1):
            items = imbalanced(y, np.random.default_rng(seed), 150)
            yield f"commands-to-fsdd seed {seed}", Xc[keep], yc, X[items], y[items]
    if "philharmonia" in wanted:
        Xp, yp, dynamics = embeddings("philharmonia-mini", backend, shared)
        for target in ("pianissimo", "piano"):
            source, items = dynamics == "forte", dynamics == target
            yield f"philharmonia forte-{target}", Xp[source], yp[source], Xp[items], yp[items]


def run_one(Xs, ys, Xt, yt) -> dict:
    from earmark.adaptation import AUTO_CANDIDATES, adapt_and_predict, consensus, estimated_priors

    predictions, priors = {}, {}
    for method in ("none", *METHODS):
        predictions[method], fitted = adapt_and_predict(method, Xs, ys, Xt)
        estimate = estimated_priors(fitted)
        if estimate is not None:
            priors[method] = estimate
    labels, choice = consensus({name: predictions[name] for name in ("none", *AUTO_CANDIDATES)})
    predictions["auto"] = labels
    classes = np.unique(ys)
    true = {str(c): float(np.mean(yt == c)) for c in classes}
    source = {str(c): float(np.mean(ys == c)) for c in classes}

    def distance(estimate):
        return 0.5 * sum(abs(estimate[c] - true[c]) for c in true)

    return {
        "n_source": int(len(ys)),
        "n_target": int(len(yt)),
        "accuracy": {name: float(np.mean(np.asarray(p).astype(str) == yt)) for name, p in predictions.items()},
        "auto": choice.to_dict(),
        "true_priors": true,
        "prior_error": {"source proportions": distance(source),
                        **{name: distance(estimate) for name, estimate in priors.items()}},
        "estimated_priors": priors,
    }


def report(rows: list[dict]) -> None:
    for backend in dict.fromkeys(row["backend"] for row in rows):
        for family in dict.fromkeys(row["case"].split()[0] for row in rows if row["backend"] == backend):
            subset = [row for row in rows if row["backend"] == backend and row["case"].split()[0] == family]
            names = list(subset[0]["accuracy"])
            print(f"\n== {family} ({backend}), {len(subset)} case(s): target accuracy, mean "
                  f"[worst change against none, points]")
            for name in names:
                values = np.array([row["accuracy"][name] for row in subset])
                change = 100 * (values - np.array([row["accuracy"]["none"] for row in subset]))
                print(f"  {name:20} {values.mean():6.1%}  [{change.min():+5.1f}]")
            print("  estimated proportions, total-variation distance to the truth (mean):")
            for name in subset[0]["prior_error"]:
                print(f"    {name:20} {np.mean([row['prior_error'][name] for row in subset]):.3f}")


if __name__ == "__main__":
    main()
