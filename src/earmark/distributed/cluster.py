"""Connecting to a Dask cluster, or starting one on this machine.

earmark has no cluster code of its own: :func:`open_client` connects to whatever
scheduler it is given (one started by dask-jobqueue on SLURM, by the Dask Kubernetes
operator, or by hand with ``dask scheduler`` / ``dask worker``; see
``docs/scale-out.md``), or starts a ``distributed.LocalCluster`` of worker processes.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from ..exceptions import EarmarkError, ParameterError

__all__ = ["open_client", "local_cluster"]


def local_cluster(n_workers: int, *, threads_per_worker: int = 1, **options):
    """A ``LocalCluster`` of ``n_workers`` processes, one model thread each.

    Processes, not threads: two models in one Python process contend for its GIL
    between calls. The nanny starts each worker with ``OMP_NUM_THREADS=1`` (and the same
    for MKL and OpenBLAS; Dask's ``distributed.nanny.pre-spawn-environ``), and earmark
    gives each backend one model thread, so N workers on N cores do not oversubscribe.

    Parameters
    ----------
    n_workers : int
    threads_per_worker : int
    **options
        Passed to ``distributed.LocalCluster`` (``memory_limit``, ``dashboard_address``...).

    Returns
    -------
    distributed.LocalCluster
    """
    from distributed import LocalCluster

    if not isinstance(n_workers, int) or n_workers < 1:
        raise ParameterError(f"expected --workers >= 1, got {n_workers!r}")
    options.setdefault("dashboard_address", None)
    options.setdefault("silence_logs", logging.ERROR)
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        **options,
    )


@contextmanager
def open_client(
    address: str | None = None, *, n_workers: int | None = None, timeout_s: float = 30.0
) -> Iterator:
    """A ``distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    address : str, optional
        A scheduler address (``tcp://host:8786``) or the path of a scheduler file
        (``dask scheduler --scheduler-file``, dask-jobqueue, dask-mpi).
    n_workers : int, optional
        Without ``address``: start a local cluster of this many worker processes (default:
        one per core this process may use). With it: wait until that many workers are
        connected.
    timeout_s : float
        How long to wait for the scheduler (and the workers).

    Yields
    ------
    distributed.Client

    Raises
    ------
    EarmarkError
        If the scheduler cannot be reached in time.
    """
    from distributed import Client

    cluster = None
    try:
        if address is None:
            if n_workers is None:
                n_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
                    os.cpu_count() or 1
                )
            cluster = local_cluster(n_workers)
            client = Client(cluster)
        elif os.path.isfile(address):
            client = Client(scheduler_file=address, timeout=timeout_s)
        else:
            client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise EarmarkError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    try:
        if address is not None and n_workers:
            try:
                client.wait_for_workers(n_workers, timeout=timeout_s)
            except TimeoutError:
                raise EarmarkError(
                    f"{len(client.scheduler_info()['workers'])} of {n_workers} workers "
                    f"connected to {address} within {timeout_s:.0f} s"
                ) from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
