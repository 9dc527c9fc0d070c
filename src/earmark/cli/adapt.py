"""``earmark adapt``: adapt a saved model to new recording conditions from unlabelled audio."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    CacheOption, JsonOption, LayoutOption, QuietOption, console, embed_clips, emit_json,
    load_data, open_cache,
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
        help="standardize (needs no source for logreg/svm/knn/mlp models), coral, dann or "
        "selftrain (these need --source).",
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
    from ..adaptation import METHODS, adapt_model
    from ..adaptation.plots import plot_domains
    from ..exceptions import EarmarkError, ParameterError
    from ..models import EarmarkModel
    from ..pipeline import clip_embeddings

    quiet = quiet or json_output
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
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
    files = {"model": str(output)}
    if X_source is not None:
        picture = output.with_suffix(".png")
        panels = {"before": (X_source, X_target)}
        if "adapt" in adapted.pipeline.named_steps:
            panels[f"after {method}"] = (
                X_source, adapted.pipeline.named_steps["adapt"].transform(X_target)
            )
        elif hasattr(adapted.pipeline[-1], "features"):
            classifier = adapted.pipeline[-1]
            panels[f"after {method} (learned features)"] = (
                classifier.features(X_source), classifier.features(X_target)
            )
        plot_domains(panels, picture, names=("source", "target"),
                     title=f"{backend.name} embeddings, before and after {method}")
        files["plot"] = str(picture)
    payload = {"method": method, "n_target": int(ok.sum()), "n_failed": run.n_failed,
               "adaptation": record, "files": files}
    if json_output:
        emit_json(payload)
        return
    console.print(f"adapted with [bold]{method}[/] to {int(ok.sum())} target files", highlight=False)
    for stage in ("shift_before", "shift_after"):
        if stage in record:
            shift = record[stage]
            console.print(
                f"  {stage.replace('_', ' ')}: domain accuracy {shift['domain_accuracy']:.2f}, "
                f"MMD² {shift['mmd2']:.4f} ({shift['verdict']})", highlight=False,
            )
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
