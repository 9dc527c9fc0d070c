"""What C libraries print on the process's stderr: named, or dropped when it is noise.

libmpg123 (inside libsndfile) writes notes such as ``Note: Illegal Audio-MPEG-Header
0xe3ffffff at offset 5222.`` straight to file descriptor 2, with no file name, so a
batch of hundreds of MP3s leaves no way to tell which one they are about.
:func:`attributed` redirects descriptor 2 while one file is decoded and writes the
library's lines back prefixed with that file's name. LiteRT prints ``INFO: Created
TensorFlow Lite XNNPACK delegate for CPU.`` when a model first runs, on every command;
:func:`without_noise` drops such lines. Anything else caught meanwhile (a progress bar
redrawn by another thread) is written back unchanged.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["attributed", "without_noise", "NOISE"]

#: Lines libmpg123 writes: "Note: ...", "Warning: ...", "[src/libmpg123/...] error: ...".
_LIBRARY_LINE = re.compile(
    rb"^(?:(?:Note|Warning|Error)\b|\[src/libmpg123[^\]]*\]).*$", re.MULTILINE
)
#: Lines that say nothing to a user, printed by the ML runtimes the backends use.
NOISE = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$", re.MULTILINE)
_lock = threading.RLock()
_depth = 0
_capture = None  # one temporary file per process, emptied after each use


@contextlib.contextmanager
def _redirected(handle_caught):
    """Send descriptor 2 to a file within the block; then ``handle_caught(bytes, failed)``.

    Nested uses (one thread) share the outer redirection; other threads wait.
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
            atexit.register(_capture.close)
        capture = _capture
        capture.seek(0)
        capture.truncate()
        _depth = 1
        failed = False
        try:
            os.dup2(capture.fileno(), 2)
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
                handle_caught(caught, failed)


@contextlib.contextmanager
def attributed(path, library: str = "libmpg123"):
    """Within this block, the library's stderr lines are re-printed as ``path: library: line``.

    If the block raises, the library's lines are dropped: the error names the file.
    """

    def write_back(caught: bytes, failed: bool) -> None:
        lines = [m.group(0).decode(errors="replace").strip() for m in _LIBRARY_LINE.finditer(caught)]
        _write(_LIBRARY_LINE.sub(b"", caught))
        if not failed:
            _write("".join(f"{path}: {library}: {line}\n" for line in lines))

    with _redirected(write_back):
        yield


@contextlib.contextmanager
def without_noise():
    """Within this block, lines matching :data:`NOISE` on descriptor 2 are dropped."""
    with _redirected(lambda caught, failed: _write(NOISE.sub(b"", caught))):
        yield


def _write(data) -> None:
    if isinstance(data, bytes):
        data = re.sub(rb"\n{2,}", b"\n", data).lstrip(b"\n")
        if not data:
            return
        data = data.decode(errors="replace")
    if not data:
        return
    try:
        sys.stderr.write(data)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
