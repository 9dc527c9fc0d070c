"""``earmark evaluate-events``: detections against a reference table, every figure at once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOption, console, emit_json


def register(app: typer.Typer) -> None:
    app.command("evaluate-events")(evaluate_events)


def evaluate_events(
    truth: Path = typer.Argument(..., help="Reference events: CSV path,label,onset_s,offset_s "
                                 "(or an events file earmark writes)."),
    detections: list[Path] = typer.Argument(
        ..., help="Events files written by `earmark detect` (csv or json), or their folder."),
    plots: Optional[Path] = typer.Option(
        None, "--plots", help="Folder for one precision/recall-vs-threshold PNG per class."),
    json_output: bool = JsonOption,
) -> None:
    """Event F (200 ms), onset F (1 s), segment F (1 s), error rate and PSDS, per class."""
    from rich.table import Table

    from ..audio import info
    from ..detection.combined import event_files
    from ..detection.events import read_events
    from ..detection.scoring import align_paths, events_frame, plot_threshold_curves, threshold_curves
    from ..detection.scoring import evaluate_events as evaluate
    from ..exceptions import AudioError, ParameterError

    if truth.suffix.lower() == ".csv":  # a plain table: the score column is optional
        import pandas as pd

        reference = events_frame(pd.read_csv(truth))
    else:
        reference = events_frame(read_events(truth))
    files = event_files(detections)
    if not files:
        raise ParameterError(f"expected events files, found none in {[str(p) for p in detections]}")
    estimated = events_frame([event for file in files for event in read_events(file)])
    reference, estimated, matched_by = align_paths(reference, estimated, base=truth.parent)
    if matched_by != "paths" and not json_output:
        console.print(f"recordings matched by {matched_by}", style="dim", highlight=False)
    durations = {}
    for path in set(reference["path"].dropna()) | set(estimated["path"].dropna()):
        try:
            durations[path] = info(path).duration_s
        except (AudioError, OSError):
            durations = None
            break
    result = evaluate(reference, estimated, durations=durations)
    written = []
    if plots is not None:
        written = plot_threshold_curves(threshold_curves(reference, estimated), plots)
    if json_output:
        emit_json({**result, "plots": [str(p) for p in written]})
        return
    table = Table(title=f"{len(files)} detection file(s) against {truth.name}")
    columns = ("event_f", "event_error_rate", "onset_f", "segment_f", "detected", "true")
    table.add_column("class")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for label, row in [*result["per_class"].items(), ("all (micro)", result["overall"])]:
        table.add_row(str(label), *(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                    for c in columns))
    console.print(table)
    if result["psds"] is not None:
        console.print(f"PSDS (scenario 1): {result['psds']:.3f}", highlight=False)
    for path in written:
        console.print(f"wrote {path}", style="dim", highlight=False)
