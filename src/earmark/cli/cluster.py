"""``earmark cluster``: group a collection by sound, without labels, and map it."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache,
)


def register(app: typer.Typer) -> None:
    app.command("cluster")(cluster)


def cluster(
    data: str = DataArgument,
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    method: str = typer.Option(
        "kmeans", "--method", "-m", help="kmeans, agglomerative (Ward) or hdbscan."
    ),
    k: str = typer.Option(
        "auto", "--k", help="Number of clusters, or 'auto' to choose it by --criterion."
    ),
    min_k: int = typer.Option(2, "--min-k", help="Smallest number tried by --k auto."),
    max_k: int = typer.Option(20, "--max-k", help="Largest number tried by --k auto."),
    criterion: str = typer.Option(
        "silhouette", "--criterion",
        help="Choice of k: silhouette, calinski_harabasz or davies_bouldin.",
    ),
    min_cluster_size: Optional[int] = typer.Option(
        None, "--min-cluster-size", help="HDBSCAN's smallest cluster (default n/50, at least 5)."
    ),
    map_path: Optional[Path] = typer.Option(
        None, "--map", help="Write the interactive cluster map (HTML) here."
    ),
    projection: str = typer.Option(
        "auto", "--projection", help="Map layout: auto (UMAP), umap, tsne or pca."
    ),
    color_by: str = typer.Option("cluster", "--color-by", help="Map colouring: cluster or label."),
    audio: str = typer.Option(
        "embed", "--audio",
        help="Sound in the map: embed (short MP3 previews inside the page), link (files by "
        "relative path) or none.",
    ),
    audio_seconds: float = typer.Option(5.0, "--audio-seconds", help="Longest embedded preview."),
    seed: int = typer.Option(0, "--seed"),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Cluster clip embeddings: sizes, medoid files, top labels, and scores against labels."""
    from ..exceptions import ParameterError
    from ..explore.cluster import CRITERIA, METHODS, EmbeddingClusterer

    quiet = quiet or json_output
    n_clusters = _parse_k(k)
    # Check everything a user can mistype before embedding, which can take minutes.
    _check_choice("--method", method, METHODS)
    _check_choice("--criterion", criterion, tuple(CRITERIA))
    if map_path is not None:
        from ..explore.map import AUDIO_MODES, COLOR_BY
        from ..explore.projection import METHODS as PROJECTIONS

        _check_choice("--projection", projection, PROJECTIONS)
        _check_choice("--color-by", color_by, COLOR_BY)
        _check_choice("--audio", audio, AUDIO_MODES)
    model = EmbeddingClusterer(
        method=method, n_clusters=n_clusters, min_clusters=min_k, max_clusters=max_k,
        criterion=criterion, min_cluster_size=min_cluster_size, random_state=seed,
    )
    if method == "hdbscan" and n_clusters != "auto":
        raise ParameterError("hdbscan chooses the number of clusters itself; leave --k auto")
    if n_clusters == "auto" and not 2 <= min_k <= max_k:
        raise ParameterError(f"expected 2 <= --min-k <= --max-k, got {min_k} and {max_k}")

    manifest = load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    with console.status("clustering", spinner="dots") if not quiet else nullcontext():
        model.fit(X)
    result = describe(model, manifest)
    if map_path is not None:
        result["map"] = write_cluster_map(
            map_path, X, manifest, model, projection=projection, color_by=color_by,
            audio=audio, audio_seconds=audio_seconds, seed=seed, backend=backend.name,
            quiet=quiet,
        )
    if json_output:
        emit_json({"backend": backend.identity(), **result})
        return
    show(result)


def _parse_k(text: str):
    from ..exceptions import ParameterError

    text = text.strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ParameterError(f"expected --k to be a positive integer or 'auto', got {text!r}")


def _check_choice(option: str, value: str, choices) -> None:
    from ..exceptions import ParameterError

    if value not in choices:
        raise ParameterError(f"expected {option} in {', '.join(choices)}, got {value!r}")


def item_labels(manifest) -> list[str]:
    """One text per item: its label, or its labels joined with ';'."""
    return [";".join(labels) for labels in manifest.frame["labels"]]


def describe(model, manifest) -> dict:
    """Everything the command reports, as plain data (also the ``--json`` payload)."""
    from ..explore.cluster import cluster_scores, summarize_clusters

    labels = item_labels(manifest)
    paths = [str(path) for path in manifest.paths]
    rows = summarize_clusters(model.labels_, model.medoid_indices_, labels)
    for row in rows:
        if row["cluster"] >= 0:
            row["medoid"] = paths[row["medoid"]]
            row["examples"] = [paths[i] for i in model.examples_[row["cluster"]]]
    scores = None
    scores_note = None
    if manifest.is_multilabel:
        scores_note = "multi-label items: no scores against labels"
    elif len(manifest.classes) < 2:
        scores_note = "a single label: no scores against labels"
    else:
        scores = cluster_scores(manifest.y, model.labels_)
    return {
        "method": model.method,
        "n_items": len(paths),
        "n_clusters": model.n_clusters_,
        "criterion": model.criterion_,
        "criterion_value": model.criterion_value_,
        "selection_scores": model.selection_scores_,
        "clusters": rows,
        "scores": scores,
        "scores_note": scores_note,
        "assignments": [
            {"path": path, "cluster": int(c)} for path, c in zip(paths, model.labels_)
        ],
        "map": None,
    }


def write_cluster_map(
    path, X, manifest, model, *, projection, color_by, audio, audio_seconds, seed, backend, quiet
) -> dict:
    from ..explore.map import write_map
    from ..explore.projection import project

    with console.status("laying out the map", spinner="dots") if not quiet else nullcontext():
        placed = project(X, method=projection, random_state=seed)
    spans = None
    frame = manifest.frame
    if frame["start_s"].notna().any() or frame["end_s"].notna().any():
        spans = [
            (None if s != s else s, None if e != e else e)  # NaN marks a missing bound
            for s, e in zip(frame["start_s"], frame["end_s"])
        ]
    written = write_map(
        path, placed.coordinates, [str(p) for p in manifest.paths],
        labels=item_labels(manifest), clusters=model.labels_, color_by=color_by, audio=audio,
        audio_seconds=audio_seconds, spans=spans,
        title=f"earmark cluster map: {len(manifest)} clips, {model.n_clusters_} clusters",
        subtitle=f"{backend} embeddings, {model.method}, k = {model.n_clusters_}: "
        f"{model.criterion_}; layout {placed.description}",
    )
    if not quiet:
        from ._common import report_failures

        report_failures([
            SimpleNamespace(path=file, reason=reason) for file, reason in written.audio_failures
        ])
    return {
        "path": str(written.path),
        "projection": placed.method,
        "projection_note": placed.note,
        "audio": written.audio,
        "audio_failures": [
            {"path": file, "reason": reason} for file, reason in written.audio_failures
        ],
    }


def show(result: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"{result['n_clusters']} clusters of {result['n_items']} clips ({result['method']})"
    )
    table.add_column("cluster", justify="right")
    table.add_column("size", justify="right")
    table.add_column("medoid file", overflow="fold")
    table.add_column("top labels", overflow="fold")
    # Relative to the collection's folder: class folders reuse file names.
    root = Path(os.path.commonpath([a["path"] for a in result["assignments"]]))
    if root.suffix:  # a single file
        root = root.parent
    for row in result["clusters"]:
        name = "unassigned" if row["cluster"] < 0 else str(row["cluster"])
        medoid = os.path.relpath(row["medoid"], root) if row["medoid"] else "-"
        top = ", ".join(f"{label} {count}" for label, count in row["top_labels"])
        table.add_row(name, str(row["size"]), escape(medoid), escape(top))
    console.print(table)
    console.print(f"k = {result['n_clusters']}: {escape(result['criterion'])}", highlight=False)
    scores = result["scores"]
    if scores:
        console.print(
            f"against labels ({scores['n_classes']} classes): purity {scores['purity']:.3f}, "
            f"adjusted Rand {scores['adjusted_rand']:.3f}, NMI {scores['nmi']:.3f}"
            + (f", {100 * scores['unassigned']:.0f} % unassigned" if scores["unassigned"] else ""),
            highlight=False,
        )
    elif result["scores_note"]:
        console.print(result["scores_note"], style="dim")
    if result["map"]:
        note = result["map"]["projection_note"]
        console.print(
            f"wrote {escape(result['map']['path'])} ({result['map']['projection']}"
            + (f"; {escape(note)}" if note else "") + ")",
            highlight=False,
        )
