"""``earmark detect``: timestamped sound events in audio files of any length."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._cluster import ClusterOption, WorkersOption, cluster_client
from ._common import (
    JsonOption, QuietOption, console, emit_json, output_dir, report_failures, show_progress,
)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detect(
    model_path: Path = typer.Argument(..., help="A model file written by `earmark train`."),
    files: list[Path] = typer.Argument(..., help="Audio files or folders to scan."),
    out_dir: Optional[Path] = typer.Option(
        None, "--output-dir", "-o", help="Folder for events and pictures (earmark-output)."
    ),
    formats: Optional[list[str]] = typer.Option(
        None, "--format", "-f",
        help="csv, json, audacity (label track) or raven (selection table); repeatable. "
        "Default csv.",
    ),
    thresholds: Optional[list[str]] = typer.Option(
        None, "--threshold", "-t",
        help="Score threshold, or LABEL=VALUE for one class; repeatable. Default: the "
        "thresholds a detector learned (earmark train --detector), else 0.5.",
    ),
    median_s: Optional[float] = typer.Option(
        None, "--median-s", help="Median filter length in seconds (default: learned, else 0)."
    ),
    min_duration_s: Optional[float] = typer.Option(
        None, "--min-duration-s", help="Drop events shorter than this (default: learned, else 0)."
    ),
    merge_gap_s: Optional[float] = typer.Option(
        None, "--merge-gap-s",
        help="Merge events of one class at most this far apart (default: learned, else 0).",
    ),
    cells: Optional[str] = typer.Option(
        None, "--cells",
        help="mean, min or max: when windows overlap (window longer than hop), score the "
        "short cells between window edges by reducing the windows over each, so events are "
        "not stretched by a window on each side. Default: learned, else runs of whole "
        "windows; 'none' for whole windows.",
    ),
    boundaries: Optional[str] = typer.Option(
        None, "--boundaries",
        help="windows: for windows longer than their hop, put each event where its run of "
        "active windows agree (a short sound lies inside every one of them), not over their "
        "whole span; level: that, then move each onset and offset (within one hop) to where "
        "the recording's level crosses halfway between its background and the event's peak, "
        "where the event stands 12 dB above the loud end of its background; frames: over the "
        "run of frames. Default level.",
    ),
    window_s: Optional[float] = typer.Option(
        None, "--window", help="Window in seconds (default: the backend's window)."
    ),
    hop_s: Optional[float] = typer.Option(
        None, "--hop", help="Hop in seconds (default: the backend's hop)."
    ),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw a picture per file."),
    html: bool = typer.Option(
        True, "--html/--no-html",
        help="Write a page per file (NAME.detections.html) that zooms into the events and "
        "plays each one; it finds the recording by its path relative to the page.",
    ),
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
    cluster: Optional[str] = ClusterOption,
    workers: Optional[int] = WorkersOption,
) -> None:
    """Find where each class sounds in each file; one events file per input and format.

    Besides the per-file outputs, all.events.csv and all.selections.txt (a Raven table
    with Begin Path and File Offset, over the files in all.files.txt) list every scanned
    file's events.
    """
    from ..detection.batch import detect_files
    from ..detection.combined import write_combined
    from ..detection.postprocessing import resolve_postprocessing
    from ..detection.stream import SlidingWindows
    from ..exceptions import ParameterError
    from ..models import load_model
    from .predict import expand

    model = load_model(model_path)
    if model.kind == "anomaly":
        raise ParameterError(
            f"{model_path}: an anomaly model scores how unusual a recording is, not which "
            f"class sounds when; use `earmark anomaly score` (with --events for the anomalous segments)"
        )
    if getattr(model, "backend_identity", None) is None:
        raise ParameterError(
            f"{model_path}: a {model.kind} model reads patches, not a backend's frames; "
            f"detect needs a clip or frame model (earmark train, or --mil)"
        )
    backend = model.backend()
    # A model that scores frames itself is used per frame; a clip model slides windows.
    scorer = (
        model if hasattr(model, "segment_proba")
        else SlidingWindows(model, window_s=window_s, hop_s=hop_s)
    )
    settings = resolve_postprocessing(
        getattr(model, "postprocessing", None), threshold=_thresholds(thresholds),
        median_s=median_s, min_duration_s=min_duration_s, merge_gap_s=merge_gap_s, cells=cells,
        boundaries=boundaries,
    )
    paths = expand(files)
    target = output_dir(out_dir)
    progress = _Progress(
        len(paths), disabled=not show_progress(quiet=quiet, json_output=json_output)
    )
    quiet = quiet or json_output
    with cluster_client(cluster, workers, quiet=quiet) as client:
        # Checked here, before the progress display starts: a bad option is one clean line.
        each_file = detect_files(
            scorer, backend, paths, target,
            formats=formats or ["csv"], plot=plot, html=html,
            on_file=progress.start_file, on_progress=progress.advance,
            **settings, client=client,
        )
        reports = []
        with progress:
            for report in each_file:
                reports.append(report)
                progress.end_file(report)
    # A cluster reports files as they finish; people and --json read them in input order.
    order = {str(path): index for index, path in enumerate(paths)}
    reports.sort(key=lambda report: order.get(report.path, len(order)))
    failures = [report for report in reports if report.error]
    scanned = [report.result for report in reports if report.result is not None]
    if scanned:
        # With no file scanned the command fails and the folder keeps its last tables.
        write_combined(scanned, target)
    if json_output:
        emit_json([report.to_dict() for report in reports])
    elif not quiet:
        found = sum(len(report.result.events) for report in reports if report.result)
        console.print(
            f"{found} event(s) in {len(reports) - len(failures)} file(s); written to {target}",
            highlight=False,
        )
    if not json_output:
        report_failures(failures)
    if failures and len(failures) == len(reports):
        raise typer.Exit(1)


def _thresholds(values: Optional[list[str]]):
    """``["0.6", "dog=0.8"]`` -> ``{"*": 0.6, "dog": 0.8}``; a mapping the library reads."""
    from ..exceptions import ParameterError

    thresholds: dict[str, float] = {}
    for value in values or []:
        label, sep, number = value.rpartition("=")
        try:
            thresholds[label if sep else "*"] = float(number)
        except ValueError:
            raise ParameterError(
                f"expected --threshold VALUE or LABEL=VALUE, got {value!r}"
            ) from None
    return thresholds or None


class _Progress:
    """Rich progress by seconds of audio for the current file, and files done."""

    def __init__(self, n_files: int, *, disabled: bool):
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
        )

        self.rich = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, disable=disabled, transient=True,
        )
        self.files = self.rich.add_task("files", total=n_files)
        self.audio = self.rich.add_task("", total=None, visible=False)

    def __enter__(self):
        self.rich.__enter__()
        return self

    def __exit__(self, *exc_info):
        self.rich.__exit__(*exc_info)

    def start_file(self, path: str, duration_s: float | None) -> None:
        from rich.markup import escape

        name = escape(Path(path).name)
        total = None if duration_s is None else max(round(duration_s), 1)
        self.rich.reset(self.audio, total=total, description=f"{name} (s)", visible=True)

    def advance(self, seconds: float) -> None:
        self.rich.advance(self.audio, seconds)

    def end_file(self, report) -> None:
        self.rich.update(self.audio, visible=False)
        self.rich.advance(self.files, 1)
