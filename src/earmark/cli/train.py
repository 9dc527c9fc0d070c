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
    fewshot: bool = typer.Option(
        False, "--fewshot",
        help="Prototype model for a few examples per class; answers 'unknown' for clips "
        "far from every class (same as --learner prototype).",
    ),
    taxonomy: Optional[str] = typer.Option(
        None, "--taxonomy",
        help="Label taxonomy (YAML/JSON file, or esc50, philharmonia, speech-commands): "
        "hierarchical prototypes that also answer at the group level. Implies --fewshot.",
    ),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Train a classifier on every item of DATA; the model file is all `predict` needs."""
    from ..model import EarmarkModel
    from ..taxonomy import load_taxonomy

    quiet = quiet or json_output
    params = {}
    if taxonomy is not None:
        # Stored as a plain mapping, so the model file needs nothing else to run.
        params["taxonomy"] = load_taxonomy(taxonomy).to_dict()
        learner = "prototype-hierarchical"
    elif fewshot:
        learner = "prototype"
    manifest = load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    model = EarmarkModel.train(X, manifest.y, backend=backend, learner=learner, **params)
    path = model.save(output)
    if json_output:
        emit_json({"model": str(path), **model.metadata()})
        return
    if model.can_reject and not quiet:
        classifier = model.pipeline[-1]
        console.print(
            f"clips farther than {classifier.threshold_:.3g} from every class will be labelled "
            f"'unknown' (calibrated to keep {classifier.unknown_coverage:.0%} of in-class clips, "
            f"from {classifier.threshold_source_} distances)",
            style="dim", highlight=False,
        )
    console.print(
        f"trained [bold]{learner}[/] on {X.shape[0]} {backend.name} embeddings, "
        f"{len(model.classes_)} classes -> [bold]{path}[/]"
    )
