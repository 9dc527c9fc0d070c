"""Where tasks run on a Dask cluster: the same task functions as in this process.

An executor takes a task function ``function(backend, task, **shared)`` and a list of
tasks, and yields ``(task, outcome)`` pairs as tasks finish; the in-process one is
:class:`earmark.pipeline.LocalExecutor`. :class:`DaskExecutor` submits the same function to a ``distributed.Client``: each worker
builds the backend from a :class:`~earmark.distributed.recipe.BackendRecipe` once
(:class:`~earmark.distributed.worker.BackendPlugin`), large shared arguments (a trained
model) are scattered to every worker once, and at most ``max_in_flight`` tasks wait on
the scheduler at a time, so a million-file archive does not put a million tasks on it at
once.

A worker that dies (killed, out of memory, node lost) has its tasks rerun on another
worker by the scheduler; a task whose workers died ``distributed.scheduler.allowed-failures``
times (3 by default) comes back as a failure of its file, "a worker died while processing
it", and the run goes on.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Callable, Iterator, Sequence

__all__ = ["DaskExecutor"]


from ..pipeline.executors import WorkerLost


def _on_worker(function, recipe, task, shared):
    """Run ``function`` on a worker with that process's loaded backend of ``recipe``."""
    from .recipe import borrowed_backend

    with borrowed_backend(recipe) as backend:
        return function(backend, task, **shared)


class DaskExecutor:
    """Run tasks on a Dask cluster through ``client``.

    Parameters
    ----------
    client : distributed.Client
    backend : Backend
        Rebuilt on each worker from its recipe, with ``threads`` model threads.
    threads : int
        Model threads per task; keep 1 with one worker process per core.
    max_in_flight : int, optional
        Tasks submitted and not yet collected; default 4 per worker thread, at least 64.
    """

    def __init__(self, client, backend, *, threads: int = 1, max_in_flight: int | None = None):
        from .recipe import BackendRecipe

        self.client = client
        self.backend = backend
        self.recipe = BackendRecipe.from_backend(backend, threads=threads)
        self.max_in_flight = max_in_flight
        self._prepared = False
        self._workers_seen_at = 0.0
        self._workers = 0

    def prepare(self) -> None:
        """Register the plugin that loads the backend on every worker, present and future.

        Raises
        ------
        BackendUnavailableError
            If a worker cannot build or load the backend (or builds another one).
        """
        if self._prepared:
            return
        from .worker import BackendPlugin

        plugin = BackendPlugin(self.recipe)
        self.client.register_plugin(plugin, name=plugin.name)
        self._prepared = True

    def n_workers(self) -> int:
        """Workers connected now (refreshed at most once a second)."""
        now = time.monotonic()
        if now - self._workers_seen_at > 1.0:
            info = self.client.scheduler_info(n_workers=-1)
            self._workers = len(info.get("workers", {}))
            self._workers_seen_at = now
        return self._workers

    def _window(self) -> int:
        if self.max_in_flight is not None:
            return max(1, int(self.max_in_flight))
        threads = sum(self.client.nthreads().values()) or 1
        return max(64, 4 * threads)

    def run(
        self, function: Callable, tasks: Sequence, shared: dict[str, Any] | None = None
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, outcome)`` as tasks finish, in no particular order.

        A task whose workers kept dying yields a :class:`WorkerLost` outcome; any other
        exception raised by a task ends the run (it would fail every task alike).
        Pending tasks are cancelled if the caller stops early.
        """
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        self.prepare()
        shared = dict(shared or {})
        if shared:
            # One copy per worker, not one per task: a trained model can be megabytes.
            [shared_future] = self.client.scatter([shared], broadcast=True, hash=False)
        else:
            shared_future = shared
        run_id = uuid.uuid4().hex[:8]
        pending_tasks = iter(enumerate(tasks))
        task_of: dict[Any, Any] = {}

        def submit(count: int) -> list:
            futures = []
            for index, task in itertools.islice(pending_tasks, count):
                name = getattr(task, "name", None) or str(index)
                future = self.client.submit(
                    _on_worker, function, self.recipe, task, shared_future,
                    key=f"earmark-{function.__name__}-{run_id}-{index}-{name}",
                    pure=False, retries=0,
                )
                task_of[future.key] = task
                futures.append(future)
            return futures

        window = self._window()
        # with_results: results are gathered in the background as tasks finish, not
        # fetched one round trip at a time here.
        completed = as_completed(submit(window), with_results=True, raise_errors=False)
        try:
            for future, result in completed:
                task = task_of.pop(future.key)
                if future.status == "error":
                    error = future.exception()
                    if isinstance(error, KilledWorker):
                        outcome = WorkerLost(_allowed_failures())
                    else:
                        raise error
                elif future.cancelled():
                    from ..exceptions import EarmarkError

                    raise EarmarkError(f"task {future.key} was cancelled on the cluster")
                else:
                    outcome = result
                del future, result
                # Refill before handing the outcome over, so workers never wait on us.
                for new in submit(window - completed.count()):
                    completed.add(new)
                yield task, outcome
        finally:
            leftover = list(completed.futures)
            if leftover:
                self.client.cancel(leftover)
            completed.clear()
            task_of.clear()


def _allowed_failures() -> int | None:
    import dask

    try:
        return int(dask.config.get("distributed.scheduler.allowed-failures"))
    except (KeyError, TypeError, ValueError):
        return None
