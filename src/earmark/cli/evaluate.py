"""``earmark evaluate``: cross-validate a learner over official folds or groups."""

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
    app.command("evaluate")(evaluate)


def evaluate(
    data: str = DataArgument,
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    learner: str = LearnerOption,
    n_splits: int = typer.Option(5, "--splits", help="Splits when only groups (or nothing) are known."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for JSON and PNG."),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Cross-validate a classifier on a dataset's embeddings: accuracy, macro-F1, per class."""
    from ..evaluation import cross_validate
    from ..plots import plot_confusion_matrix

    quiet = quiet or json_output
    manifest = load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    folds, groups = split_columns(manifest)
    result = cross_validate(X, manifest.y, folds=folds, groups=groups, learner=learner, n_splits=n_splits)
    target = output_dir(output)
    stem = f"evaluation-{backend.name}-{learner}"
    (target / f"{stem}.json").write_text(result.to_json())
    plot_confusion_matrix(
        result, path=target / f"{stem}-confusion.png",
        title=f"{backend.name} + {learner}: {result.accuracy_mean:.1%} mean accuracy",
    )
    payload = {"backend": backend.identity(), **result.to_dict(predictions=False),
               "files": {"json": str(target / f"{stem}.json"),
                         "confusion_matrix": str(target / f"{stem}-confusion.png")}}
    if json_output:
        emit_json(payload)
        return
    show_result(result, backend.name, learner)
    console.print(f"wrote {target / (stem + '.json')} and {target / (stem + '-confusion.png')}")


def show_result(result, backend_name: str, learner: str) -> None:
    from rich.table import Table

    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(
        f"[bold]{backend_name} + {learner}[/], {result.strategy}: accuracy "
        f"[bold green]{result.accuracy_mean:.1%}[/] ± {result.accuracy_std:.1%}, macro-F1 "
        f"{result.macro_f1_mean:.3f} ± {result.macro_f1_std:.3f} over {len(result.splits)} splits"
    )
    table = Table(title="per class (pooled out-of-fold predictions)")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for row in result.per_class:
        table.add_row(str(row["label"]), f"{row['precision']:.2f}", f"{row['recall']:.2f}",
                      f"{row['f1']:.2f}", str(row["support"]))
    console.print(table)
