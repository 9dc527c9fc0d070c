"""``earmark explain``: which regions of a clip a model's score rests on (PNG + HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOption, QuietOption, console, emit_json, output_dir, working


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)


def explain(
    model_path: Path = typer.Argument(
        ..., help="A model file written by `earmark train` (a prototype network too)."
    ),
    file: Path = typer.Argument(..., help="The audio file to explain."),
    method: Optional[str] = typer.Option(
        None, "--method", "-m",
        help="occlusion (each region removed alone), lime (random subsets, linear "
        "surrogate) or links (a graph tagger's class-to-region attention) [default: links "
        "for a graph tagger, else occlusion].",
    ),
    label: Optional[str] = typer.Option(
        None, "--class", "-c", help="Class to explain; default the model's prediction."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o",
        help="Folder for the PNGs and the HTML page [default: earmark-output].",
    ),
    segments: int = typer.Option(8, "--segments", help="Time segments of the grid."),
    bands: int = typer.Option(8, "--bands", help="Mel-spaced frequency bands of the grid."),
    baseline: str = typer.Option(
        "floor", "--baseline",
        help="What removed regions become: floor (the clip's background level) or zero.",
    ),
    samples: int = typer.Option(256, "--samples", help="LIME: random masks scored."),
    seed: int = typer.Option(0, "--seed", help="LIME masks, random orders and noise."),
    check: bool = typer.Option(
        True, "--check/--no-check",
        help="Measure reliability: deletion/insertion curves and stability (slower).",
    ),
    start_s: Optional[float] = typer.Option(
        None, "--start", help="Explain the span from this second (default: the start)."
    ),
    end_s: Optional[float] = typer.Option(
        None, "--end", help="Explain the span up to this second (default: the end)."
    ),
    max_duration_s: float = typer.Option(
        30.0, "--max-duration",
        help="Longest span explained at once, in seconds; a longer one is refused before "
        "decoding (memory grows with the span: about 2.5 GB at 30 s).",
    ),
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Explain one clip: heat map over its spectrogram, top evidence, audio of the evidence."""
    from .. import audio
    from ..exceptions import ParameterError

    if max_duration_s <= 0:
        raise ParameterError(f"expected --max-duration > 0 seconds, got {max_duration_s}")
    # The span is checked against the header before the model is loaded: a file too
    # long to explain is refused at once.
    header = audio.info(file)
    first = start_s or 0.0
    last = header.duration_s if end_s is None else min(end_s, header.duration_s)
    if last - first > max_duration_s:
        raise ParameterError(
            f"{file}: the span to explain is {last - first:.1f} s long; at most "
            f"{max_duration_s:g} s is explained at once (every perturbed copy is held in "
            f"memory). Pick a span with --start/--end (e.g. --start {first:g} --end "
            f"{first + max_duration_s:g}) or raise --max-duration"
        )
    from ..interpret.explain import explain_file
    from ..interpret.perturb import model_backend
    from ..interpret.reliability import assess
    from ..interpret.render import write_explanation
    from rich.markup import escape

    from ..detection.batch import fit_name
    from ..models import load_model

    model = load_model(model_path)
    graph = model.kind == "graph-tagger"
    method = method or ("links" if graph else "occlusion")
    backend = model_backend(model)
    silent = quiet or json_output
    with working(f"explaining {escape(file.name)} ({method})", quiet=silent):
        explanation = explain_file(
            model, file, label=label, method=method, n_time=segments, n_bands=bands,
            baseline=baseline, n_samples=samples, seed=seed, backend=backend,
            start_s=start_s, end_s=end_s, max_duration_s=max_duration_s,
        )
    reliability = None
    if check:
        with working("checking its reliability (deletion, insertion, stability)", quiet=silent):
            reliability = assess(explanation, model, backend=backend, seed=seed)
    # Outputs named after the file (and span), short enough for any file system.
    stem = file.stem if start_s is None and end_s is None else (
        f"{file.stem}.{first:g}-{last:g}s"
    )
    sections, figures = [], {}
    if graph:  # the class-to-region links of every predicted tag, on the page and as a PNG
        from ..graph.links import links_section, plot_links

        sections.append(links_section(model, explanation.y))
        figures["links"] = lambda path: plot_links(model, explanation.y, path)
    paths = write_explanation(
        explanation, output_dir(output), reliability=reliability, stem=fit_name(stem),
        sections=sections, figures=figures,
    )
    if json_output:
        emit_json({
            "explanation": explanation.to_dict(),
            "reliability": None if reliability is None else reliability.to_dict(),
            "files": {kind: str(path) for kind, path in paths.items()},
        })
        return
    if not quiet:
        _print_evidence(explanation)
    if reliability is not None:
        console.print(f"reliability: {reliability.summary()}", highlight=False)
    console.print(f"wrote {paths['png']} and {paths['html']}", highlight=False)


def _print_evidence(explanation) -> None:
    from rich.table import Table

    table = Table(
        title=f"{explanation.method}: evidence for {explanation.label!s} "
        f"(score {explanation.base_score:.3f}; {explanation.empty_score:.3f} with nothing left)"
    )
    for column in ("rank", "time (s)", "band (Hz)", "importance"):
        table.add_column(column, justify="right")
    for row in explanation.top_regions(5):
        table.add_row(
            str(row["rank"]), f"{row['start_s']:.2f}-{row['end_s']:.2f}",
            f"{row['low_hz']:.0f}-{row['high_hz']:.0f}", f"{row['importance']:+.4f}",
        )
    console.print(table)
