"""The --cluster / --workers options of the commands that scale out (embed, detect)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional

import typer

ClusterOption = typer.Option(
    None, "--cluster", envvar="EARMARK_DASK_SCHEDULER",
    help="Run on this Dask scheduler (tcp://host:8786, or a scheduler file); "
    "see docs/scale-out.md for SLURM and Kubernetes.",
)
WorkersOption = typer.Option(
    None, "--workers", min=1,
    help="Without --cluster: run on a local Dask cluster of N worker processes. With it: "
    "wait for N workers first.",
)


@contextmanager
def cluster_client(address: Optional[str], workers: Optional[int], *, quiet: bool) -> Iterator:
    """A Dask client when --cluster or --workers is given, else None (run in-process)."""
    if address is None and workers is None:
        with nullcontext() as nothing:
            yield nothing
        return
    from ..distributed import open_client
    from ._common import console

    with open_client(address, n_workers=workers) as client:
        if not quiet:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            where = address or "a local cluster"
            console.print(f"running on {where}: {n} workers", highlight=False)
        yield client
