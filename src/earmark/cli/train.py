"""``earmark train``: fit a classifier on a dataset's embeddings and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption, LearnerOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache, skipped_json,
    split_columns, working,
)
from ._networks import EpochsOption, FinetuneOption, NetworkOption, network_choice


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
    detector: bool = typer.Option(
        False, "--detector",
        help="Sound event detector for `detect`: learns from label sets per recording "
        "(a;b, or an empty cell for none of the classes), with context over frames, on "
        "the backend's finest time grid (default backend: aisfx, a frame every 0.19 s); "
        "thresholds, median filter, minimum duration and merge gap are chosen on a "
        "validation split by group and stored in the model.",
    ),
    negatives: Optional[list[Path]] = typer.Option(
        None, "--negatives",
        help="Folder (or file) of recordings in which none of the classes sounds; "
        "repeatable. With --detector or --mil.",
    ),
    prototype_network: bool = typer.Option(
        False, "--prototype-network",
        help="Interpretable prototype network on spectrogram patches: decides by likeness "
        "to real training segments; see them with `earmark prototypes`.",
    ),
    encoder: str = typer.Option(
        "aisfx", "--encoder",
        help="Prototype network's or graph tagger's encoder: aisfx (starts from the pretrained aiSFX "
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
    finetune: Optional[str] = FinetuneOption,
    network: Optional[str] = NetworkOption,
    epochs: Optional[int] = EpochsOption,
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
    if params and (mil is not None or prototype_network or taxonomy is not None or learner == "graph"):
        raise ParameterError(
            "--target-precision/--target-recall apply to clip learners (--learner), "
            "not to --mil, --prototype-network or --taxonomy models"
        )
    architecture = network_choice(finetune, network)
    if architecture is not None:
        if params or mil is not None or detector or prototype_network or taxonomy is not None or fewshot:
            raise ParameterError("--finetune/--network train a network alone; drop the other model options")
        return _train_network(data, output, architecture, layout=layout, epochs=epochs,
                              json_output=json_output, quiet=quiet)
    if negatives and not (detector or mil):
        raise ParameterError("--negatives goes with --detector or --mil")
    if detector or mil is not None:
        return _train_frames(data, output, backend_name, backend_params, layout, cache_dir,
                             pooling=None if detector else mil, negatives=negatives or [],
                             json_output=json_output, quiet=quiet)
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
    if learner == "graph":
        return train_graph_tagger(manifest, output, encoder=encoder, json_output=json_output, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    folds, groups = split_columns(manifest)
    model = EarmarkModel.train(X, manifest.y, backend=backend, learner=learner,
                               groups=groups if groups is not None else folds, **params)
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


def _train_network(data, output, architecture, *, layout, epochs, json_output, quiet) -> None:
    """``--finetune aisfx`` / ``--network NAME``: a network trained on the clips, saved."""
    from ..networks import fit_manifest

    manifest = load_data(data, layout, quiet=quiet)
    network = fit_manifest(manifest, architecture, progress=not quiet,
                           **({"epochs": epochs} if epochs else {}))
    for path, reason in network.failures_:
        if not quiet:
            console.print(f"skipped {path}: {reason}", style="yellow", highlight=False)
    path = network.save(output)
    summary = {k: v for k, v in network.training.items() if k not in ("fit_rows", "validation_rows")}
    if json_output:
        emit_json({"model": str(path), "kind": network.kind, "classes": network.classes_.tolist(),
                   "training": summary, "skipped": len(network.failures_)})
        return
    accuracy = summary["validation_accuracy"]
    console.print(
        f"trained [bold]{architecture}[/] ({summary['n_parameters']:,} parameters) on "
        f"{summary['n_items']} clips, {len(network.classes_)} classes: {summary['epochs_run']} "
        f"epochs in {summary['seconds']:.0f} s on {summary['device']}, kept epoch "
        f"{summary['best_epoch']}"
        + (f" (validation accuracy {accuracy:.1%} on held-out groups)" if accuracy is not None
           else " (too few groups to hold any out: no early stopping)")
        + f" -> [bold]{path}[/]"
    )


def show_class_thresholds(classifier) -> None:
    """Each class's stored threshold, and the classes that cannot keep the promise."""
    target = ("precision", classifier.target_precision)
    if classifier.target_precision is None:
        target = ("recall", classifier.target_recall)
    withheld = getattr(classifier, "class_withheld_", None)
    for k, (label, threshold) in enumerate(zip(classifier.classes_.tolist(),
                                               classifier.class_thresholds_)):
        note = classifier.threshold_notes_.get(str(label))
        if note:
            never = withheld is not None and withheld[k]
            console.print(f"{label}: {note}" if never else
                          f"{label}: no threshold ({note}); answered whenever on top",
                          style="yellow", highlight=False)
        else:
            console.print(f"{label}: {target[0]} {target[1]:.2f} at probability >= "
                          f"{threshold:.3f}", style="dim", highlight=False)


def _train_frames(data, output, backend_name, backend_params, layout, cache_dir, *,
                  pooling, negatives, json_output, quiet):
    """A detector (``pooling=None``) or a plain MIL model from recordings' label sets."""
    from ..detection.detector import FINE_GRID, detector_frames, train_detector, weak_items
    from ..exceptions import EarmarkError
    from ..models import EarmarkModel
    from ._common import parse_params

    items = weak_items(data, layout=layout, negatives=negatives)
    for reason in items.skipped:
        console.print(f"skipped {reason}", style="yellow", highlight=False)
    params = list(backend_params or [])
    from ..backends.registry import DEFAULT_BACKEND
    from ..detection.detector import DETECTOR_BACKEND

    name = backend_name or (DETECTOR_BACKEND if pooling is None else DEFAULT_BACKEND)
    if pooling is None and name in FINE_GRID:
        given = parse_params(params)
        params += [f"{k}={v}" for k, v in FINE_GRID[name].items() if k not in given]
    backend = open_backend(name, params, quiet=quiet)
    if not quiet:
        console.print(
            f"{len(items.paths)} recordings, {len(items.classes)} classes, "
            f"{items.n_negatives} with none of them"
            + (f", {sum(len(e) for e in items.events if e)} timed events (strong labels)"
               if items.events is not None else "")
            + f"; {backend.name} frames every {backend.hop_s:g} s", highlight=False,
        )
    frames, failures = detector_frames(items.paths, backend, open_cache(cache_dir),
                                       progress=not quiet)
    for index, reason in failures.items():
        console.print(f"skipped {items.paths[index]}: {reason}", style="yellow", highlight=False)
    keep = [i for i, f in enumerate(frames) if f is not None]
    if not keep:
        raise EarmarkError(f"no recording could be embedded ({len(failures)} failed)")
    label_sets = [items.label_sets[i] for i in keep]

    what = ("training the detector and choosing its post-processing" if pooling is None
            else f"training the {pooling} multiple-instance model")
    # A spinner with the time elapsed: three networks on a few hundred recordings take
    # a couple of minutes on two cores.
    with working(f"{what} ({len(keep)} recordings)", quiet=quiet or json_output):
        if pooling is None:
            model = train_detector([frames[i] for i in keep], label_sets, backend=backend,
                                   groups=[items.groups[i] for i in keep],
                                   events=None if items.events is None
                                   else [items.events[i] for i in keep])
        else:
            model = EarmarkModel.train_mil([frames[i][0] for i in keep], label_sets,
                                           backend=backend, pooling=pooling)
    path = model.save(output)
    if json_output:
        emit_json({"model": str(path), **model.metadata()})
        return
    if model.postprocessing and not quiet:
        _print_validation(model.postprocessing)
    console.print(
        f"trained [bold]{model.learner}[/] on {len(keep)} recordings of {backend.name} frames, "
        f"{len(model.classes_)} classes -> [bold]{path}[/]"
    )


def _print_validation(postprocessing) -> None:
    from rich.table import Table

    validation = postprocessing["validation"]
    table = Table(title=f"validation ({validation['n_recordings']} recordings held out by group; "
                  f"a class is found when at least one event of it is detected)")
    for column in ("class", "threshold", "precision", "recall", "F", "events", "labelled"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, row in [*validation["per_class"].items(), ("all", validation["overall"])]:
        threshold = postprocessing["thresholds"].get(label)
        table.add_row(label, "" if threshold is None else f"{threshold:.2f}",
                      f"{row['precision']:.2f}", f"{row['recall']:.2f}", f"{row['f']:.2f}",
                      str(row["events"]), str(row["labelled"]))
    console.print(table)
    console.print(
        f"post-processing stored in the model: median {postprocessing['median_s']:g} s, "
        f"minimum duration {postprocessing['min_duration_s']:g} s, merge gap "
        f"{postprocessing['merge_gap_s']:g} s, cells {postprocessing['cells'] or 'whole frames'}",
        highlight=False,
    )


def train_graph_tagger(manifest, output: Path, *, encoder: str, json_output: bool, quiet: bool) -> None:
    """``earmark train --learner graph``: a graph tagger on the items' own patches."""
    from ..graph import fit_manifest
    from ..interpret.encoders import check_encoder

    tagger = fit_manifest(manifest, progress=not quiet, encoder=check_encoder(encoder))
    if not quiet:
        for path, reason in tagger.failures_:
            console.print(f"skipped {path}: {reason}", style="yellow", highlight=False)
    path = tagger.save(output)
    if json_output:
        emit_json({"model": str(path), "kind": "graph-tagger", "encoder": encoder,
                   "classes": tagger.classes_.tolist(), "n_parameters": tagger.n_parameters_,
                   "temperature": tagger.temperature_, "skipped": len(tagger.failures_)})  # fmt: skip
        return
    console.print(
        f"trained a graph tagger ({encoder} regions, {tagger.n_parameters_:,} parameters) on "
        f"{len(manifest) - len(tagger.failures_)} items, {len(tagger.classes_)} classes -> "
        f"[bold]{path}[/]; see which regions each tag comes from with `earmark explain {path} FILE`"
    )
