"""Broken on purpose: no get_scene_embeddings."""

from .numpy_bands import get_timestamp_embeddings, load_model  # noqa: F401
