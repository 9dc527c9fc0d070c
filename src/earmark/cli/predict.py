"""``earmark predict``: label audio files with a saved model (CSV or JSON out)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..files import atomic_write
from ._common import (
    CacheOption,
    JsonOption,
    QuietOption,
    console,
    emit_json,
    open_cache,
)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    model_path: Path = typer.Argument(
        ..., help="A model file written by `earmark train` (a prototype network too)."
    ),
    files: list[Path] = typer.Argument(..., help="Audio files or folders to label."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write .csv or .json here."),
    top_k: int = typer.Option(3, "--top", help="Most probable labels listed per file."),
    reject_unknown: Optional[bool] = typer.Option(
        None, "--unknown/--no-unknown",
        help="Label clips far from every class 'unknown'. Unset: where the model does so "
        "itself (prototypes, thresholds from train --target-precision). --unknown: with "
        "every learner (below the probability that kept 90 % of held-out training clips). "
        "--no-unknown: never.", show_default=False,
    ),
    backend_param: Optional[list[str]] = typer.Option(
        None, "--backend-param", "-p",
        help="KEY=VALUE for backend parameters a model file never carries (the HEAR "
        "adapter's module and weights).",
    ),
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Predict a label (with probabilities) for each file; bad files are reported, not fatal."""
    from ..models import load_model, predict_files
    from ._common import parse_params

    model = load_model(model_path)
    paths = expand(files)
    progress = not (quiet or json_output)
    backend = model.backend(params=parse_params(backend_param)) \
        if model.backend_identity is not None else None
    predictions = predict_files(
        model, paths, top_k=top_k, backend=backend,
        store=open_cache(cache_dir) if backend is not None else None,
        progress=progress, reject_unknown=reject_unknown,
    )
    rows = [prediction.to_dict() for prediction in predictions]
    if output is not None:
        write_rows(rows, output)
    if json_output:
        emit_json(rows)
    elif output is None:
        write_rows(rows, None)
    failures = [row for row in rows if row["error"]]
    if failures and not json_output:
        console.print(f"[yellow]{len(failures)} file(s) could not be labelled:[/]")
        for row in failures:
            console.print(f"  {row['error']}", highlight=False)
    if failures and len(failures) == len(rows):
        raise typer.Exit(1)


def expand(files: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the audio files under them, sorted."""
    from ..audio import SUPPORTED_EXTENSIONS

    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
        else:
            paths.append(path)
    return paths


def write_rows(rows: list[dict], output: Optional[Path]) -> None:
    """Predictions as CSV (or JSON for a ``.json`` path), written atomically.

    A taxonomy model's rows gain a label and score per level and the ``backoff`` label.
    Cells that a spreadsheet would run as a formula are written as text.
    """
    from ._common import csv_cell, write_csv_atomically

    if output is not None and output.suffix.lower() == ".json":
        atomic_write(output, json.dumps(rows, indent=2))
        return
    levels = list(next((row["levels"] for row in rows if row.get("levels")), {}))
    header = ["path", "label", "score", "top_k", "unknown", "error"] + levels
    header += ["backoff"] if levels else []
    table = []
    for row in rows:
        top = ";".join(f"{t['label']}:{t['score']:.4f}" for t in row["top_k"])
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        cells = [row["path"], row["label"] or "", score, top, int(row["unknown"]), row["error"] or ""]
        if levels:
            given = row.get("levels") or {}
            cells += [given.get(name, "") for name in levels] + [row.get("backoff") or ""]
        table.append(cells)
    if output is not None:
        write_csv_atomically(output, header, table)
        return
    writer = csv.writer(sys.stdout)
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in cells] for cells in table)
