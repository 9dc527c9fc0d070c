"""Writing files whole or not at all, and values JSON can hold: the one copy of each.

Every file earmark writes for a user (model files, predictions, events, pages) goes
through :func:`atomic_write`: a temporary file beside the target, renamed into place, so
a reader never sees half a file and an interrupted run leaves the old file intact.
:func:`jsonable` turns NumPy scalars and arrays (and mappings or sequences of them) into
plain Python values, so every JSON earmark writes reads back the same.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_write", "atomic_path", "jsonable"]


@contextmanager
def atomic_path(path, *, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto it when the block ends without error.

    The temporary name is short (a few characters of the target's name), so a target
    whose own name is near the file system's limit still gets one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as temporary:
    ...     _ = temporary.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:16]}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file private (0600); what earmark writes is an ordinary document.
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write(path, content: bytes | str, *, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` atomically (see :func:`atomic_path`).

    Returns
    -------
    Path
    """
    data = content.encode(encoding) if isinstance(content, str) else content
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays replaced by Python ones, recursively.

    Mapping keys become strings; tuples become lists; NaN stays a float (JSON writers
    decide how to spell it).

    Examples
    --------
    >>> jsonable({"n": np.int64(3), "x": np.array([0.5, 1.0]), 1: (np.str_("a"),)})
    {'n': 3, 'x': [0.5, 1.0], '1': ['a']}
    """
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
