"""``earmark evaluate``: cross-validate a learner over official folds or groups, or measure
the accuracy lost between recording domains (``--train-domain`` / ``--test-domain``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption, LearnerOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache, skipped_json,
    output_dir, split_columns,
)
from ._networks import EpochsOption, FinetuneOption, NetworkOption, network_choice


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
    train_domains: Optional[list[str]] = typer.Option(
        None, "--train-domain",
        help="Train on this domain (repeatable), test on --test-domain: in-domain vs "
        "cross-domain accuracy, the gap and a label-free shift score.",
    ),
    test_domains: Optional[list[str]] = typer.Option(
        None, "--test-domain", help="Test on this domain (repeatable); needs --train-domain."
    ),
    adapt_methods: Optional[list[str]] = typer.Option(
        None, "--adapt",
        help="With domains: also adapt to the test domain's audio (never its labels) with "
        "standardize, coral, dann, selftrain, priors, standardize+priors, coral+priors, "
        "prototypes, or auto (choose one or none by reverse validation) (repeatable).",
    ),
    finetune: Optional[str] = FinetuneOption,
    network: Optional[str] = NetworkOption,
    epochs: Optional[int] = EpochsOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Cross-validate a classifier on a dataset's embeddings: accuracy, macro-F1, per class."""
    from ..evaluation import cross_validate
    from ..exceptions import ParameterError
    from ..plots import plot_confusion_matrix

    quiet = quiet or json_output
    if bool(train_domains) != bool(test_domains):
        raise ParameterError("expected both --train-domain and --test-domain, or neither")
    if adapt_methods and not train_domains:
        raise ParameterError("--adapt needs --train-domain and --test-domain")
    architecture = network_choice(finetune, network)
    if architecture is not None and train_domains:
        raise ParameterError("--finetune/--network evaluate over folds or groups, not between domains")
    manifest = load_data(data, layout, quiet=quiet)
    if learner == "graph":
        if train_domains:
            raise ParameterError("--learner graph is cross-validated only; --train-domain "
                                 "needs a learner over a backend's embeddings")
        evaluate_graph_command(manifest, n_splits=n_splits, output=output,
                               json_output=json_output, quiet=quiet)
        return
    if architecture is not None:
        return _evaluate_network(manifest, architecture, n_splits=n_splits, epochs=epochs, output=output,
                                 json_output=json_output, quiet=quiet)
    if train_domains and not manifest.has_domains:
        raise ParameterError(
            f"{data}: not every item has a domain; give a manifest CSV with a 'domain' "
            f"column (or a layout that sets one: FSDD speakers, Philharmonia dynamics)"
        )
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    if train_domains:
        evaluate_domains_command(
            X, manifest, backend, learner=learner, train_domains=train_domains,
            test_domains=test_domains, methods=adapt_methods or [], n_splits=n_splits,
            output=output, json_output=json_output, skipped=skipped_json(_run),
        )
        return
    folds, groups = split_columns(manifest)
    # A fused backend's parts are scaled block by block (learners.BlockScaler).
    blocks = getattr(backend, "blocks", None)
    result = cross_validate(X, manifest.y, folds=folds, groups=groups, learner=learner,
                            n_splits=n_splits, **({"blocks": list(blocks)} if blocks else {}))
    target = output_dir(output)
    stem = f"evaluation-{backend.name}-{learner}"
    (target / f"{stem}.json").write_text(result.to_json())
    plot_confusion_matrix(
        result, path=target / f"{stem}-confusion.png",
        title=f"{backend.name} + {learner}: {result.accuracy_mean:.1%} mean accuracy",
    )
    files = {"json": str(target / f"{stem}.json"),
             "confusion_matrix": str(target / f"{stem}-confusion.png")}
    operating = write_score_figures(result, target, stem, f"{backend.name} + {learner}", files)
    payload = {"backend": backend.identity(), **result.to_dict(predictions=False),
               "operating_points": operating, "files": files, "skipped": skipped_json(_run)}
    if json_output:
        emit_json(payload)
        return
    show_result(result, backend.name, learner)
    console.print(f"wrote {', '.join(files.values())}", highlight=False)


def evaluate_graph_command(manifest, *, n_splits, output, json_output, quiet) -> None:
    """``--learner graph``: a graph tagger over aiSFX's frozen maps (it reads its own
    patches, so --backend does not apply), under the same splits."""
    from ..graph import cross_validate_manifest
    from ..plots import plot_confusion_matrix

    folds, groups = split_columns(manifest)
    result, _used, n_parameters = cross_validate_manifest(
        manifest, folds=folds, groups=groups, n_splits=n_splits, progress=not quiet)
    target = output_dir(output)
    stem = "evaluation-aisfx-maps-graph"
    (target / f"{stem}.json").write_text(result.to_json())
    name = "graph tagger on aiSFX maps"
    plot_confusion_matrix(result, path=target / f"{stem}-confusion.png",
                          title=f"{name}: {result.accuracy_mean:.1%} mean accuracy")
    files = {"json": str(target / f"{stem}.json"), "confusion_matrix": str(target / f"{stem}-confusion.png")}
    operating = write_score_figures(result, target, stem, name, files)
    payload = {"backend": None, "encoder": "aisfx", "learned_parameters": n_parameters,
               **result.to_dict(predictions=False), "operating_points": operating, "files": files}
    if json_output:
        emit_json(payload)
        return
    show_result(result, "aisfx maps", "graph")
    console.print(f"graph tagger: {n_parameters:,} learned parameters (aiSFX's frozen network not counted)",
                  highlight=False)
    console.print(f"wrote {', '.join(files.values())}", highlight=False)


def _evaluate_network(manifest, architecture, *, n_splits, epochs, output, json_output, quiet) -> None:
    """Cross-validate a network trained on the clips, on the same splits as any learner.

    The front end (for aiSFX, its frozen lower blocks) runs once over every clip; each
    split trains a fresh network on its training part, which holds out its own groups to
    stop early."""
    import time

    from ..evaluation import cross_validate
    from ..networks import network_inputs
    from ..plots import plot_confusion_matrix

    started = time.perf_counter()
    X, kept, learner, failures = network_inputs(manifest, architecture, progress=not quiet,
                                                **({"epochs": epochs} if epochs else {}))
    inputs_s = time.perf_counter() - started
    for path, reason in failures:
        if not quiet:
            console.print(f"skipped {path}: {reason}", style="yellow", highlight=False)
    folds, groups = split_columns(kept)
    started = time.perf_counter()
    result = cross_validate(X, kept.y, folds=folds, groups=groups, learner=learner, n_splits=n_splits)
    per_fold_s = (time.perf_counter() - started) / len(result.splits)
    target = output_dir(output)
    stem = f"evaluation-network-{architecture}"
    (target / f"{stem}.json").write_text(result.to_json())
    plot_confusion_matrix(result, path=target / f"{stem}-confusion.png",
                          title=f"{architecture}: {result.accuracy_mean:.1%} mean accuracy")
    files = {"json": str(target / f"{stem}.json"), "confusion_matrix": str(target / f"{stem}-confusion.png")}
    operating = write_score_figures(result, target, stem, architecture, files)
    timing = {"inputs_s": inputs_s, "train_and_test_s_per_split": per_fold_s}
    payload = {"network": architecture, **result.to_dict(predictions=False), "timing": timing,
               "operating_points": operating, "files": files,
               "skipped": [{"path": p, "reason": r} for p, r in failures]}
    if json_output:
        emit_json(payload)
        return
    show_result(result, "network", architecture)
    console.print(f"front end {inputs_s:.0f} s once; {per_fold_s:.0f} s per split to train and test",
                  highlight=False)
    console.print(f"wrote {', '.join(files.values())}", highlight=False)


def write_score_figures(result, target: Path, stem: str, name: str, files: dict) -> list:
    """Reliability diagram and precision/recall-against-threshold PNGs from the
    out-of-fold probabilities; returns each class's threshold for precision 0.9 on them,
    pooled over the folds (``train --target-precision 0.9`` chooses on cross-validated
    scores too, and with groups also asks the precision of each speaker or site)."""
    from ..plots import plot_operating_points, plot_reliability
    from ..thresholds import choose_thresholds, operating_curves

    calibration = result.calibration
    if calibration is None:
        return []
    plot_reliability(calibration["bins"], target / f"{stem}-reliability.png",
                     ece=result.ece, ece_floor=result.ece_floor,
                     title=f"{name}, out-of-fold probabilities")
    files["reliability"] = str(target / f"{stem}-reliability.png")
    tested = result.tested
    classes = np.asarray(result.classes, dtype=result.y_true.dtype)
    truth, proba = result.y_true[tested], result.proba[tested]
    plot_operating_points(operating_curves(truth, proba, classes),
                          target / f"{stem}-thresholds.png", title=f"{name}: precision and "
                          "recall against threshold (out-of-fold)")
    files["thresholds"] = str(target / f"{stem}-thresholds.png")
    return choose_thresholds(truth, proba, classes, target_precision=0.9).table()


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
    if result.ece is not None:
        console.print(
            f"calibration of the out-of-fold probabilities: ECE [bold]{result.ece:.3f}[/] "
            f"(15 bins; {result.ece_floor:.3f} by chance alone on these "
            f"{result.n_tested} items), Brier {result.brier:.3f}, mean confidence "
            f"{result.calibration['mean_confidence']:.2f} at {result.accuracy:.2f} accuracy",
            highlight=False,
        )


def evaluate_domains_command(
    X, manifest, backend, *, learner, train_domains, test_domains, methods, n_splits,
    output, json_output, skipped=None,
) -> None:
    """The ``--train-domain`` / ``--test-domain`` form: the gap, the shift, and a picture."""
    from ..adaptation import evaluate_domains
    from ..adaptation.plots import plot_domains

    result = evaluate_domains(
        X, manifest.y, manifest.domains, train_domains=train_domains,
        test_domains=test_domains, learner=learner, methods=methods, n_splits=n_splits,
    )
    target = output_dir(output)
    stem = (f"domains-{backend.name}-{learner}-{'+'.join(result.train_domains)}-to-"
            f"{'+'.join(result.test_domains)}").replace("/", "_")
    payload = {"backend": backend.identity(), **result.to_dict(), "skipped": skipped or []}
    subtitles = {"before": f"accuracy {result.cross_domain.accuracy:.1%}, "
                           f"distinguishable {result.shift.distinguishability:.2f}"}
    for name, row in result.adapted.items():
        shift = "" if row["shift"] is None else f", distinguishable {row['shift'].distinguishability:.2f}"
        change = 100 * (row["accuracy"] - result.cross_domain.accuracy)
        for panel in result.views:
            if panel == name or panel.startswith((f"{name} (", f"{name}: ")):
                subtitles[panel] = f"accuracy {row['accuracy']:.1%} ({change:+.1f} points){shift}"
    plot_domains(
        result.views, target / f"{stem}.png",
        names=("+".join(result.train_domains), "+".join(result.test_domains)),
        subtitles=subtitles, title=f"{backend.name} embeddings, before and after adaptation"
        + _auto_line(result),
    )
    payload["files"] = {"json": str(target / f"{stem}.json"), "plot": str(target / f"{stem}.png")}
    (target / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=_plain))
    if json_output:
        emit_json(payload)
        return
    for line in result.summary().splitlines():
        console.print(line, highlight=False)
    console.print(f"wrote {target / (stem + '.json')} and {target / (stem + '.png')}")


def _auto_line(result) -> str:
    """The title's second line: what --adapt auto scored and did, if it ran."""
    row = result.adapted.get("auto")
    if row is None:
        return ""
    change = 100 * (row["accuracy"] - result.cross_domain.accuracy)
    return (f"\nauto ({row['chosen']}, {row['changed']:.0%} of labels changed): accuracy "
            f"{row['accuracy']:.1%} ({change:+.1f} points)")


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
