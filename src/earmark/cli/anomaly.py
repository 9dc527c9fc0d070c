"""``earmark anomaly fit|score|evaluate``: anomalous sounds, learned from normal recordings alone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import BackendParamOption, JsonOption, QuietOption, console, emit_json

anomaly_app = typer.Typer(
    help="Anomalous sound detection: fit on normal recordings only, score, evaluate.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(anomaly_app, name="anomaly")


@anomaly_app.command("fit")
def fit(
    normal: Path = typer.Argument(..., help="Folder of normal audio (sub-folders = sections; "
                                  "source/target in DCASE file names = domains) or a manifest "
                                  "CSV (path, section, group, domain)."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.earmark)."),
    backend_name: Optional[str] = typer.Option(None, "--backend", "-b",
                                               help="Embedding backend (default: the best measured)."),
    backend_param: Optional[list[str]] = BackendParamOption,
    detector: Optional[str] = typer.Option(None, "--detector", "-d",
                                           help="knn, gaussian, mixture or pca."),
    pooling: Optional[str] = typer.Option(None, "--pooling",
                                          help="mean or max of frame scores, or clip."),
    false_alarm_rate: float = typer.Option(0.1, "--false-alarm-rate",
                                           help="Share of held-out normal recordings flagged."),
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Learn each section's normal sound; thresholds set on held-out normal recordings."""
    import warnings

    from ..anomaly import read_recordings
    from ..models import AnomalyModel, anomaly_defaults
    from ._common import open_backend

    defaults = anomaly_defaults()
    recordings = read_recordings(normal)
    backend = open_backend(backend_name or defaults["backend"], backend_param,
                           quiet=quiet or json_output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AnomalyModel.fit_files(
            recordings.paths, recordings.sections, recordings.groups, backend=backend,
            domains=recordings.domains,
            detector=detector or defaults["detector"], pooling=pooling or defaults["pooling"],
            false_alarm_rate=false_alarm_rate)
    model.save(output)
    summary = {"model": str(output), **model.metadata()}
    if json_output:
        emit_json(summary)
        return
    for warning in caught:
        console.print(f"[yellow]{warning.message}[/]", highlight=False)
    for name, profile in model.sections.items():
        console.print(f"section [bold]{name}[/]: {profile.n_items} normal recordings, "
                      f"{profile.n_frames} frames; threshold {profile.clip_threshold:.2f}", highlight=False)
        if len(profile.domains) > 1:
            for domain in profile.domains.values():
                console.print(f"  domain {domain.name}: {domain.n_items} normal recordings; "
                              f"threshold {domain.clip_threshold:.2f} (shift {domain.clip_shift:+.2f})",
                              highlight=False)
    console.print(f"wrote {output}")


@anomaly_app.command("score")
def score(
    model_path: Path = typer.Argument(..., help="A model file from `earmark anomaly fit`."),
    files: list[Path] = typer.Argument(..., help="Audio files or folders to score."),
    section: Optional[str] = typer.Option(None, "--section", "-s",
                                          help="The files' section (default: the nearest one)."),
    domain: Optional[str] = typer.Option(None, "--domain",
                                         help="The files' domain, e.g. target (default: "
                                         "that of the nearest normal training recording)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write .csv or .json here."),
    events_dir: Optional[Path] = typer.Option(
        None, "--events", help="Also write each file's anomalous segments (frames above the "
        "frame threshold) as an events CSV in this folder, as `earmark detect` does."),
    backend_param: Optional[list[str]] = BackendParamOption,
    json_output: bool = JsonOption,
) -> None:
    """Anomaly score per file (higher = more anomalous) and whether it passes the threshold."""
    from .predict import expand

    model = _anomaly_model(model_path)
    rows = model.score_rows(expand(files), section=section, domain=domain,
                            backend=model.backend(params=_params(backend_param)))
    if events_dir is not None:
        _write_segments(model, rows, events_dir, section=section, domain=domain)
    if output is not None:
        write_table(rows, output)
    if json_output:
        emit_json(rows)
    elif output is None:
        write_table(rows, None)
    if rows and all(row["error"] for row in rows):
        raise typer.Exit(1)


@anomaly_app.command("evaluate")
def evaluate(
    model_path: Path = typer.Argument(..., help="A model file from `earmark anomaly fit`."),
    test: Path = typer.Argument(..., help="Folder (files named anomaly_* are anomalous) or "
                                "manifest CSV with a label column (normal / anomaly)."),
    roc: Optional[Path] = typer.Option(None, "--roc", help="Write the ROC picture (PNG) here."),
    domain_unknown: bool = typer.Option(
        False, "--domain-unknown", help="Score without telling the model the test recordings' "
        "domains (DCASE 2022's rule: each takes its nearest normal recording's); AUC is still "
        "reported per domain."),
    backend_param: Optional[list[str]] = BackendParamOption,
    json_output: bool = JsonOption,
) -> None:
    """AUC and partial AUC (FPR <= 0.1) per section and overall, as DCASE reports them;
    with domains (a manifest's domain column, or DCASE file names), AUC per section per
    domain and DCASE 2022's official score."""
    import numpy as np

    from ..anomaly import evaluate_scores, plot_roc, read_recordings

    model = _anomaly_model(model_path)
    recordings = read_recordings(test)
    known = set(recordings.sections.tolist()) <= set(model.sections)
    domains = recordings.domains if recordings.has_domains else None
    rows = model.score_rows(recordings.paths, section=recordings.sections if known else None,
                            domain=None if domain_unknown else domains,
                            backend=model.backend(params=_params(backend_param)))
    ok = [i for i, row in enumerate(rows) if row["error"] is None]
    evaluation = evaluate_scores([rows[i]["score"] for i in ok], recordings.anomalous[ok],
                                 [rows[i]["section"] for i in ok],
                                 None if domains is None else domains[ok])
    if roc is not None:
        plot_roc(evaluation, roc)
    baseline = model.baseline_scores([recordings.paths[i] for i in ok],
                                     [rows[i]["section"] for i in ok])
    fitted = np.isfinite(baseline)
    reference = evaluate_scores(baseline[fitted], recordings.anomalous[ok][fitted],
                                [rows[i]["section"] for i, f in zip(ok, fitted) if f]) \
        if fitted.any() else None
    payload = {**evaluation.to_dict(), "n_failed": len(rows) - len(ok),
               "high_pass_baseline": None if reference is None else reference.to_dict(),
               "failed": [row["error"] for row in rows if row["error"]]}
    if json_output:
        emit_json(payload)
        return
    for name, result in evaluation.sections.items():
        console.print(f"{name}: AUC {result['auc']:.3f}  pAUC {result['pauc']:.3f}  "
                      f"({result['n_normal']} normal, {result['n_anomalous']} anomalous)", highlight=False)
        for domain, figures in result.get("domains", {}).items():
            console.print(f"  {domain}: AUC {figures['auc']:.3f}  ({figures['n_normal']} normal "
                          f"{domain}, against all {figures['n_anomalous']} anomalous)", highlight=False)
    console.print(f"[bold]mean AUC {evaluation.auc:.3f}  pAUC {evaluation.pauc:.3f}[/] "
                  f"(harmonic: {evaluation.auc_hmean:.3f} / {evaluation.pauc_hmean:.3f})")
    if evaluation.domains:
        per = "  ".join(f"{d} {v['auc']:.3f}" for d, v in evaluation.domains.items())
        console.print(f"mean AUC per domain: {per}; DCASE 2022 score (harmonic mean of the "
                      f"domains' AUCs and pAUC): {evaluation.score_hmean:.3f}", highlight=False)
    if reference is not None:
        console.print(f"high-pass baseline (energy above a cut-off chosen on normal data): "
                      f"mean AUC {reference.auc:.3f}  pAUC {reference.pauc:.3f}", highlight=False)
    if roc is not None:
        console.print(f"ROC picture: {roc}")


def _write_segments(model, rows: list[dict], folder: Path, *, section, domain=None) -> None:
    """One ``<name>.anomalies.csv`` per readable file; each row gains ``segments``."""
    from ..detection.events import write_events

    folder.mkdir(parents=True, exist_ok=True)
    backend = model.backend()
    for index, row in enumerate(rows):
        if row["error"] is not None:
            continue
        events, *_ = model.segments(row["path"], section=section, domain=domain, backend=backend)
        target = folder / f"{index:04d}-{Path(row['path']).stem}.anomalies.csv"
        write_events(events, target, "csv")
        row["segments"] = [{"onset_s": e.onset_s, "offset_s": e.offset_s, "score": e.score}
                           for e in events]
        row["events_file"] = str(target)


def write_table(rows: list[dict], output: Optional[Path]) -> None:
    """Rows as JSON (a ``.json`` path) or CSV (a path, or stdout)."""
    import csv
    import json
    import sys

    if output is not None and output.suffix.lower() == ".json":
        output.write_text(json.dumps(rows, indent=2))
        return
    handle = open(output, "w", newline="") if output is not None else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path", "score"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    finally:
        if output is not None:
            handle.close()


def _params(values) -> dict:
    from ._common import parse_params

    return parse_params(values)


def _anomaly_model(path: Path):
    from ..exceptions import ParameterError
    from ..models import load_model

    model = load_model(path)
    if model.kind != "anomaly":
        raise ParameterError(f"{path} holds a {model.kind!r} model; `earmark anomaly` needs one "
                             f"from `earmark anomaly fit`")
    return model
