"""Clustering figures on the shared datasets: do unsupervised clusters find the labels?

Run on demand, not a test (minutes; embeddings come from the user's cache):

    python benchmarks/clustering.py                          # birdnet and mfcc, all datasets
    python benchmarks/clustering.py --backends birdnet --datasets philharmonia

For each dataset (FSDD digits, 3000 clips; Speech Commands mini words, 300; Philharmonia
mini instruments, 480), each backend and each method, the clusters of the clip embeddings
are compared with the labels (which the clustering never sees): purity, adjusted Rand
index (ARI) and normalised mutual information (NMI), with the number of clusters the
method chose and the criterion behind the choice (silhouette over k = 2..max_k for k-means
and agglomerative, HDBSCAN's own stability). The same methods with k set to the true
number of classes ("k=true", which uses the labels to pick k) are the reference for what
the automatic choice costs. A chance line (the labels shuffled, scored as if they were
clusters: k=true) shows how far from nothing each figure is; NMI in particular is far
above 0 by chance with many small classes. The last column scores the same clusters
against the speakers (FSDD, Speech Commands: the datasets' groups), which is what MFCC
and BirdNET clusters of spoken digits mostly follow.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.explore.cluster import EmbeddingClusterer, cluster_scores
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {
    "fsdd": "fsdd",
    "speech-commands": "speech-commands-mini",
    "philharmonia": "philharmonia-mini",
}
METHODS = ("kmeans", "agglomerative", "hdbscan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=["birdnet", "mfcc"])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--max-k", type=int, default=40)
    parser.add_argument("--raw", action="store_true", help="Cluster without L2 normalisation.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    store = open_store()
    report = []
    header = (
        f"{'dataset':16s} {'backend':8s} {'method':14s} {'k':>9s} {'purity':>7s} {'ARI':>6s} "
        f"{'NMI':>6s} {'unassigned':>10s} {'ARI spk':>7s}  criterion"
    )
    print(header)
    print("-" * len(header))
    for name in args.datasets:
        manifest = load_dataset(SHARED / DATASETS[name])
        for backend_name in args.backends:
            backend = get_backend(backend_name)
            X, ok, _ = clip_embeddings(manifest, backend, store, progress=False)
            kept = manifest.subset(ok)
            y = kept.y
            speakers = kept.groups if name != "philharmonia" and kept.has_groups else None
            n_classes = len(set(y))
            chance = cluster_scores(y, np.random.default_rng(0).permutation(
                np.unique(y, return_inverse=True)[1]
            ))
            rows = [("chance", "true", chance, "labels shuffled", 0.0, None)]
            for method in args.methods:
                settings = [("auto", "auto")]
                if method != "hdbscan":
                    settings.append((n_classes, "true"))
                for k, k_name in settings:
                    model = EmbeddingClusterer(
                        method=method, n_clusters=k, max_clusters=args.max_k,
                        normalize=not args.raw,
                    )
                    start = time.perf_counter()
                    with threadpool_limits(limits=1, user_api="blas"):
                        model.fit(X)
                    seconds = time.perf_counter() - start
                    by_speaker = None
                    if speakers is not None:
                        by_speaker = cluster_scores(speakers, model.labels_)["adjusted_rand"]
                    rows.append((
                        method, k_name, cluster_scores(y, model.labels_), model.criterion_,
                        seconds, by_speaker,
                    ))
            for method, k_name, scores, criterion, seconds, by_speaker in rows:
                speaker_text = "-" if by_speaker is None else f"{by_speaker:.3f}"
                label = f"{scores['n_clusters']}" + (" (true)" if k_name == "true" else "")
                print(
                    f"{name:16s} {backend_name:8s} {method:14s} {label:>9s} "
                    f"{scores['purity']:7.3f} {scores['adjusted_rand']:6.3f} {scores['nmi']:6.3f} "
                    f"{100 * scores['unassigned']:9.0f}% {speaker_text:>7s}  {criterion} "
                    f"({seconds:.1f} s)",
                    flush=True,
                )
                report.append({
                    "dataset": name, "backend": backend_name, "method": method, "k": k_name,
                    "n_items": len(y), "n_classes": n_classes, **scores, "criterion": criterion,
                    "seconds": seconds, "adjusted_rand_speakers": by_speaker,
                })
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
