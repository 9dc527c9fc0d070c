"""``earmark train``: fit a classifier on a dataset's embeddings and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption, LearnerOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache,
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    data: str = DataArgument,
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.earmark)."),
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    learner: str = LearnerOption,
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Train a classifier on every item of DATA; the model file is all `predict` needs."""
    from ..model import EarmarkModel

    quiet = quiet or json_output
    manifest = load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    model = EarmarkModel.train(X, manifest.y, backend=backend, learner=learner)
    path = model.save(output)
    if json_output:
        emit_json({"model": str(path), **model.metadata()})
        return
    console.print(
        f"trained [bold]{learner}[/] on {X.shape[0]} {backend.name} embeddings, "
        f"{len(model.classes_)} classes -> [bold]{path}[/]"
    )
