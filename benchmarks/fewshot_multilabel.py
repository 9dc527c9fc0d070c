"""Multi-label few-shot on real mixtures: calibrated thresholds against a fixed 0.5.

Run on demand, not a test:

    python benchmarks/fewshot_multilabel.py                   # mfcc, 5 seeds
    python benchmarks/fewshot_multilabel.py --backend birdnet --seeds 3

Multi-label items are made honestly from real audio: the first second of two
Philharmonia recordings of *different* instruments, each scaled to the same RMS and
summed, labelled with both instruments (and embedded with
:func:`earmark.embedding.embed_signal`). Per seed, each instrument's recordings are split
by group (instrument and dynamic) into a support side and a query side, so no query
shares a recording, or even a dynamic marking, with the support set, and every recording
is used once (two support items sharing one would flatter the leave-one-out thresholds).
The support set is ``--singles`` recordings per instrument heard alone plus mixtures
pairing ``--mixed`` more per instrument; the queries likewise from the query side.

Scored: micro and macro F1 over the instrument labels, per-label F1, and with the
``philharmonia`` taxonomy (instrument -> family) the family-level micro F1 and how often
a prediction breaks "a child implies its parent" (it must never). Figures are means over
seeds with a 95 % Student-t interval over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from earmark.audio import load
from earmark.backends import get_backend
from earmark.datasets import load_dataset
from earmark.embedding import embed_signal
from earmark.fewshot.multilabel import MultiLabelPrototypeClassifier
from earmark.taxonomy import load_taxonomy

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
WINDOW_S = 1.0


def t_interval(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(values.mean()), float("nan")
    half = values.std(ddof=1) / np.sqrt(values.size) * stats.t.ppf(0.975, values.size - 1)
    return float(values.mean()), float(half)


class Mixer:
    """Waveforms of the first second of each file, loaded once, mixed at equal RMS."""

    def __init__(self, backend):
        self.backend = backend
        self.sr = backend.sample_rate
        self._waves: dict[str, np.ndarray] = {}

    def wave(self, path) -> np.ndarray:
        path = str(path)
        if path not in self._waves:
            y, _ = load(path, sr=self.sr, end_s=WINDOW_S)
            y = np.pad(y, (0, max(0, int(WINDOW_S * self.sr) - len(y))))
            self._waves[path] = y / max(float(np.sqrt(np.mean(y**2))), 1e-8)
        return self._waves[path]

    def embed(self, paths) -> np.ndarray:
        mix = sum(self.wave(p) for p in paths)
        # One peak level for singles and mixtures: loudness must not give the count away.
        mix = 0.1 * mix / max(float(np.abs(mix).max()), 1e-8)
        return embed_signal(self.backend, mix.astype(np.float32), self.sr).clip


def pair_up(rng, slots: list) -> list:
    """Pairs of (instrument, path) slots, each slot used once, instruments different."""
    for _ in range(1000):
        order = rng.permutation(len(slots))
        pairs = [(slots[a], slots[b]) for a, b in zip(order[::2], order[1::2])]
        if all(first[0] != second[0] for first, second in pairs):
            return pairs
    raise RuntimeError("no pairing of different instruments found")


def draw(rng, manifest, singles: int, mixed: int, query_singles: int, query_mixed: int):
    """Support and query items as (paths, labels), every recording used at most once,
    support and query from different groups (instrument and dynamic)."""
    paths, labels, groups = (np.asarray(v) for v in (manifest.paths, manifest.y, manifest.groups))
    support_single, support_slots, query_single, query_slots = [], [], [], []
    for instrument in np.unique(labels):
        mine = labels == instrument
        names = rng.permutation(np.unique(groups[mine]))
        half = max(1, len(names) // 2)
        side = rng.permutation(paths[mine & np.isin(groups, names[:half])]).tolist()
        other = rng.permutation(paths[mine & np.isin(groups, names[half:])]).tolist()
        support_single += [((p,), (instrument,)) for p in side[:singles]]
        support_slots += [(instrument, p) for p in side[singles:singles + mixed]]
        query_single += [((p,), (instrument,)) for p in other[:query_singles]]
        query_slots += [(instrument, p) for p in other[query_singles:query_singles + query_mixed]]

    def mixtures(slots):
        pairs = pair_up(rng, slots[: len(slots) // 2 * 2])
        return [((a[1], b[1]), (a[0], b[0])) for a, b in pairs]

    return support_single + mixtures(support_slots), query_single + mixtures(query_slots)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="mfcc")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--singles", type=int, default=3,
                        help="support recordings heard alone, per instrument")
    parser.add_argument("--mixed", type=int, default=6,
                        help="support recordings in mixtures, per instrument")
    parser.add_argument("--query-singles", type=int, default=3)
    parser.add_argument("--query-mixed", type=int, default=10)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--output", type=Path, default=Path("benchmark-fewshot-multilabel.json"))
    args = parser.parse_args()

    manifest = load_dataset(args.shared / "philharmonia-mini")
    taxonomy = load_taxonomy("philharmonia")
    mixer = Mixer(get_backend(args.backend))
    instruments = sorted(np.unique(manifest.y).tolist())
    variants = {
        f"{metric} {name}{' +taxonomy' if tax else ''}": dict(
            metric=metric, threshold=threshold, taxonomy=taxonomy if tax else None
        )
        for metric in ("euclidean", "cosine")
        for tax in (False, True)
        for name, threshold in (("calibrated", "leave-one-out"), ("fixed 0.5", 0.5))
    }
    results = {name: [] for name in variants}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        support, queries = draw(
            rng, manifest, args.singles, args.mixed, args.query_singles, args.query_mixed
        )
        X_support = np.stack([mixer.embed(paths) for paths, _ in support])
        X_query = np.stack([mixer.embed(paths) for paths, _ in queries])
        Y_support = [labels for _, labels in support]
        truth = np.array([[i in labels for i in instruments] for _, labels in queries], int)
        families = sorted({taxonomy.parent(i) for i in instruments})
        family_truth = np.array(
            [[f in taxonomy.closure(labels) for f in families] for _, labels in queries], int
        )
        for name, params in variants.items():
            model = MultiLabelPrototypeClassifier(**params).fit(X_support, Y_support)
            predicted = model.predict(X_query)
            columns = [list(model.classes_).index(i) for i in instruments]
            leaf = predicted[:, columns]
            row = {
                "seed": seed,
                "micro_f1": f1_score(truth, leaf, average="micro", zero_division=0),
                "micro_auc": roc_auc_score(
                    truth, model.predict_proba(X_query)[:, columns], average="micro"
                ),
                "every_f1": f1_score(truth, np.ones_like(truth), average="micro"),
                "macro_f1": f1_score(truth, leaf, average="macro", zero_division=0),
                "per_label_f1": dict(zip(instruments, f1_score(
                    truth, leaf, average=None, zero_division=0).tolist())),
                "calibrated_labels": int(model.calibrated_.sum()),
                "mean_threshold": float(model.thresholds_[columns].mean()),
                "labels_per_query": float(leaf.sum(axis=1).mean()),
            }
            if params["taxonomy"] is not None:
                family_columns = [list(model.classes_).index(f) for f in families]
                row["family_micro_f1"] = f1_score(
                    family_truth, predicted[:, family_columns], average="micro", zero_division=0
                )
                parents = model.parent_index_
                broken = sum(
                    int(np.sum(predicted[:, j] & (1 - predicted[:, parents[j]])))
                    for j in range(len(parents)) if parents[j] >= 0
                )
                row["child_without_parent"] = broken
            results[name].append(row)
        print(f"seed {seed}: " + ", ".join(
            f"{name} {results[name][-1]['micro_f1']:.3f}" for name in variants), flush=True)

    print(f"\nPhilharmonia mixtures, {args.backend}, {len(instruments)} instruments; support: "
          f"{args.singles} single + {args.mixed} mixed recordings per instrument "
          f"({len(support)} items); queries: {args.query_singles} single + {args.query_mixed} "
          f"mixed per instrument ({len(queries)} items); {args.seeds} seeds; "
          f"mean ± 95 % t-interval over seeds")
    every = np.mean([r["every_f1"] for r in results[next(iter(results))]])
    print(f"saying every instrument every time: micro F1 {every:.3f}")
    print(f"{'variant':36} {'micro F1':>15} {'macro F1':>15} {'family micro F1':>15} "
          f"{'labels/query':>12} {'micro AUC':>9}")
    for name, rows in results.items():
        micro = t_interval([r["micro_f1"] for r in rows])
        macro = t_interval([r["macro_f1"] for r in rows])
        family = (t_interval([r["family_micro_f1"] for r in rows])
                  if "family_micro_f1" in rows[0] else None)
        print(f"{name:36} {micro[0]:.3f} ± {micro[1]:.3f}   {macro[0]:.3f} ± {macro[1]:.3f}   "
              + (f"{family[0]:.3f} ± {family[1]:.3f}" if family else " " * 13)
              + f"   {np.mean([r['labels_per_query'] for r in rows]):10.2f}"
              + f"   {np.mean([r['micro_auc'] for r in rows]):.3f}")
    print("\nper-label F1 (euclidean, no taxonomy): calibrated / fixed 0.5")
    for instrument in instruments:
        calibrated, fixed = (
            np.mean([r["per_label_f1"][instrument] for r in results[name]])
            for name in ("euclidean calibrated", "euclidean fixed 0.5")
        )
        print(f"  {instrument:14} {calibrated:.3f} / {fixed:.3f}")
    broken = [r.get("child_without_parent", 0) for rows in results.values() for r in rows]
    print(f"predictions with a child label but not its parent: {sum(broken)}")
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
