"""``earmark adapt``: adapt a saved model to new recording conditions from unlabelled audio."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    CacheOption, JsonOption, LayoutOption, QuietOption, console, embed_clips, emit_json,
    load_data, open_cache, output_dir,
)


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt)


def adapt(
    model_path: Path = typer.Argument(..., help="A model file written by `earmark train`."),
    target: Path = typer.Option(
        ..., "--target", "-t",
        help="Target-domain audio: a folder (every audio file under it) or a manifest CSV. "
        "Labels, if any, are never read.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the adapted model."),
    method: str = typer.Option(
        "standardize", "--method", "-m",
        help="standardize (needs no source for logreg/svm/knn/mlp models), coral, dann, "
        "selftrain, priors, standardize+priors, coral+priors, prototypes, or auto (choose "
        "one or none by reverse validation); all but standardize need --source.",
    ),
    figures: Optional[Path] = typer.Option(
        None, "--figures",
        help="Folder for the before/after picture (default: earmark-output, like the other "
        "commands' outputs).",
    ),
    source: Optional[str] = typer.Option(
        None, "--source", "-s",
        help="The model's training data (folder, manifest or 'demo'); also draws the "
        "before/after picture.",
    ),
    target_domain: Optional[str] = typer.Option(
        None, "--target-domain", help="Use only the target's items of this domain."
    ),
    source_domain: Optional[list[str]] = typer.Option(
        None, "--source-domain", help="Use only the source's items of this domain (repeatable)."
    ),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Adapt MODEL to the target's recording conditions without target labels; write MODEL2."""
    from ..adaptation import CHOICES, adapt_model
    from ..adaptation.plots import plot_domains
    from ..exceptions import EarmarkError, ParameterError
    from ..models import EarmarkModel
    from ..pipeline import clip_embeddings

    quiet = quiet or json_output
    if method not in CHOICES:
        raise ParameterError(f"unknown method {method!r}; expected one of: {', '.join(CHOICES)}")
    model = EarmarkModel.load(model_path)
    backend = model.backend()
    store = open_cache(cache_dir)
    paths = _target_paths(target, target_domain, layout)
    X_target, ok, run = clip_embeddings(paths, backend, store, progress=not quiet)
    if run.failures and not quiet:
        from ._common import report_failures

        report_failures(run.failures)
    if ok.sum() < 2:
        raise EarmarkError(f"{target}: fewer than 2 target files could be embedded")
    X_source = y_source = None
    if source is not None:
        manifest = load_data(source, layout, quiet=quiet)
        if source_domain:
            keep = [str(domain) in source_domain for domain in manifest.domains]
            if not any(keep):
                raise ParameterError(f"{source}: no item has domain {', '.join(source_domain)}")
            manifest = manifest.subset(keep)
        X_source, manifest, _ = embed_clips(manifest, backend, store, quiet=quiet)
        y_source = manifest.y
    adapted = adapt_model(model, X_target, method=method, X_source=X_source, y_source=y_source)
    adapted.save(output)
    record = adapted.training["adaptation"]
    used = record["method"]
    files = {"model": str(output)}
    if X_source is not None:
        picture = output_dir(figures) / f"{output.stem}-domains.png"
        panels = {"before": (X_source, X_target)}
        named = adapted.pipeline.named_steps
        last = adapted.pipeline[-1]
        if "adapt" in named:
            panels[f"after {used}"] = (X_source, named["adapt"].transform(X_target))
        elif hasattr(last, "features"):
            panels[f"after {used} (learned features)"] = (last.features(X_source), last.features(X_target))
        elif hasattr(last, "transform_target"):
            panels[f"after {used}"] = (X_source, last.transform_target(X_target))
        elif hasattr(last, "shift_"):
            space = last.model_._preprocess
            panels[f"after {used} (prototype space)"] = (space(X_source), space(X_target) - last.shift_)
        plot_domains(panels, picture, names=("source", "target"),
                     title=f"{backend.name} embeddings, before and after {used}")
        files["plot"] = str(picture)
    payload = {"method": method, "used": used, "n_target": int(ok.sum()), "n_failed": run.n_failed,
               "adaptation": record, "files": files}
    if json_output:
        emit_json(payload)
        return
    console.print(f"adapted with [bold]{used}[/] to {int(ok.sum())} target files", highlight=False)
    if "auto" in record:
        console.print(f"  auto chose {record['auto']['reason']}", highlight=False)
    if "target_priors" in record:
        estimate = ", ".join(f"{label} {value:.0%}" for label, value in record["target_priors"].items())
        console.print(f"  estimated target class proportions: {estimate}", highlight=False)
    for stage in ("shift_before", "shift_after"):
        if stage in record:
            shift = record[stage]
            # After an alignment fitted on these items a small shift holds by construction
            # and says nothing about accuracy: no verdict for it.
            verdict = f" ({shift['verdict']})" if stage == "shift_before" else (
                " (small by construction; not a sign of accuracy)")
            console.print(
                f"  {stage.replace('_', ' ')}: distinguishability {shift['distinguishability']:.2f} "
                f"(0 = domains indistinguishable, 1 = always told apart), MMD² "
                f"{shift['mmd2']:.4f}{verdict}", highlight=False,
            )
    for warning in record.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"wrote {', '.join(files.values())}")


def _target_paths(target: Path, domain: Optional[str], layout: str) -> list[str]:
    """Audio files of the target: a folder's files, or a manifest's (optionally one domain)."""
    from ..exceptions import EarmarkError, ParameterError
    from .predict import expand

    if not target.exists():
        raise EarmarkError(f"{target}: no such file or folder")
    if domain is None and target.is_dir():
        paths = [str(path) for path in expand([target])]
    else:
        from ..datasets import load_dataset

        manifest = load_dataset(target, layout=layout)
        if domain is not None:
            keep = [str(value) == domain for value in manifest.domains]
            if not any(keep):
                known = sorted({str(value) for value in manifest.domains if value is not None})
                raise ParameterError(
                    f"{target}: no item has domain {domain!r}; domains are: {', '.join(known) or 'none'}"
                )
            manifest = manifest.subset(keep)
        paths = [str(path) for path in manifest.paths]
    if not paths:
        raise EarmarkError(f"{target}: no audio files found")
    return paths
