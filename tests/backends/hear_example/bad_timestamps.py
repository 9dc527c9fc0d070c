"""Broken on purpose: one timestamp more than there are embeddings."""

import numpy as np

from .numpy_bands import get_scene_embeddings, load_model  # noqa: F401
from .numpy_bands import get_timestamp_embeddings as _timestamps


def get_timestamp_embeddings(audio, model):
    embeddings, timestamps = _timestamps(audio, model)
    return embeddings, np.concatenate([timestamps, timestamps[:, -1:] + 10], axis=1)
