"""Messages C libraries print on the process's stderr, given the name of the file.

libmpg123 (inside libsndfile) writes notes such as ``Note: Illegal Audio-MPEG-Header
0xe3ffffff at offset 5222.`` straight to file descriptor 2, with no file name, so a
batch of hundreds of MP3s leaves no way to tell which one they are about.
:func:`attributed` redirects descriptor 2 while one file is decoded and writes the
library's lines back prefixed with that file's name; anything else caught meanwhile (a
progress bar redrawn by another thread) is written back unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["attributed"]

#: Lines libmpg123 writes: "Note: ...", "Warning: ...", "[src/libmpg123/...] error: ...".
_LIBRARY_LINE = re.compile(
    rb"^(?:(?:Note|Warning|Error)\b|\[src/libmpg123[^\]]*\]).*$", re.MULTILINE
)
_lock = threading.RLock()
_depth = 0
_capture = None  # one temporary file per process, emptied after each use


@contextlib.contextmanager
def attributed(path, library: str = "libmpg123"):
    """Within this block, the library's stderr lines are re-printed as ``path: library: line``.

    If the block raises, the library's lines are dropped: the error names the file.
    """
    global _depth, _capture
    with _lock:
        if _depth:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield  # no real descriptor 2 (an embedded interpreter): nothing to redirect
            return
        if _capture is None or _capture.closed:
            _capture = tempfile.TemporaryFile()
        capture = _capture
        capture.seek(0)
        capture.truncate()
        _depth = 1
        try:
            os.dup2(capture.fileno(), 2)
            failed = False
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                _depth = 0
                capture.seek(0)
                caught = capture.read()
                if caught:
                    # A file that fails is named once, by its error; the library's notes
                    # on it would only repeat that.
                    _write_back(caught, str(path), library, keep_library_lines=not failed)
        finally:
            _depth = 0


def _write_back(caught: bytes, path: str, library: str, *, keep_library_lines: bool) -> None:
    others, position = [], 0
    lines = []
    for match in _LIBRARY_LINE.finditer(caught):
        others.append(caught[position : match.start()])
        lines.append(match.group(0).decode(errors="replace").strip())
        position = match.end() + 1
    others.append(caught[position:])
    rest = b"".join(others).strip(b"\n")
    out = getattr(sys.stderr, "buffer", None)
    try:
        if rest:
            if out is not None:
                out.write(rest + b"\n")
            else:
                sys.stderr.write(rest.decode(errors="replace") + "\n")
        for line in lines if keep_library_lines else []:
            sys.stderr.write(f"{path}: {library}: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
