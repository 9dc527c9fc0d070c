"""``earmark curve``: accuracy as a function of training examples per class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption, LearnerOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache,
    output_dir, split_columns,
)


def register(app: typer.Typer) -> None:
    app.command("curve")(curve)


def curve(
    data: str = DataArgument,
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="Also draw this backend's curve on the same plot, e.g. mfcc."
    ),
    learner: str = LearnerOption,
    sizes: str = typer.Option("1,2,4,8,16,32,all", "--sizes", help="Examples per class."),
    draws: int = typer.Option(5, "--draws", help="Random draws per point."),
    seed: int = typer.Option(0, "--seed"),
    n_splits: int = typer.Option(5, "--splits", help="Splits when only groups (or nothing) are known."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for JSON and PNG."),
    compare: Optional[str] = typer.Option(
        None, "--compare",
        help="The few-data study: one curve per family on the same splits and draws, one "
        "picture, e.g. mfcc-knn,cnn-small,birdnet,aisfx-finetune. A family is a network "
        "(cnn-timbre, cnn-small, cnn-sbcnn, aisfx-finetune, aisfx-head) or a backend with "
        "a learner (birdnet, mfcc-knn, aisfx-logreg).",
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Networks: at most this many epochs."),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Learning curve: accuracy vs examples per class, several draws per point (PNG + JSON)."""
    quiet = quiet or json_output
    manifest = load_data(data, layout, quiet=quiet)
    store = open_cache(cache_dir)
    if compare:
        curves = compare_families(
            manifest, [part for part in compare.split(",") if part.strip()], store, learner=learner,
            sizes=parse_sizes(sizes), draws=draws, seed=seed, quiet=quiet, n_splits=n_splits,
            epochs=epochs,
        )
        paths = write_curves(curves, output_dir(output), "compare", title="Accuracy against "
                             "examples per class, same splits and draws")  # fmt: skip
        if json_output:
            emit_json({"curves": {name: c.to_dict() for name, c in curves.items()}, "files": paths})
            return
        for name, result in curves.items():
            console.print(f"[bold]{name}[/]\n{result.summary()}", highlight=False)
        console.print(f"wrote {paths['json']} and {paths['plot']}")
        return
    backends = [open_backend(backend_name, backend_params, quiet=quiet)]
    if baseline:
        backends.append(open_backend(baseline, None, quiet=quiet))
    curves = compute_curves(
        manifest, backends, store, learner=learner, sizes=parse_sizes(sizes),
        draws=draws, seed=seed, quiet=quiet, n_splits=n_splits,
    )
    target = output_dir(output)
    paths = write_curves(curves, target, learner)
    if json_output:
        emit_json({"curves": {name: c.to_dict() for name, c in curves.items()}, "files": paths})
        return
    for name, result in curves.items():
        console.print(f"[bold]{name}[/]\n{result.summary()}")
    console.print(f"wrote {paths['json']} and {paths['plot']}")


def parse_sizes(text: str) -> list:
    from ..exceptions import ParameterError

    sizes: list = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            sizes.append("all")
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            raise ParameterError(f"expected sizes like '1,2,4,all', got {part!r} in {text!r}")
    return sizes


def compute_curves(manifest, backends, store, *, learner, sizes, draws, seed, quiet, n_splits=5):
    """One learning curve per backend, on the same items and splits."""
    import numpy as np

    from ..curve import learning_curve

    embedded = {}
    for backend in backends:
        X, kept, _run = embed_clips(manifest, backend, store, quiet=quiet)
        embedded[backend.name] = (X, kept)
    # Compare like with like: keep only items every backend could embed.
    def spans(manifest):  # an item is a file or a span of one
        return [(item.path, item.start_s, item.end_s) for item in manifest]

    common = set.intersection(*(set(spans(kept)) for _X, kept in embedded.values()))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    curves = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet, transient=True) as progress:
        for name, (X, kept) in embedded.items():
            task = progress.add_task(f"learning curve, {name}: fits", total=None)
            mask = np.array([span in common for span in spans(kept)], dtype=bool)
            kept_common = kept.subset(mask)
            folds, groups = split_columns(kept_common)
            curves[name] = learning_curve(
                X[mask], kept_common.y, folds=folds, groups=groups, learner=learner,
                sizes=sizes, n_draws=draws, random_state=seed, n_splits=n_splits,
                on_fit=lambda done, total, task=task: progress.update(task, completed=done, total=total),
            )
    return curves


def compare_families(manifest, names, store, *, learner, sizes, draws, seed, quiet, n_splits=5,
                     epochs=None):  # fmt: skip
    """One learning curve per family (:func:`earmark.networks.family`), on the items every
    family could read, with the same splits and draws (the same seed)."""
    import numpy as np

    from ..curve import learning_curve
    from ..exceptions import ParameterError
    from ..networks import family, network_inputs

    families = [family(name, default_learner=learner) for name in names]
    if len({f.name for f in families}) != len(families):
        raise ParameterError(f"--compare names a family twice: {names}")
    prepared = {}
    for item in families:
        if item.architecture is not None:
            X, kept, template, failures = network_inputs(
                manifest, item.architecture, progress=not quiet, **({"epochs": epochs} if epochs else {}))
        else:
            backend = open_backend(item.backend, None, quiet=quiet)
            X, kept, _run = embed_clips(manifest, backend, store, quiet=quiet)
            template = item.learner
        prepared[item.name] = (X, kept, template)

    def spans(kept):
        return [(it.path, it.start_s, it.end_s) for it in kept]

    common = set.intersection(*(set(spans(kept)) for _X, kept, _t in prepared.values()))
    curves = {}
    for name, (X, kept, template) in prepared.items():
        if not quiet:
            console.print(f"learning curve, {name} ...", style="dim", highlight=False)
        mask = np.array([span in common for span in spans(kept)], dtype=bool)
        kept_common = kept.subset(mask)
        folds, groups = split_columns(kept_common)
        result = learning_curve(X[mask], kept_common.y, folds=folds, groups=groups, learner=template,
                                sizes=sizes, n_draws=draws, random_state=seed, n_splits=n_splits)
        result.learner = name
        curves[name] = result
    return curves


def write_curves(curves, target: Path, learner: str, *, title: str | None = None) -> dict:
    import json

    from ..plots import plot_learning_curves

    stem = "learning-curve-" + "-vs-".join(curves) + f"-{learner}"
    json_path, plot_path = target / f"{stem}.json", target / f"{stem}.png"
    json_path.write_text(json.dumps({n: c.to_dict() for n, c in curves.items()}, indent=2))
    plot_learning_curves(curves, plot_path, title=title or f"Learning curve ({learner})")
    return {"json": str(json_path), "plot": str(plot_path)}
