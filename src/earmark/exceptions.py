"""One exception tree for earmark.

Every error earmark raises on purpose derives from :class:`EarmarkError`, so a caller
(or the CLI) can catch one type and show one clean message. Parameter errors also
derive from :class:`ValueError`, as in scikit-learn and librosa.
"""

from __future__ import annotations

__all__ = [
    "EarmarkError",
    "ParameterError",
    "TooFewExamplesError",
    "AudioError",
    "ManifestError",
    "LayoutError",
    "ManifestFormatError",
    "NoUsableItemsError",
    "NotReadableBySndfile",
    "NotFound",
    "UnsupportedMediaType",
    "PayloadTooLarge",
    "BackendError",
    "BackendUnavailableError",
    "StoreError",
    "ModelFileError",
]


class EarmarkError(Exception):
    """Root of every error earmark raises on purpose."""


class ParameterError(EarmarkError, ValueError):
    """A parameter has a value earmark cannot use; the message says what was expected."""


class TooFewExamplesError(ParameterError):
    """Too few labelled examples of some class for what was asked (a network needs one to
    train on and one to decide when to stop); the message names the class and the count."""


class AudioError(EarmarkError):
    """A file cannot be used as audio: missing, empty, truncated, not audio, or non-finite.

    Attributes
    ----------
    path : str
        The file at fault, so batch commands can report it by name.
    reason : str
        What is wrong with it, in words.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotReadableBySndfile(AudioError):
    """libsndfile refused the file; FFmpeg (PyAV) may still read it."""


class NoUsableItemsError(EarmarkError):
    """Not one item of a batch could be used.

    Attributes
    ----------
    failures : list of (str, str)
        ``(path, reason)`` of each item that failed, so a caller can report every one.
    """

    def __init__(self, message: str, failures):
        self.failures = list(failures)
        super().__init__(message)


class ManifestError(EarmarkError):
    """A dataset folder or manifest file cannot be read as a manifest."""


class ManifestFormatError(ManifestError, ValueError):
    """A table or CSV lacks the columns or value types a manifest needs."""


class LayoutError(ManifestError):
    """A path's dataset layout is unrecognised or ambiguous.

    Attributes
    ----------
    candidates : tuple of str
        The layouts that matched (two or more when ambiguous, none when unrecognised).
    """

    def __init__(self, message: str, *, candidates=()):
        self.candidates = tuple(candidates)
        super().__init__(message)


class NotFound(EarmarkError):
    """A key or file the labelling server will not serve (HTTP 404)."""


class UnsupportedMediaType(EarmarkError):
    """A request body of a type the labelling server does not take (HTTP 415)."""


class PayloadTooLarge(EarmarkError):
    """A request body larger than the labelling server takes (HTTP 413)."""


class BackendError(EarmarkError):
    """An embedding backend failed or broke its declared contract."""


class BackendUnavailableError(BackendError):
    """A backend is registered but its package or weights are not installed."""


class StoreError(EarmarkError):
    """The embedding store cannot be opened, read or written."""


class ModelFileError(EarmarkError):
    """A saved model file is missing, damaged, or holds something we will not load."""
