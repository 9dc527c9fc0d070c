"""A HEAR-API module in NumPy: log energies of 64 frequency bands, projected to 48.

Frames of 25 ms every 10 ms at 16 kHz; the scene embedding is the mean of the frame
embeddings. ``load_model(path)`` reads a (64, 48) projection from a ``.npy`` file; by
default it uses a fixed pseudo-random one.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME = 400
HOP = 160
BANDS = 64
SIZE = 48


class Model:
    sample_rate = SAMPLE_RATE
    scene_embedding_size = SIZE
    timestamp_embedding_size = SIZE

    def __init__(self, projection: np.ndarray):
        self.projection = projection


def default_projection() -> np.ndarray:
    return np.random.default_rng(2021).standard_normal((BANDS, SIZE)).astype(np.float32) / 8


def load_model(model_file_path: str = "") -> Model:
    projection = np.load(model_file_path) if model_file_path else default_projection()
    if projection.shape != (BANDS, SIZE):
        raise ValueError(f"expected a ({BANDS}, {SIZE}) projection, got {projection.shape}")
    return Model(projection.astype(np.float32))


def frames(audio: np.ndarray) -> np.ndarray:
    """(n_sounds, n_samples) -> (n_sounds, n_frames, FRAME), last frame zero-padded."""
    n = audio.shape[1]
    count = 1 if n <= FRAME else -(-(n - FRAME) // HOP) + 1
    padded = np.zeros((audio.shape[0], (count - 1) * HOP + FRAME), dtype=np.float32)
    padded[:, :n] = audio
    index = np.arange(count)[:, None] * HOP + np.arange(FRAME)[None, :]
    return padded[:, index]


def frame_embeddings(audio, model: Model) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    power = np.abs(np.fft.rfft(frames(audio) * np.hanning(FRAME), axis=-1)) ** 2
    bands = np.stack([b.sum(axis=-1) for b in np.array_split(power, BANDS, axis=-1)], axis=-1)
    return (np.log10(bands + 1e-8) @ model.projection).astype(np.float32)


def get_timestamp_embeddings(audio, model: Model):
    embeddings = frame_embeddings(audio, model)
    centres_ms = (np.arange(embeddings.shape[1]) * HOP + FRAME / 2) / SAMPLE_RATE * 1000
    timestamps = np.minimum(centres_ms, 1000 * np.asarray(audio).shape[1] / SAMPLE_RATE)
    return embeddings, np.tile(timestamps, (embeddings.shape[0], 1))


def get_scene_embeddings(audio, model: Model) -> np.ndarray:
    return frame_embeddings(audio, model).mean(axis=1)
