"""Pieces shared by the commands: consoles, data and backend options, JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

#: Messages, progress and tables for people go to stderr, so stdout stays clean for --json.
error_console = Console(stderr=True)
console = Console(stderr=True)

# scikit-learn repeats this for every 1-shot episode (hundreds of times); say it once.
warnings.filterwarnings(
    "once", message="The number of unique classes is greater than 50% of the number of samples"
)

DataArgument = typer.Argument(
    ...,
    help="A dataset folder (class folders, ESC-50, UrbanSound8K, FSDD, Speech Commands), "
    "a manifest CSV, or 'demo' for the bundled spoken-digit set.",
    show_default=False,
)
BackendOption = typer.Option(
    None, "--backend", "-b",
    help="Embedding backend (see `earmark backends`); default birdnet. Join several with "
    "'+' for a fused backend, e.g. birdnet+aisfx+musicnn."
)
BackendParamOption = typer.Option(
    None, "--backend-param", "-p",
    help="Backend parameter KEY=VALUE (repeatable), e.g. hop_s=1.5; for a fused backend "
    "PART.KEY=VALUE, e.g. birdnet.hop_s=1.5."
)
CacheOption = typer.Option(
    None, "--cache-dir", envvar="EARMARK_CACHE_DIR", help="Embedding cache folder (LanceDB)."
)
LayoutOption = typer.Option("auto", "--layout", help="Dataset layout; 'auto' detects it.")
# Names only: importing earmark.learners (scikit-learn) would slow every command's start.
LearnerOption = typer.Option(
    "logreg", "--learner", "-l",
    help="logreg, svm-linear, svm-rbf, knn, mlp, random-forest or prototype "
    "(few-shot), on standardised embeddings where the learner needs it; evaluate also "
    "takes graph (a graph tagger over aiSFX's frozen time-frequency maps).",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def parse_params(pairs: Optional[list[str]]) -> dict[str, Any]:
    """Turn ``["hop_s=1.5", "model=MTT_vgg"]`` into typed keyword arguments."""
    from ..exceptions import ParameterError

    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParameterError(f"expected --backend-param KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def load_data(data: str, layout: str = "auto", *, quiet: bool = False):
    """Resolve the DATA argument to a Manifest and say which layout was detected."""
    from ..datasets import load_dataset, load_demo

    from rich.markup import escape

    # "demo" is the bundled set, whatever the working folder holds; a folder of that
    # name is reached as a path ("./demo").
    if data == "demo":
        manifest = load_demo()
        if not quiet and Path("demo").exists():
            console.print(
                "[dim]demo is the bundled spoken-digit set; for the folder ./demo, "
                "pass ./demo[/]", highlight=False,
            )
    else:
        manifest = load_dataset(data, layout=layout)
    if not quiet:
        console.print(
            f"[bold]{escape(data)}[/]: detected layout [cyan]{manifest.source}[/], "
            f"{len(manifest)} items, {len(manifest.classes)} classes"
            + (", official folds" if manifest.has_folds else "")
            + (", groups" if manifest.has_groups else "")
        )
        for note in getattr(manifest, "detection_notes", []):
            console.print(f"  {escape(note)}", style="dim", highlight=False)
    return manifest


def open_backend(
    name: Optional[str], params: Optional[list[str]], *, quiet: bool = False, cache_dir=None
):
    """Instantiate a backend and say which it is; its licence the first time it is used
    with this cache (``cache_dir``, else ``$EARMARK_CACHE_DIR`` or the default one)."""
    from ..backends import get_backend
    from ..backends.registry import DEFAULT_BACKEND

    backend = get_backend(name or DEFAULT_BACKEND, **parse_params(params))
    backend.require()
    if not quiet:
        console.print(
            f"backend [bold]{backend.name}[/] ({backend.dimension}-d, {backend.sample_rate} Hz)",
            highlight=False,
        )
        if _first_use(backend.name, cache_dir):
            licence = backend.licence
            style = "dim" if licence.commercial_use is True else "yellow"
            console.print(f"  licence: [{style}]{licence.summary()}[/]", highlight=False)
            if licence.attribution:
                console.print(f"  credit: {licence.attribution}", style="dim", highlight=False)
    return backend


def _first_use(backend_name: str, cache_dir) -> bool:
    """True the first time a backend is used with a cache (a marker file in the cache)."""
    from ..store.base import default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    marker = folder / "licences-shown" / backend_name
    try:
        if marker.exists():
            return False
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        return True  # a cache we cannot write: show it every time
    return True


def open_cache(cache_dir: Optional[Path]):
    from ..store import open_store

    return open_store(cache_dir)


def emit_json(payload: Any) -> None:
    """Write ``payload`` as JSON on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def report_failures(failures, *, named_above: bool = False) -> None:
    """Summarise files that could not be used, by name, at the end of a batch.

    ``named_above``: the progress display already named each file with its reason as it
    failed; then one line counts them, so that no file is named twice.
    """
    if not failures:
        return
    if named_above:
        console.print(
            f"[bold yellow]{len(failures)} file(s) skipped[/] (named above)", highlight=False
        )
        return
    from rich.table import Table

    table = Table(title=f"{len(failures)} file(s) skipped", title_style="bold yellow")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for failure in failures:
        table.add_row(str(failure.path), failure.reason)
    console.print(table)


def embed_clips(manifest, backend, store, *, quiet: bool = False):
    """Clip embeddings of a manifest through the cache; failures reported by name.

    Returns
    -------
    X : np.ndarray [shape=(n_ok, dimension)]
    manifest : Manifest
        The items that embedded, in order (``X[i]`` is ``manifest`` item ``i``).
    run : EmbedRun
    """
    from ..exceptions import EarmarkError
    from ..pipeline import clip_embeddings

    X, ok, run = clip_embeddings(manifest, backend, store, progress=not quiet)
    if not quiet:
        report_failures(run.failures, named_above=True)
    if not ok.any():
        raise EarmarkError(f"no file could be embedded ({len(run.failures)} failed)")
    return X, manifest.subset(ok), run


def split_columns(manifest):
    """Folds and groups of a manifest, where every item has one (else None)."""
    folds = manifest.folds if manifest.has_folds else None
    groups = manifest.groups if manifest.has_groups else None
    return folds, groups


def show_progress(*, quiet: bool, json_output: bool) -> bool:
    """Whether to draw progress: not under -q; under --json only on a terminal (stdout
    carries the JSON, stderr the bar), so that a piped or logged run stays clean."""
    return not quiet and (not json_output or console.is_terminal)


@contextlib.contextmanager
def working(description: str, *, quiet: bool):
    """A spinner with the time elapsed, for a step that takes seconds and reports nothing."""
    if quiet:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        progress.add_task(description, total=None)
        yield


def skipped_json(run) -> list[dict]:
    """The files a run could not use, for a ``--json`` payload (as ``embed --json`` lists)."""
    return [{"path": failure.path, "reason": failure.reason} for failure in run.failures]


#: A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A value as CSV text that a spreadsheet shows, never evaluates (``'`` before a
    leading ``=``, ``+``, ``-``, ``@``, tab or carriage return, as OWASP advises).
    Numbers are written as they are, so a negative score stays a number."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def write_csv_atomically(path: Path, header, rows) -> Path:
    """Write a CSV whole or not at all (:func:`earmark.files.atomic_path`); text cells go
    through :func:`csv_cell`."""
    import csv

    from ..files import atomic_path

    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow([csv_cell(value) for value in row])
    return Path(path)


def output_dir(path: Optional[Path]) -> Path:
    target = Path(path) if path is not None else Path("earmark-output")
    target.mkdir(parents=True, exist_ok=True)
    return target
