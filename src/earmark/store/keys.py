"""Cache keys: what makes two embeddings the same embedding.

An embedding is fully determined by the bytes of the audio, the backend configuration
(name, version, weights hash, parameters: :meth:`Backend.cache_key`) and the span of the
file that was embedded. The key hashes exactly those, so a renamed or copied file hits
the cache, and a changed file, model or parameter misses it.
"""

from __future__ import annotations

import hashlib
import os

from ..exceptions import AudioError, ParameterError

__all__ = [
    "embedding_key", "file_signature", "hash_file_content", "span_text", "stat_signature",
]

_READ_BYTES = 1 << 20
#: Bytes read from each end of a file to check a memoised hash.
SAMPLE_BYTES = 1 << 16


def hash_file_content(path) -> str:
    """SHA-256 of a file's bytes, streamed in 1 MiB chunks.

    Raises
    ------
    AudioError
        If the file is missing, is a folder, or cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioError(path, "is a folder, not an audio file") from None
    except OSError as error:
        raise AudioError(path, f"cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


def span_text(start_s: float | None, end_s: float | None) -> str:
    """The span as it enters a key: microseconds, so 0.1 + 0.2 and 0.3 agree."""

    def one(value: float | None, name: str) -> str:
        if value is None:
            return "-"
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise ParameterError(f"expected {name} >= 0 seconds or None, got {value}")
        return str(round(value * 1_000_000))

    return f"{one(start_s, 'start_s')}:{one(end_s, 'end_s')}"


def embedding_key(
    content_sha256: str,
    backend,
    start_s: float | None = None,
    end_s: float | None = None,
) -> str:
    """Key of the embedding of a file's content (or a span of it) by one backend.

    Parameters
    ----------
    content_sha256 : str
        SHA-256 of the file's bytes (:meth:`EmbeddingStore.content_hash`).
    backend : Backend or str
        The backend, or its :meth:`~earmark.backends.base.Backend.cache_key`.
    start_s, end_s : float, optional
        The embedded span in seconds; ``None`` for the start or end of the file.

    Returns
    -------
    key : str
        32 hexadecimal characters.

    Examples
    --------
    >>> embedding_key("0" * 64, "abcd", 0.1 + 0.2, None) == embedding_key("0" * 64, "abcd", 0.3)
    True
    """
    backend_key = backend if isinstance(backend, str) else backend.cache_key()
    if not content_sha256 or not backend_key:
        raise ParameterError("expected a content hash and a backend key, got an empty one")
    payload = f"earmark-embedding-v1|{content_sha256}|{backend_key}|{span_text(start_s, end_s)}"
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def stat_signature(path) -> tuple[str, int, int]:
    """(absolute path, size, mtime in ns): whether a file changed while it was read."""
    absolute = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(absolute)
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except OSError as error:
        raise AudioError(path, f"cannot be read ({error.strerror or error})") from None
    return absolute, int(stat.st_size), int(stat.st_mtime_ns)


def file_signature(path) -> tuple[str, str]:
    """(absolute path, signature): what the file-hash memo checks before it trusts a hash.

    The signature joins the size, the modification and status-change times (ns), the
    device and inode, and a hash of the first and last 64 KiB. Rewriting a file with
    other bytes of the same size and setting its modification time back changes the
    status-change time (which only the kernel sets) and, unless the rewrite kept both
    ends, the sampled hash; a copy elsewhere has another inode.

    Raises
    ------
    AudioError
        If the file is missing or cannot be read.
    """
    absolute = os.path.abspath(os.fspath(path))
    try:
        with open(absolute, "rb") as handle:
            stat = os.fstat(handle.fileno())
            sample = hashlib.blake2b(handle.read(SAMPLE_BYTES), digest_size=16)
            if stat.st_size > SAMPLE_BYTES:
                handle.seek(max(SAMPLE_BYTES, stat.st_size - SAMPLE_BYTES))
                sample.update(handle.read(SAMPLE_BYTES))
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioError(path, "is a folder, not an audio file") from None
    except OSError as error:
        raise AudioError(path, f"cannot be read ({error.strerror or error})") from None
    signature = (
        f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_dev}:{stat.st_ino}:"
        f"{sample.hexdigest()}"
    )
    return absolute, signature
