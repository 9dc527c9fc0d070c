"""Few-data study figures: networks from scratch and aiSFX fine-tuned, beside frozen probes.

Usage: ``python benchmarks/networks.py DATASET ARCHITECTURE [ARCHITECTURE ...] [k=v ...]``
with DATASET one of fsdd, philharmonia, speech-commands, demo (paths under
../shared/datasets relative to the project root, or the bundled demo), and ``k=v``
estimator parameters (``epochs=3``) or ``steps=12`` (keep the first 12 aiSFX time steps,
2.3 s, of cached inputs). Prints each fold's training summary, accuracy per fold and
mean, training seconds per fold (2 CPU threads), and appends a JSON line per run to
``benchmarks/results/networks.jsonl``.

``python benchmarks/networks.py curve DATASET mfcc-knn,cnn-small,birdnet,aisfx-finetune``
draws the few-data study's learning curves on the same splits and draws
(``docs/few-data-DATASET.png``), as ``earmark curve --compare`` does, reusing the
cached front-end inputs.

Front-end inputs are cached under /tmp/earmark-network-inputs between runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"fsdd": "fsdd", "philharmonia": "philharmonia-mini", "speech-commands": "speech-commands-mini"}


def load(name: str):
    from earmark.datasets import load_dataset, load_demo

    if name == "demo":
        return load_demo()
    for base in (ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets")):
        if (base / DATASETS[name]).is_dir():
            return load_dataset(base / DATASETS[name])
    raise SystemExit(f"no {name} under ../shared/datasets")


def _report_each_fit() -> list:
    """Print each fold's training summary as it ends; keep the seconds."""
    from earmark.networks import NetworkClassifier

    seconds = []
    fit = NetworkClassifier.fit

    def reporting(self, X, y, *, groups=None):
        out = fit(self, X, y, groups=groups)
        summary = {k: v for k, v in self.training.items() if not k.endswith("_rows")}
        seconds.append(summary["seconds"])
        print("  fold:", json.dumps(summary, default=str), flush=True)
        return out

    NetworkClassifier.fit = reporting
    return seconds


def _cached_inputs(manifest, dataset, architecture, steps=None):
    """network_inputs, kept on disk per dataset and front end between runs (benchmark only)."""
    import pickle

    from earmark.networks import ARCHITECTURES, NetworkClassifier, network_inputs

    frontend = ARCHITECTURES[architecture].frontend
    path = Path("/tmp/earmark-network-inputs") / f"{dataset}-{frontend}.pkl"
    if path.exists():
        with open(path, "rb") as handle:
            X, kept, shape, failures = pickle.load(handle)
        if steps and frontend != "log-mel" and shape[1] > steps:
            # The first ``steps`` time steps (about 0.19 s each): a shorter clip length
            # without recomputing the frozen blocks.
            X = np.ascontiguousarray(X.reshape(len(X), *shape)[:, :, :steps]).reshape(len(X), -1)
            shape = (shape[0], steps, shape[2])
        return X, kept, NetworkClassifier(architecture, input_shape=shape), failures
    block3 = path.with_name(f"{dataset}-aisfx-block3.pkl")
    if frontend == "aisfx-block4" and block3.exists():
        # The last block over the cached lower blocks' output: the same maps, 1/4 the work.
        import torch

        from earmark.networks.frontends import _frozen_network

        with open(block3, "rb") as handle:
            X3, kept, shape3, failures = pickle.load(handle)
        block = _frozen_network().conv_block4
        with torch.inference_mode():
            x = torch.from_numpy(X3.reshape(len(X3), *shape3))
            X = torch.cat([block(x[i : i + 32], pool=False) for i in range(0, len(x), 32)]).numpy()
        shape = X.shape[1:]
        X = X.reshape(len(X), -1)
        with open(path, "wb") as handle:
            pickle.dump((X, kept, shape, failures), handle, protocol=4)
        return _cached_inputs(manifest, dataset, architecture, steps)
    X, kept, learner, failures = network_inputs(manifest, architecture)
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump((X, kept, learner.input_shape, failures), handle, protocol=4)
    return X, kept, learner, failures


def curve(dataset: str, families: list[str], *, sizes=(1, 2, 4, 8, 16, "all"), draws: int = 1,
          n_splits: int = 3, steps=None, tag: str = "", keep: str = "", **params) -> None:
    """The few-data study: one learning curve per family on the same splits and draws.

    ``keep`` names families (comma-separated) read back from the saved JSON instead of
    measured again, for redrawing after a change to one family: the splits and draws are
    the same ones (seeded), so the curves stay comparable.
    """
    from earmark.backends import get_backend
    from earmark.curve import CurveResult, learning_curve
    from earmark.networks import family
    from earmark.pipeline import clip_embeddings
    from earmark.plots import plot_learning_curves
    from earmark.store import open_store

    manifest = load(dataset)
    out = ROOT / "benchmarks" / "results"
    saved = out / f"curve-{dataset}{tag}.json"
    kept_names = [name for name in str(keep).split(",") if name]
    previous = json.loads(saved.read_text()) if saved.exists() else {}
    curves = {}
    for name in families:
        if name in kept_names:
            curves[name] = CurveResult.from_dict(previous[name])
            print(f"{name}: kept from {saved.name}", flush=True)
            continue
        start = time.perf_counter()
        item = family(name)
        if item.architecture:
            X, kept, learner, _ = _cached_inputs(manifest, dataset, item.architecture, steps)
            # "aisfx-finetune.epochs=3" sets a parameter of that family only.
            learner.set_params(**{k.split(".")[-1]: v for k, v in params.items()
                                  if "." not in k or k.startswith(f"{name}.")})
        else:
            E, ok, _ = clip_embeddings([str(p) for p in manifest.paths], get_backend(item.backend),
                                       open_store(None))
            X, kept, learner = E, manifest.subset(ok), item.learner
        folds = kept.folds if kept.has_folds else None
        groups = kept.groups if kept.has_groups else None
        result = learning_curve(X, kept.y, folds=folds, groups=groups, learner=learner, sizes=list(sizes),
                                n_draws=draws, n_splits=n_splits)
        result.learner = name
        curves[name] = result
        print(result.summary(), f"({time.perf_counter() - start:.0f} s)", flush=True)
        _save_curves(saved, curves, previous)
    # Kept families are written back too (saving after measured ones only lost the kept
    # families that came after the last measured one).
    _save_curves(saved, curves, previous)
    plot_learning_curves(curves, ROOT / "docs" / f"few-data-{dataset}.png",
                         title=f"{dataset}: accuracy against examples per class (same splits and draws)")


def _save_curves(path: Path, curves: dict, previous: dict) -> None:
    """Every family measured or kept so far, then the saved ones not redrawn."""
    out = {n: c.to_dict() for n, c in curves.items()}
    out.update({n: c for n, c in previous.items() if n not in out})
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


def main(dataset: str, architectures: list[str], steps=None, **params) -> None:
    from earmark.evaluation import cross_validate

    fit_seconds = _report_each_fit()

    manifest = load(dataset)
    folds = manifest.folds if manifest.has_folds else None
    groups = manifest.groups if manifest.has_groups else None
    for architecture in architectures:
        start = time.perf_counter()
        X, kept, learner, failures = _cached_inputs(manifest, dataset, architecture, steps)
        inputs_s = time.perf_counter() - start
        print(f"{dataset} {architecture}: inputs {X.shape} in {inputs_s:.0f} s", flush=True)
        folds = kept.folds if kept.has_folds else None
        groups = kept.groups if kept.has_groups else None
        learner.set_params(**params)
        start = time.perf_counter()
        n_splits = len(set(groups.tolist())) if groups is not None and folds is None and dataset in ("fsdd", "demo") else 5
        result = cross_validate(X, kept.y, folds=folds, groups=groups, learner=learner, n_splits=n_splits)
        seconds = time.perf_counter() - start
        folds_s = fit_seconds[-len(result.splits):]
        row = {"fit_s_per_fold": float(np.mean(folds_s)),"dataset": dataset, "architecture": architecture, "params": params,
               "strategy": result.strategy, "folds": len(result.splits),
               "accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
               "fold_accuracy": result.fold_accuracy, "accuracy_pooled": result.accuracy,
               "inputs_s": inputs_s, "train_s_per_fold": seconds / len(result.splits),
               "n_items": len(kept.y), "failures": len(failures)}
        print(json.dumps(row), flush=True)
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        with open(out / "networks.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if "=" not in a]
    params = {k: (v if k in ("tag", "keep") else float(v) if "." in v else int(v))
              for k, v in (a.split("=", 1) for a in sys.argv[1:] if "=" in a)}
    if args[0] == "curve":  # python benchmarks/networks.py curve DATASET FAMILY,FAMILY,... [k=v]
        curve(args[1], args[2].split(","), **params)
    else:
        main(args[0], args[1:], **params)
