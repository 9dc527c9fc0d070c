"""Broken on purpose: the model gives its sample rate as a string."""

from . import numpy_bands
from .numpy_bands import get_scene_embeddings, get_timestamp_embeddings  # noqa: F401


def load_model(model_file_path: str = ""):
    model = numpy_bands.load_model(model_file_path)
    model.sample_rate = "16k"
    return model
