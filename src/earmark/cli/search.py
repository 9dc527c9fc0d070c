"""``earmark search``: the stored clips or segments that sound most like an example."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import BackendOption, BackendParamOption, JsonOption, console, emit_json, parse_params


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def search(
    query_audio: Path = typer.Argument(..., help="An audio file: the example to search by."),
    store_dir: Optional[Path] = typer.Option(
        None, "--in", envvar="EARMARK_CACHE_DIR", show_default=False,
        help="The embedding store to search (a cache folder filled by `earmark embed`); "
        "default: the embedding cache.",
    ),
    backend_name: Optional[str] = BackendOption,
    backend_params: Optional[list[str]] = BackendParamOption,
    k: int = typer.Option(10, "-k", "--top", min=1, help="Number of hits."),
    segments: bool = typer.Option(
        False, "--segments", help="Search frame segments (with their spans), not whole clips."
    ),
    exact: bool = typer.Option(
        False, "--exact", help="Compare with every stored vector instead of using the index."
    ),
    json_output: bool = JsonOption,
) -> None:
    """List the stored clips (or segments) nearest QUERY_AUDIO, by cosine distance.

    Queries are embedded with the backend the store was filled with; with several in
    the store, choose one with --backend.
    """
    from ..exceptions import StoreError
    from ..explore.search import backend_for_store, search_audio
    from ..store import default_cache_dir, open_store

    directory = Path(store_dir) if store_dir is not None else default_cache_dir()
    if not directory.is_dir():
        raise StoreError(
            f"no embedding store at {directory} (expected a folder filled by `earmark embed`)"
        )
    store = open_store(directory)
    params = parse_params(backend_params) if backend_params else None
    backend = backend_for_store(store, backend_name, params)
    backend.require()
    level = "segment" if segments else "clip"
    if not exact and not json_output:
        # Only the first search of a large store trains the index; say why it waits.
        with console.status(f"bringing the {level} vector index of {directory} up to date"):
            store.build_index(backend.cache_key(), level=level)
    hits = search_audio(store, query_audio, backend, k=k, level=level, exact=exact)
    if json_output:
        emit_json({
            "query": str(query_audio),
            "store": str(directory),
            "backend": backend.name,
            "backend_key": backend.cache_key(),
            "level": level,
            "exact": exact,
            "hits": [
                {"rank": rank, "key": hit.key, "path": hit.path, "start_s": hit.start_s,
                 "end_s": hit.end_s, "frame": hit.frame, "distance": hit.distance}
                for rank, hit in enumerate(hits, 1)
            ],
        })  # fmt: skip
        return
    from rich.table import Table

    table = Table(
        title=f"{len(hits)} {level}s nearest {query_audio.name} ({backend.name}, cosine distance)"
    )
    table.add_column("rank", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("span")
    table.add_column("distance", justify="right")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), hit.path, _span(hit.start_s, hit.end_s), f"{hit.distance:.4f}")
    console.print(table)


def _span(start_s: float | None, end_s: float | None) -> str:
    if start_s is None and end_s is None:
        return "whole file"
    start = "start" if start_s is None else f"{start_s:.2f} s"
    end = "end" if end_s is None else f"{end_s:.2f} s"
    return f"{start} - {end}"
