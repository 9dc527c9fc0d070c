"""The ``earmark`` command: the root only wires commands; each lives in its own module.

Commands are thin over the public Python API, import heavy modules inside the function,
and end user errors with one clean message instead of a traceback.
"""

from __future__ import annotations

import sys

import typer

from . import (
    adapt, anomaly, backends, cluster, curve, demo, detect, embed, evaluate, evaluate_events,
    explain, fewshot, predict,
    protonet, search, serve, soundscapes, train,
)

app = typer.Typer(
    name="earmark",
    help="Machine listening with little labelled data: embed, train, evaluate, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The order of `earmark --help`: the main job first, then exploring and understanding.
for module in (
    demo, embed, train, predict, evaluate, curve, fewshot, soundscapes, detect, evaluate_events,
    adapt, anomaly,
    cluster, search, serve, explain, protonet, backends,
):
    module.register(app)


def main() -> None:
    """Console entry point: run the app, turning earmark's errors into one line."""
    from ..exceptions import EarmarkError
    from ._common import error_console

    try:
        # Non-standalone mode returns the exit code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int):
            sys.exit(code)
    except EarmarkError as error:
        from rich.markup import escape

        # One line whatever the terminal width, and brackets in paths are not markup.
        error_console.print(
            f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        error_console.print("[yellow]interrupted; finished work is kept in the cache[/]")
        sys.exit(130)
    except Exception as error:  # click's own usage errors arrive here in non-standalone mode
        if isinstance(error, _click_exceptions().ClickException):
            error.show()
            sys.exit(error.exit_code)
        if isinstance(error, typer.Abort):
            sys.exit(1)
        raise


def _click_exceptions():
    """Click's exceptions: typer >= 0.20 vendors click, older typer depends on it."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions
