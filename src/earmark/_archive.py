"""Model files as small zip archives: written whole or not at all, read with one clear error.

Both file formats earmark writes (:class:`~earmark.model.EarmarkModel` and the prototype
network's) are a zip of a JSON metadata member and one payload member. This module holds
what they share: an atomic write (a temporary file beside the target, renamed into place,
so a reader never sees half a file) and a read that turns every way a file can be
damaged into one :class:`~earmark.exceptions.ModelFileError` naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

from .exceptions import ModelFileError

__all__ = ["write_members", "read_members"]


def write_members(path, members: Mapping[str, bytes | str]) -> Path:
    """Write ``members`` (name -> content) as a deflated zip at ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        # mkstemp makes the file private (0600); a model is an ordinary document.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_members(path, names, *, what: str, json_names=()) -> dict:
    """Read the members ``names`` of the zip at ``path``.

    Parameters
    ----------
    what : str
        The kind of file, for messages: ``"an earmark model file"``.
    json_names : iterable of str
        Members returned parsed from JSON rather than as bytes.

    Raises
    ------
    ModelFileError
        If the file lacks a member or is damaged (bad zip, CRC mismatch, truncation,
        bad JSON): one message naming the file.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            missing = set(names) - set(archive.namelist())
            if missing:
                raise ModelFileError(f"{path}: not {what} (missing {', '.join(sorted(missing))})")
            members = {name: archive.read(name) for name in names}
            for name in json_names:
                members[name] = json.loads(members[name])
            return members
    except ModelFileError:
        raise
    except Exception as error:
        # BadZipFile, CRC mismatches, zlib.error, truncation, bad JSON: all one story.
        raise ModelFileError(
            f"{path}: damaged or not {what} ({type(error).__name__}: {error})"
        ) from None
