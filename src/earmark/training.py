"""What every torch-trained part of earmark shares: one import guard, one thread policy.

Four estimators train with torch (the multiple-instance detector, DANN, the prototype
network, the few-shot adapter) and predict in NumPy, so torch is needed to fit only.
They all ask for it through :func:`require_torch`, which says what needs it and how to
install it, and train inside :func:`single_thread`: their batches are small, one thread
wastes least on a shared machine, and results must not depend on the number of cores.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Iterator

from .exceptions import BackendUnavailableError

__all__ = ["require_torch", "import_trainer", "single_thread", "torch_threads"]

INSTALL_HINT = "pip install torch==2.13.0 (pinned: a loose torch pulls CUDA packages)"


def require_torch(what: str):
    """The ``torch`` module, or one clear error naming ``what`` needs it.

    Raises
    ------
    BackendUnavailableError
    """
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError(f"{what} needs PyTorch to train (not to predict): {INSTALL_HINT}") from None
    return torch


def import_trainer(module: str, what: str):
    """Import an estimator's torch training module (``earmark.x._y_torch``) behind the guard."""
    require_torch(what)
    return importlib.import_module(module)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block (the networks of
    :mod:`earmark.networks`, whose convolutions gain from a second core), then restore."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
