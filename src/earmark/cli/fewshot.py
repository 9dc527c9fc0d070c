"""``earmark fewshot``: N-way K-shot accuracy over many episodes, support and query kept apart."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    BackendOption, BackendParamOption, CacheOption, DataArgument, JsonOption, LayoutOption,
    QuietOption, console, embed_clips, emit_json, load_data, open_backend, open_cache,
    output_dir, split_columns,
)


def register(app: typer.Typer) -> None:
    app.command("fewshot")(fewshot)


def fewshot(
    data: str = DataArgument,
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    methods: Optional[list[str]] = typer.Option(
        None, "--method", "-m",
        help="Few-shot method (repeatable): prototype (default), prototype-euclidean, "
        "prototype-cosine, hierarchical (needs --taxonomy), or a learner such as logreg.",
    ),
    ways: str = typer.Option("5", "--ways", help="Classes per episode, or 'all'."),
    shots: Optional[list[str]] = typer.Option(
        None, "--shots", help="Examples per class: '1,5' or repeated --shots 1 --shots 5.",
    ),
    episodes: int = typer.Option(600, "--episodes", help="Episodes per point."),
    queries: int = typer.Option(15, "--queries", help="Query items per class and episode."),
    unknown_ways: int = typer.Option(
        0, "--unknown-ways", help="Classes per episode left out of the support set (open set)."
    ),
    taxonomy: Optional[str] = typer.Option(
        None, "--taxonomy",
        help="Taxonomy file (YAML/JSON) or shipped name (esc50, philharmonia, speech-commands) "
        "for coarse-level accuracy.",
    ),
    query_fold: Optional[str] = typer.Option(
        None, "--query-fold",
        help="Folds mode: queries from this official fold, support from the others ('each': "
        "every fold in turn). Default: keep groups apart.",
    ),
    center: str = typer.Option(
        "collection", "--center",
        help="Where prototype methods centre the embeddings: 'collection' (the mean of all "
        "clips in DATA, labels unused; separates unknown classes better) or 'support' (each "
        "episode's support set).",
    ),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for JSON and PNG."),
    layout: str = LayoutOption,
    cache_dir: Optional[Path] = CacheOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Few-shot episodes: accuracy ± 95 % CI per method and shots, optional open set (PNG + JSON)."""
    from ..exceptions import ParameterError
    from ..fewshot.evaluation import CENTERS
    from ..fewshot.methods import METHODS

    quiet = quiet or json_output
    methods = list(dict.fromkeys(methods or ["prototype"]))
    unknown = [name for name in methods if name not in METHODS]
    if unknown:  # before embedding, which can take minutes
        raise ParameterError(
            f"unknown few-shot method {unknown[0]!r}; expected one of: {', '.join(METHODS)}"
        )
    if center not in CENTERS:  # before embedding too
        raise ParameterError(f"expected --center collection or support, got {center!r}")
    way_count = parse_ways(ways)
    shot_counts = parse_shots(shots or ["1,5"])
    loaded_taxonomy = _load_taxonomy(taxonomy)
    manifest = load_data(data, layout, quiet=quiet)
    backend = open_backend(backend_name, backend_params, quiet=quiet)
    X, manifest, _run = embed_clips(manifest, backend, open_cache(cache_dir), quiet=quiet)
    folds, groups = split_columns(manifest)
    if query_fold is None:
        # Groups are kept apart episode by episode; folds only where there are no groups.
        folds = None if groups is not None else folds
        fold = None
    elif folds is None:
        raise ParameterError(f"--query-fold needs official folds; {data} has none")
    else:
        fold = None if query_fold == "each" else query_fold
    results = run_methods(
        X, manifest.y, methods, folds=folds, groups=groups, query_fold=fold, ways=way_count,
        shots=shot_counts, queries=queries, episodes=episodes, unknown_ways=unknown_ways,
        taxonomy=loaded_taxonomy, seed=seed, center=center, quiet=quiet,
    )
    target = output_dir(output)
    files = write_results(results, target, backend)
    if json_output:
        emit_json({"backend": backend.identity(), "results": [r.to_dict() for r in results],
                   "files": files})
        return
    show_results(results)
    console.print(f"wrote {files['json']} and {files['plot']}")


def parse_ways(text: str):
    from ..exceptions import ParameterError

    text = text.strip()
    if text == "all":
        return "all"
    if text.isdigit() and int(text) >= 2:
        return int(text)
    raise ParameterError(f"expected --ways to be an integer >= 2 or 'all', got {text!r}")


def parse_shots(values: list[str]) -> list[int]:
    from ..exceptions import ParameterError

    shots = []
    for value in values:
        for part in value.replace(" ", ",").split(","):
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise ParameterError(f"expected shots like '1,5', got {part!r} in {value!r}")
            shots.append(int(part))
    if not shots:
        raise ParameterError("expected at least one shot count, e.g. --shots 1,5")
    return sorted(set(shots))


def _load_taxonomy(value: Optional[str]):
    if value is None:
        return None
    from ..taxonomy import load_taxonomy

    return load_taxonomy(value)


def run_methods(X, y, methods, *, quiet: bool, **options):
    """One :class:`~earmark.fewshot.evaluation.FewShotResult` per method, same episodes."""
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
    )

    from ..fewshot.evaluation import evaluate_episodes

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet, transient=True) as progress:
        for method in methods:
            task = progress.add_task(f"few-shot episodes, {method}", total=None)
            results.append(evaluate_episodes(
                X, y, estimator=method, **options,
                progress=lambda done, total, task=task: progress.update(
                    task, completed=done, total=total
                ),
            ))
    return results


def write_results(results, target: Path, backend) -> dict:
    import json

    from ..fewshot.plots import plot_fewshot

    json_path, plot_path = target / "fewshot.json", target / "fewshot.png"
    payload = {"backend": backend.identity(), "results": [r.to_dict() for r in results]}
    json_path.write_text(json.dumps(payload, indent=2))
    plot_fewshot(results, plot_path, title=f"Few-shot accuracy, {backend.name} embeddings")
    return {"json": str(json_path), "plot": str(plot_path)}


def show_results(results) -> None:
    import numpy as np
    from rich.table import Table

    for result in results:
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {result.method}: {warning}", highlight=False)
        for skipped in result.skipped:
            console.print(
                f"[yellow]skipped:[/] {result.method}, {skipped['shots']}-shot: "
                f"{skipped['reason']}", highlight=False,
            )
    first = results[0]
    points = [point for result in results for point in result.points]
    coarse = any(point.coarse_accuracy for point in points)
    open_set = any(point.rejection for point in points)
    own = open_set and any(point.own_coverage for point in points)
    caption = "in %: mean ± 95 % confidence interval over episodes"
    centred = next((result.center for result in results if result.center), None)
    if centred:
        caption += f"; prototypes centred on {centred}"
    if open_set:
        caption += (
            "; rejected: unknown-class queries below the threshold that keeps "
            f"{first.coverage:.0%} of known-class queries"
        )
    if own:
        caption += (
            "; own: known-class queries kept and unknown-class ones rejected by the "
            "method's own threshold, set on its support set to keep "
            f"{first.coverage:.0%}"
        )
    table = Table(
        title=f"few-shot, {first.strategy}, {first.episodes} episodes per row", caption=caption
    )
    headers = ["method", "ways", "shots", "accuracy"]
    headers += ["coarse"] * coarse + ["rejected", "AUROC"] * open_set
    headers += ["own: kept", "own: rejected"] * own + ["queries"]
    for header in headers:
        # The method's name is never cut; figures wrap first on a narrow terminal.
        table.add_column(header, justify="left" if header == "method" else "right",
                         no_wrap=header == "method")
    for result in results:
        for point in result.points:
            row = [result.method, str(point.ways), str(point.shots), _shown(point, "accuracy")]
            if coarse:
                row.append(_shown(point, "coarse_accuracy"))
            if open_set:
                auroc = point.figure("auroc")
                row += [_shown(point, "rejection"), "-" if auroc is None else f"{auroc[0]:.2f}"]
            if own:
                row += [_shown(point, "own_coverage"), _shown(point, "own_rejection")]
            table.add_row(*row, f"{point.queries_per_class:.1f}")
    console.print(table)
    for result in results:
        for point in result.points:
            if point.auroc_by_score:
                compared = ", ".join(
                    f"{name} {np.mean(values):.2f}" for name, values in point.auroc_by_score.items()
                )
                console.print(f"{result.method}, {point.shots}-shot: AUROC by known-ness score: "
                              f"{compared}", highlight=False)


def _shown(point, name: str) -> str:
    figure = point.figure(name)
    return "-" if figure is None else f"{100 * figure[0]:.1f} ± {100 * figure[1]:.1f}"
