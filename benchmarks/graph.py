"""Graph tagger (ATGNN-style) against non-graph heads on the same frozen aiSFX maps.

Run on demand, not a test:

    OMP_NUM_THREADS=1 python benchmarks/graph.py
    python benchmarks/graph.py --datasets philharmonia --heads linear graph   # quicker

Every head reads the same thing: aiSFX's frozen 512 x 12 x 12 maps of 2.35 s patches,
taken before pooling (:func:`earmark.interpret.encoders.frozen_maps`), computed once per
dataset. Heads, with their learned parameters (aiSFX's frozen 4.7 M not counted):

- ``linear probe``: logistic regression (standardised, C=1, one-vs-rest for tags) on the
  pooled embedding (aiSFX's own pooling: mean over bands, max over time; mean over a
  clip's patches);
- ``prototype network``: :class:`earmark.interpret.PrototypeNetwork` with the ``aisfx``
  encoder (single-label only);
- ``small CNN head``: a 1x1 convolution to 16 channels, a 3x3 one, global average and
  max pooling, a linear layer (trained as the graph tagger is: AdamW, 40 epochs);
- ``graph tagger`` and ``hypergraph tagger``: :class:`earmark.graph.GraphTagger` with
  ``mode="graph"`` (kNN edges recomputed per layer) and ``"hypergraph"`` (k-means cluster
  hyperedges per layer), same everything else.

Data and splits:

- **Philharmonia mini** (instrument and dynamic groups) and **Speech Commands mini**
  (official folds): :func:`earmark.splits.make_splits` with the dataset's folds and
  groups, seed 0: exactly the splits of ``benchmarks/accuracy.py`` and
  ``benchmarks/protonet.py``. Item accuracy, a clip scored by the mean of its patches'
  logits (Philharmonia: at most 2 patches per note; Speech Commands: 1).
- **Philharmonia mixtures** (multi-label), built as in ``benchmarks/fewshot_multilabel.py``
  (its ``draw``): the first second of two recordings of different instruments at equal
  RMS, summed; per seed, each instrument's groups split in halves, training items (3
  singles + 6 mixed recordings per instrument) from one half, test items (3 singles + 10
  mixed) from the other. Macro mean average precision over instruments.

Accuracy and mAP do not depend on the temperature the tagger calibrates (it rescales
logits monotonically), so the taggers are trained here without the held-out calibration
fit (``calibrate=False``), which halves their time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from earmark.audio import load
from earmark.datasets import load_dataset
from earmark.graph import GraphTagger, clip_logits
from earmark.interpret.encoders import frozen_maps, patch_config
from earmark.interpret.features import log_mel_patches, manifest_patches
from earmark.interpret.protonet import PrototypeNetwork
from earmark.splits import make_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewshot_multilabel import draw  # noqa: E402 - a sibling benchmark's honest mixtures

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DATASETS = {"philharmonia": "philharmonia-mini", "speech-commands": "speech-commands-mini"}
MAX_PATCHES = {"philharmonia": 2, "speech-commands": 1}
HEADS = ("linear", "protonet", "cnn", "graph", "hypergraph")
#: Not run by default: the graph tagger at a quarter of its width (hidden=8), and the
#: taggers with their pooled path started at zero instead of at the probe (before).
EXTRA_HEADS = ("graph-small", "graph-zero", "hypergraph-zero")
NAMES = {"linear": "linear probe (pooled)", "protonet": "prototype network (aisfx)",
         "cnn": "small CNN head", "graph": "graph tagger (kNN)", "hypergraph": "hypergraph tagger",
         "graph-small": "graph tagger (kNN), hidden 8",
         "graph-zero": "graph tagger (kNN), pooled path from zero (before)",
         "hypergraph-zero": "hypergraph tagger, pooled path from zero (before)"}


# ------------------------------------------------------------------ the heads
def pooled(maps: np.ndarray) -> np.ndarray:
    """aiSFX's own clip pooling of a patch's maps: mean over bands, max over time."""
    return maps.mean(axis=3).max(axis=2)


def per_item(values: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    return clip_logits(values, item, n_items)[0]


def linear_probe(train_X, train_y, test_X, multilabel: bool):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=1.0, max_iter=2000)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if multilabel else classifier)
    model.fit(train_X, train_y)
    n_classes = train_y.shape[1] if multilabel else len(np.unique(train_y))
    return model.predict_proba(test_X), (train_X.shape[1] + 1) * n_classes


class SmallCNN(torch.nn.Module):
    def __init__(self, n_classes: int, channels: int = 16):
        super().__init__()
        self.reduce = torch.nn.Conv2d(512, channels, 1)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.out = torch.nn.Linear(2 * channels, n_classes)

    def forward(self, x):
        h = torch.relu(self.conv(torch.relu(self.reduce(x))))
        return self.out(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


def cnn_head(train_maps, train_y, test_maps, multilabel: bool, *, epochs=40, seed=0):
    torch.manual_seed(seed)
    mean, scale = float(train_maps.mean()), float(train_maps.std()) or 1.0
    x = torch.from_numpy(((train_maps - mean) / scale).astype(np.float32))
    n_classes = train_y.shape[1] if multilabel else int(train_y.max()) + 1
    y = torch.from_numpy(train_y.astype(np.float32 if multilabel else np.int64))
    network = SmallCNN(n_classes)
    optimiser = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-2)
    n_batches = max(1, math.ceil(len(x) / 32))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * n_batches)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        network.train()
        for batch in np.array_split(rng.permutation(len(x)), n_batches):
            logits = network(torch.nn.functional.dropout(x[batch], 0.1))
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y[batch]) if multilabel
                    else torch.nn.functional.cross_entropy(logits, y[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    network.eval()
    with torch.no_grad():
        logits = network(torch.from_numpy(((test_maps - mean) / scale).astype(np.float32))).numpy()
    return logits, sum(p.numel() for p in network.parameters())


def graph_head(head, train_maps, train_y, train_groups, test_maps, *, pool=(1, 2)):
    def nodes(maps):  # as earmark.graph.node_maps pools them
        n, c, h, w = maps.shape
        return maps.reshape(n, c, h // pool[0], pool[0], w // pool[1], pool[1]).mean(axis=(3, 5))

    mode, params = ("graph", {"hidden": 8}) if head == "graph-small" else (head, {})
    if head.endswith("-zero"):
        mode, params = head.removesuffix("-zero"), {"pooled_init": "zero"}
    tagger = GraphTagger(mode=mode, pool=pool, calibrate=False, **params).fit(
        None, train_y, maps=nodes(train_maps), groups=train_groups)
    return tagger.decision_function(maps=nodes(test_maps)), tagger.n_parameters_


# ------------------------------------------------------------- single-label
def single_label(dataset: str, heads, args, console) -> list[dict]:
    manifest = load_dataset(args.shared / DATASETS[dataset])
    patches = manifest_patches(manifest, patch_config("aisfx", max_patches=MAX_PATCHES[dataset]))
    started = time.perf_counter()
    maps = np.concatenate([frozen_maps("aisfx", patches.X[i:i + 64]) for i in range(0, len(patches.X), 64)])
    console(f"{dataset}: {len(patches.X)} patches of {len(manifest)} items, maps in "
            f"{time.perf_counter() - started:.0f} s")
    y = np.asarray(manifest.y)
    classes, targets = np.unique(y, return_inverse=True)
    item = patches.item
    plan = make_splits(y, folds=manifest.folds if manifest.has_folds else None,
                       groups=manifest.groups if manifest.has_groups else None, random_state=0)
    groups = manifest.groups if manifest.has_groups else np.arange(len(y))
    embeddings = per_item(pooled(maps), item, len(y))
    rows = {head: {"accuracy": [], "parameters": [], "seconds": []} for head in heads}
    for split in plan.splits:
        train, test = np.isin(item, split.train), np.isin(item, split.test)
        tested = np.zeros(len(y), bool)
        tested[split.test] = True
        tested &= patches.ok
        for head in heads:
            started = time.perf_counter()
            if head == "linear":
                fit_items = split.train[patches.ok[split.train]]
                P, n = linear_probe(embeddings[fit_items], targets[fit_items], embeddings[tested], False)
                predicted = np.unique(targets[fit_items])[P.argmax(axis=1)]
            else:
                if head == "protonet":
                    network = PrototypeNetwork(encoder="aisfx", random_state=0).fit(
                        patches.X[train], targets[item[train]])
                    logits = np.log(np.maximum(network.predict_proba(patches.X[test]), 1e-12))
                    labels, n = network.classes_, network.n_parameters_
                elif head == "cnn":
                    logits, n = cnn_head(maps[train], targets[item[train]], maps[test], False)
                    labels = np.arange(logits.shape[1])
                else:
                    logits, n = graph_head(head, maps[train], targets[item[train]],
                                           groups[item[train]], maps[test])
                    labels = np.unique(targets[item[train]])
                predicted = labels[per_item(logits, item[test], len(y))[tested].argmax(axis=1)]
            accuracy = float(np.mean(predicted == targets[tested]))
            rows[head]["accuracy"].append(accuracy)
            rows[head]["parameters"].append(int(n))
            rows[head]["seconds"].append(time.perf_counter() - started)
            console(f"{dataset:16} {split.name[:28]:28} {NAMES[head]:26} {accuracy:6.1%} "
                    f"{int(n):>8,} params {rows[head]['seconds'][-1]:5.0f} s")
    return [{"dataset": dataset, "head": NAMES[head], "metric": "accuracy", "strategy": plan.strategy,
             "mean": float(np.mean(r["accuracy"])), "std": float(np.std(r["accuracy"])),
             "folds": r["accuracy"], "parameters": int(np.mean(r["parameters"])),
             "train_s_mean": float(np.mean(r["seconds"]))} for head, r in rows.items()]  # fmt: skip


# -------------------------------------------------------------- multi-label
def mixture_maps(items, instruments, config, cache) -> tuple[np.ndarray, np.ndarray]:
    """Frozen maps of each item (its recordings' first second at equal RMS, summed) and
    its 0/1 instrument matrix."""
    from earmark.interpret.encoders import frozen_maps

    patches = []
    for paths, _ in items:
        mix = 0
        for path in paths:
            if path not in cache:
                wave, _ = load(path, sr=config.sr, end_s=1.0)
                wave = np.pad(wave, (0, max(0, config.sr - len(wave))))
                cache[path] = wave / max(float(np.sqrt(np.mean(wave**2))), 1e-8)
            mix = mix + cache[path]
        mix = 0.1 * mix / max(float(np.abs(mix).max()), 1e-8)
        patches.append(log_mel_patches(mix.astype(np.float32), config)[0][0])
    X = np.stack(patches)
    maps = np.concatenate([frozen_maps("aisfx", X[i:i + 64]) for i in range(0, len(X), 64)])
    truth = np.array([[i in labels for i in instruments] for _, labels in items], np.int64)
    return maps, truth


def multi_label(heads, args, console) -> list[dict]:
    from sklearn.metrics import average_precision_score

    manifest = load_dataset(args.shared / "philharmonia-mini")
    instruments = sorted(np.unique(manifest.y).tolist())
    config = patch_config("aisfx", max_patches=1)
    cache: dict = {}
    heads = [h for h in heads if h != "protonet"]  # single-label only
    rows = {head: {"map": [], "parameters": []} for head in heads}
    for seed in range(args.seeds):
        support, queries = draw(np.random.default_rng(seed), manifest, 3, 6, 3, 10)
        train_maps, train_y = mixture_maps(support, instruments, config, cache)
        test_maps, test_y = mixture_maps(queries, instruments, config, cache)
        for head in heads:
            if head == "linear":
                scores, n = linear_probe(pooled(train_maps), train_y, pooled(test_maps), True)
            elif head == "cnn":
                scores, n = cnn_head(train_maps, train_y, test_maps, True, seed=seed)
            else:
                scores, n = graph_head(head, train_maps, train_y, np.arange(len(train_y)), test_maps)
            value = float(average_precision_score(test_y, scores, average="macro"))
            rows[head]["map"].append(value)
            rows[head]["parameters"].append(int(n))
            console(f"mixtures seed {seed} {NAMES[head]:26} mAP {value:.3f} {int(n):>8,} params")
    return [{"dataset": "philharmonia mixtures", "head": NAMES[head], "metric": "mAP",
             "strategy": f"{args.seeds} seeds, train/test from different groups",
             "mean": float(np.mean(r["map"])), "std": float(np.std(r["map"])), "folds": r["map"],
             "parameters": int(np.mean(r["parameters"]))} for head, r in rows.items()]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=[*DATASETS, "mixtures"],
                        choices=[*DATASETS, "mixtures"])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS + EXTRA_HEADS)
    parser.add_argument("--seeds", type=int, default=3, help="mixture draws")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--output", type=Path, default=Path("benchmark-graph.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    def console(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = []
    for dataset in args.datasets:
        rows += multi_label(args.heads, args, console) if dataset == "mixtures" else \
            single_label(dataset, args.heads, args, console)
        args.output.write_text(json.dumps(rows, indent=2))
    print(f"| dataset | head | learned parameters | {'score'} (mean ± std over splits) |")
    print("|---|---|---:|---|")
    for row in rows:
        print(f"| {row['dataset']} | {row['head']} | {row['parameters']:,} | "
              f"{row['metric']} {100 * row['mean']:.1f} ± {100 * row['std']:.1f} |")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
