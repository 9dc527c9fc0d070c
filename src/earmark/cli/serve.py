"""``earmark serve``: the labelling loop in a browser, over an embedding store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import BackendParamOption, console


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    store_dir: Path = typer.Argument(
        ..., help="The embedding store (LanceDB folder) whose clips to label, e.g. "
        "~/.cache/earmark after `earmark embed`.", show_default=False,
    ),
    backend_name: Optional[str] = typer.Option(
        None, "--backend", "-b",
        help="Work on the clips this backend embedded; needed when the store holds several.",
    ),
    backend_params: Optional[list[str]] = BackendParamOption,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; the default is this machine only."
    ),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    model_path: Optional[Path] = typer.Option(
        None, "--model", "-m",
        help="A model file of any kind (from `earmark train`): each clip shows what it predicts.",
    ),
) -> None:
    """Search by example, listen, label, train, and label the most uncertain clips next.

    Labels are written into STORE_DIR as they are made, so nothing is lost when the
    server stops. With --model, every whole-file clip listed also shows the model's label
    and score (the same predictions as `earmark predict`), to check or correct.
    """
    from ..exceptions import ParameterError
    from ..explore.app import serve as run_server
    from ..models import load_model
    from ..store import open_store
    from ._common import open_backend

    if not store_dir.is_dir():
        raise ParameterError(f"{store_dir}: no such store folder (fill one with `earmark embed`)")
    store = open_store(store_dir)
    backend = open_backend(backend_name, backend_params) if backend_name else None
    model = load_model(model_path) if model_path is not None else None

    def ready(session) -> None:
        where = f"[{host}]" if ":" in host else host
        console.print(
            f"{len(session.collection())} clips of backend {session.backend_key}; "
            f"labels kept in {store_dir}",
            highlight=False,
        )
        if model is not None:
            console.print(f"showing what {model_path} ({model.kind}, {len(model.classes_)} "
                          "classes) predicts for each clip", highlight=False)
        console.print(f"open [bold]http://{where}:{port}/[/] (Ctrl+C stops)", highlight=False)

    run_server(store, backend=backend, host=host, port=port, on_ready=ready, model=model)
