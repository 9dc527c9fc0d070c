"""The ``numpy_bands`` model written the way most HEAR modules are: a ``torch.nn.Module``
whose functions accept only ``torch.Tensor`` audio and return tensors."""

from __future__ import annotations

import numpy as np
import torch

from . import numpy_bands


class Model(torch.nn.Module):
    sample_rate = numpy_bands.SAMPLE_RATE
    scene_embedding_size = numpy_bands.SIZE
    timestamp_embedding_size = numpy_bands.SIZE

    def __init__(self, projection: np.ndarray):
        super().__init__()
        self.register_buffer("projection", torch.from_numpy(projection))
        self.register_buffer("window", torch.from_numpy(np.hanning(numpy_bands.FRAME)).float())

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frame, hop, n = numpy_bands.FRAME, numpy_bands.HOP, audio.shape[1]
        count = 1 if n <= frame else -(-(n - frame) // hop) + 1
        audio = torch.nn.functional.pad(audio, (0, (count - 1) * hop + frame - n))
        frames = audio.unfold(1, frame, hop) * self.window
        power = torch.fft.rfft(frames, dim=-1).abs() ** 2
        bands = torch.stack(
            [b.sum(dim=-1) for b in torch.tensor_split(power, numpy_bands.BANDS, dim=-1)], dim=-1
        )
        return torch.log10(bands + 1e-8) @ self.projection


def load_model(model_file_path: str = "") -> Model:
    return Model(numpy_bands.load_model(model_file_path).projection)


def _check(audio) -> None:
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"expected audio as a torch.Tensor, got {type(audio).__name__}")


def get_timestamp_embeddings(audio, model: Model):
    _check(audio)
    embeddings = model(audio)
    hop_ms = 1000 * numpy_bands.HOP / numpy_bands.SAMPLE_RATE
    centres = torch.arange(embeddings.shape[1]) * hop_ms + 12.5
    timestamps = centres.clamp(max=1000 * audio.shape[1] / numpy_bands.SAMPLE_RATE)
    return embeddings, timestamps.expand(embeddings.shape[0], -1)


def get_scene_embeddings(audio, model: Model) -> torch.Tensor:
    _check(audio)
    return model(audio).mean(dim=1)
