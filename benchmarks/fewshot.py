"""Few-shot figures on the shared datasets: N-way K-shot episodes, 95 % intervals.

Run on demand, not a test (a few minutes; embeddings come from the user's cache):

    python benchmarks/fewshot.py                       # birdnet, all three datasets
    python benchmarks/fewshot.py --backend mfcc --episodes 300

For each dataset, with support and queries from disjoint groups (FSDD and Speech
Commands: speakers; Philharmonia: instrument + dynamic), and the same episodes for every
method (paired):

* 5-way 1-shot and 5-shot, 2 extra out-of-set classes per episode: accuracy, coarse
  accuracy where a taxonomy exists, and the rejection of out-of-set queries at the
  threshold that keeps 90 % of in-set queries;
* all-way 5-shot (every class that can be split), the analogue of the ESC-50 50-way
  protocol the issue quotes.

``prototype-euclidean`` is the bare-script baseline (standardised class means, Euclidean);
``prototype`` is earmark's default; ``hierarchical`` adds the taxonomy's levels; ``logreg``
is a non-prototype reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.fewshot.evaluation import evaluate_episodes
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {
    "fsdd": ("fsdd", None),
    "speech-commands": ("speech-commands-mini", "speech-commands"),
    "philharmonia": ("philharmonia-mini", "philharmonia"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="birdnet")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    backend = get_backend(args.backend)
    store = open_store()
    report = {}
    for name in args.datasets:
        folder, taxonomy = DATASETS[name]
        manifest = load_dataset(SHARED / folder)
        X, ok, _ = clip_embeddings(manifest, backend, store, progress=False)
        manifest = manifest.subset(ok)
        y, groups = manifest.y, manifest.groups
        methods = ["prototype-euclidean", "prototype", "logreg"]
        if taxonomy:
            methods.insert(2, "hierarchical")
        print(f"\n## {name}: {len(y)} clips, {len(set(y))} classes, {backend.name} {X.shape[1]}-d")
        for ways, shots, unknown, episodes in (
            (5, (1, 5), 2, args.episodes),
            ("all", (5,), 0, max(args.episodes // 3, 50)),
        ):
            for method in methods:
                start = time.perf_counter()
                with threadpool_limits(limits=1, user_api="blas"):
                    result = evaluate_episodes(
                        X, y, groups=groups, estimator=method, ways=ways, shots=shots,
                        episodes=episodes, unknown_ways=unknown, taxonomy=taxonomy, seed=0,
                    )
                seconds = time.perf_counter() - start
                for point in result.points:
                    line = (
                        f"{method:20s} {str(ways):>3}-way {point.shots}-shot: "
                        f"{100 * point.mean:5.1f} ± {100 * point.ci95:4.1f} %"
                    )
                    coarse = point.figure("coarse_accuracy")
                    if coarse:
                        line += f"  coarse {100 * coarse[0]:5.1f} ± {100 * coarse[1]:4.1f}"
                    rejection = point.figure("rejection")
                    if rejection:
                        line += f"  reject@90 {100 * rejection[0]:5.1f} ± {100 * rejection[1]:4.1f}"
                    own = point.figure("own_coverage"), point.figure("own_rejection")
                    if all(own):
                        line += f"  own threshold keeps {100 * own[0][0]:.0f} %, rejects {100 * own[1][0]:.0f} %"
                    print(line + f"  ({point.n_episodes} episodes, {seconds:.0f} s)", flush=True)
                    report.setdefault(name, []).append(
                        {"method": method, "ways": ways, **point.to_dict()}
                    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
