"""Where tasks run. Here: :class:`LocalExecutor`, in this process, in order.

An executor takes a task function ``function(backend, task, **shared)`` and a list of
tasks, and yields ``(task, outcome)`` pairs as tasks finish. :class:`LocalExecutor` calls
the function here, with the caller's own backend object (no process start, nothing
pickled: the default, which tests and the demo call thousands of times). The same tasks
run on a Dask cluster through :class:`earmark.distributed.DaskExecutor`, which
:func:`make_executor` imports only when given a client.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

__all__ = ["LocalExecutor", "WorkerLost", "make_executor"]


class WorkerLost:
    """The outcome of a task that killed every worker it ran on."""

    def __init__(self, attempts: int | None):
        self.attempts = attempts

    @property
    def reason(self) -> str:
        times = f" {self.attempts} times" if self.attempts else ""
        return f"a worker died while processing it{times} (crash or out of memory?)"


class LocalExecutor:
    """Run tasks one after another in this process, with the caller's backend object.

    Parameters
    ----------
    backend : Backend
    """

    def __init__(self, backend):
        self.backend = backend

    n_workers_hint = 1

    def prepare(self) -> None:
        """Load the backend: a missing model fails here, once, not per file."""
        self.backend.load()

    def n_workers(self) -> int:
        return 1

    def run(
        self, function: Callable, tasks: Sequence, shared: dict[str, Any] | None = None
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, function(backend, task, **shared))`` for each task, in order."""
        shared = shared or {}
        for task in tasks:
            yield task, function(self.backend, task, **shared)


def make_executor(backend, client=None, **options):
    """A :class:`~earmark.distributed.DaskExecutor` on ``client``, or a
    :class:`LocalExecutor` when it is None (Dask is not imported then)."""
    if client is None:
        return LocalExecutor(backend)
    from ..distributed.executors import DaskExecutor

    return DaskExecutor(client, backend, **options)
