"""earmark: machine listening with little labelled data."""

from .exceptions import AudioError, EarmarkError, ParameterError

__version__ = "0.1.0"

__all__ = ["AudioError", "EarmarkError", "ParameterError", "__version__"]
