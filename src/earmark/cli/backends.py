"""``earmark backends``: every embedding backend, its licence, size and whether it is installed."""

from __future__ import annotations

import typer

from ._common import JsonOption, console, emit_json


def register(app: typer.Typer) -> None:
    app.command("backends")(backends)


def backend_rows(*, include_test_backends: bool = False) -> list[dict]:
    """One row per registered backend, without importing any ML framework."""
    from ..backends.registry import DEFAULT_BACKEND, registered
    from ..exceptions import EarmarkError

    rows = []
    for spec in registered(include_test_backends=include_test_backends):
        cls = spec.load_class()
        row = {
            "name": spec.name,
            "description": cls.description,
            "default": spec.name == DEFAULT_BACKEND,
            "installed": cls.is_available(),
            "licence": cls.licence.summary(),
            "commercial_use": cls.licence.commercial_use,
            "attribution": cls.licence.attribution,
            "install": cls.install_hint or (f"pip install 'earmark[{cls.extra}]'" if cls.extra else ""),
        }
        try:
            backend = cls()
            row.update(
                dimension=backend.dimension,
                sample_rate=backend.sample_rate,
                window_s=round(backend.window_s, 4),
                hop_s=round(backend.hop_s, 4),
            )
        except (EarmarkError, TypeError) as error:  # e.g. the HEAR adapter needs a module name
            row.update(dimension=None, sample_rate=None, window_s=None, hop_s=None, note=str(error))
        rows.append(row)
    return rows


def backends(json_output: bool = JsonOption) -> None:
    """List embedding backends with licence, dimension, sample rate and install state."""
    rows = backend_rows()
    if json_output:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title="earmark embedding backends")
    for column in ("name", "installed", "dim", "rate (Hz)", "window / hop (s)", "licence"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        installed = "[green]yes[/]" if row["installed"] else f"[red]no[/] - {row['install']}"
        dim = "-" if row["dimension"] is None else str(row["dimension"])
        rate = "-" if row["sample_rate"] is None else str(row["sample_rate"])
        frames = "-" if row["window_s"] is None else f"{row['window_s']} / {row['hop_s']}"
        licence = row["licence"] if row["commercial_use"] is True else f"[yellow]{row['licence']}[/]"
        table.add_row(name, installed, dim, rate, frames, licence)
    console.print(table)
