"""Kept for code written against earmark 0.1: the model now lives in :mod:`earmark.models`."""

from .models import FORMAT_VERSION, UNKNOWN_LABEL, EarmarkModel, load_model

__all__ = ["EarmarkModel", "FORMAT_VERSION", "UNKNOWN_LABEL", "load_model"]
