"""The worker plugin that gives each Dask worker its backend, loaded once.

Registered by :class:`~earmark.distributed.executors.DaskExecutor`; the scheduler also
hands it to every worker that joins later (a replacement for a lost one, a new node of an
adaptive cluster), so no task waits for a model load it could have been spared.
"""

from __future__ import annotations

from distributed import WorkerPlugin

from .recipe import BackendRecipe, preload

__all__ = ["BackendPlugin"]


class BackendPlugin(WorkerPlugin):
    """Build and load the backend of ``recipe`` into the worker process's pool.

    Parameters
    ----------
    recipe : BackendRecipe
    """

    idempotent = True

    def __init__(self, recipe: BackendRecipe):
        self.recipe = recipe
        self.name = f"earmark-backend-{recipe.token}"

    async def setup(self, worker) -> None:
        import asyncio

        # Off the event loop: a model load takes seconds, and a worker that misses its
        # heartbeats meanwhile would be taken for dead. Raises BackendUnavailableError on
        # a worker that lacks the model or builds another one; register_plugin then
        # fails with that message on the client.
        await asyncio.get_running_loop().run_in_executor(None, preload, self.recipe)
