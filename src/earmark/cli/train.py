"""``earmark train``: fit a classifier on a dataset's embeddings and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption, LearnerOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache, skipped_json,
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
    mil: Optional[str] = typer.Option(
        None, "--mil",
        help="Multiple-instance model on frame embeddings (pooling: max, mean or "
        "attention): learns from clip labels, then scores every frame, for `detect`.",
    ),
    prototype_network: bool = typer.Option(
        False, "--prototype-network",
        help="Interpretable prototype network on spectrogram patches: decides by likeness "
        "to real training segments; see them with `earmark prototypes`.",
    ),
    encoder: str = typer.Option(
        "aisfx", "--encoder",
        help="Prototype network's encoder: aisfx (starts from the pretrained aiSFX "
        "convolutions, frozen; far more accurate on little data) or log-mel (learned from "
        "scratch, needs no pretrained weights).",
    ),
    prototypes_per_class: int = typer.Option(
        3, "--prototypes-per-class", min=1,
        help="Prototype network: prototypes per class before refinement prunes them.",
    ),
    target_precision: Optional[float] = typer.Option(
        None, "--target-precision", min=0.0, max=1.0,
        help="Store a threshold per class, chosen on cross-validated scores of the training "
        "data, at which that class reaches this precision; predict answers 'unknown' below it.",
    ),
    target_recall: Optional[float] = typer.Option(
        None, "--target-recall", min=0.0, max=1.0,
        help="As --target-precision, for the recall each class should keep.",
    ),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Train a classifier on every item of DATA; the model file is all `predict` needs."""
    from ..detection.mil import POOLINGS
    from ..exceptions import ParameterError
    from ..models import EarmarkModel
    from ..taxonomy import load_taxonomy

    if mil is not None and mil not in POOLINGS:
        raise ParameterError(f"expected --mil one of {', '.join(POOLINGS)}, got {mil!r}")
    quiet = quiet or json_output
    if target_precision is not None and target_recall is not None:
        raise ParameterError("expected --target-precision or --target-recall, not both")
    params = {key: value for key, value in
              (("target_precision", target_precision), ("target_recall", target_recall))
              if value is not None}
    if params and (mil is not None or prototype_network or taxonomy is not None):
        raise ParameterError(
            "--target-precision/--target-recall apply to clip learners (--learner), "
            "not to --mil, --prototype-network or --taxonomy models"
        )
    if taxonomy is not None:
        # Stored as a plain mapping, so the model file needs nothing else to run.
        params["taxonomy"] = load_taxonomy(taxonomy).to_dict()
        learner = "prototype-hierarchical"
    elif fewshot:
        learner = "prototype"
    manifest = load_data(data, layout, quiet=quiet)
    if prototype_network:
        from .protonet import train_prototype_network

        return train_prototype_network(manifest, output, encoder=encoder, json_output=json_output,
                                       quiet=quiet, prototypes_per_class=prototypes_per_class)  # fmt: skip
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    skipped: list = []
    if mil is not None:
        model = _train_mil(manifest, backend, mil, quiet=quiet)
        learner, n_items = model.learner, model.training["n_items"]
    else:
        X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
        model = EarmarkModel.train(X, manifest.y, backend=backend, learner=learner, **params)
        n_items = X.shape[0]
        skipped = skipped_json(_run)
    path = model.save(output)
    if json_output:
        emit_json({"model": str(path), **model.metadata(), "skipped": skipped})
        return
    if params and not quiet:
        show_class_thresholds(model.pipeline[-1])
    if model.can_reject and not quiet and hasattr(model.pipeline[-1], "unknown_coverage"):
        classifier = model.pipeline[-1]
        console.print(
            f"clips scoring below {classifier.threshold_:.3g} on known-ness can be labelled "
            f"'unknown' (set to keep {classifier.unknown_coverage:.0%} of in-class clips of "
            f"{classifier.threshold_source_})",
            style="dim", highlight=False,
        )
    console.print(
        f"trained [bold]{learner}[/] on {n_items} {backend.name} embeddings, "
        f"{len(model.classes_)} classes -> [bold]{path}[/]"
    )


def show_class_thresholds(classifier) -> None:
    """Each class's stored threshold, and the classes that cannot keep the promise."""
    target = ("precision", classifier.target_precision)
    if classifier.target_precision is None:
        target = ("recall", classifier.target_recall)
    for label, threshold in zip(classifier.classes_.tolist(), classifier.class_thresholds_):
        note = classifier.threshold_notes_.get(str(label))
        if note:
            console.print(f"{label}: no threshold ({note}); answered whenever on top",
                          style="yellow", highlight=False)
        else:
            console.print(f"{label}: {target[0]} {target[1]:.2f} at probability >= "
                          f"{threshold:.3f}", style="dim", highlight=False)


def _train_mil(manifest, backend, pooling: str, *, quiet: bool):
    """A frame model from every readable item's frame embeddings; bad files are named."""
    from ..models import EarmarkModel
    from ..pipeline import frame_bags

    bags, ok, reasons = frame_bags([str(path) for path in manifest.paths], backend)
    if not quiet:
        for path, reason in zip([p for p, good in zip(manifest.paths, ok) if not good], reasons):
            console.print(f"skipped {path}: {reason}", style="yellow", highlight=False)
    return EarmarkModel.train_mil(bags, manifest.y[ok], backend=backend, pooling=pooling)
