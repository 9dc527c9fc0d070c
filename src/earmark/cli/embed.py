"""``earmark embed``: fill the embedding cache for a dataset (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._cluster import ClusterOption, WorkersOption, cluster_client
from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption,
    QuietOption, console, emit_json, load_data, open_backend, open_cache, report_failures,
    show_progress,
)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)


def embed(
    data: str = DataArgument,
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
    cluster: Optional[str] = ClusterOption,
    workers: Optional[int] = WorkersOption,
) -> None:
    """Embed every item of DATA (a dataset, or one audio file) into the cache. Killed and run
    again, it goes on where it was."""
    from ..pipeline import embed_manifest

    progress = show_progress(quiet=quiet, json_output=json_output)
    quiet = quiet or json_output
    manifest = _audio_file(data) or load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet, cache_dir=cache_dir)
    store = open_cache(cache_dir)
    with cluster_client(cluster, workers, quiet=quiet) as client:
        run = embed_manifest(manifest, backend, store, progress=progress, client=client)
    if json_output:
        emit_json({
            "backend": backend.identity(),
            "store": str(getattr(store, "directory", "")),
            "items": run.n_items,
            "computed": run.n_computed,
            "reused": run.n_reused,
            "failed": [{"path": f.path, "reason": f.reason} for f in run.failures],
            "computed_audio_s": run.computed_audio_s,
            "wall_s": run.wall_s,
            "tasks": run.n_tasks,
            "workers": run.n_workers,
        })
    else:
        report_failures(run.failures, named_above=not quiet)
        console.print(run.summary().splitlines()[0], highlight=False)
    if run.failures and len(run.failures) == len(manifest):
        raise typer.Exit(1)


def _audio_file(data: str) -> list[str] | None:
    """``[data]`` if DATA is one audio file (embedding needs no label), else None."""
    from ..audio import SUPPORTED_EXTENSIONS

    path = Path(data)
    if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS:
        return [str(path)]
    return None
