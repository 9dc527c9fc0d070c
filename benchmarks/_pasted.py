"""Soundscapes for the detection tests: real clips pasted into quiet noise at known samples.

The clips are real recordings (Speech Commands words, Philharmonia notes); only the
background is generated (white noise at -50 dBFS RMS), so that the truth is known to
the sample. Files are written block by block, so a long one never sits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

NOISE_RMS = 0.003
#: Training clips per class: every 10th word, every 16th note (fixed picks).
N_TRAIN = 24


@dataclass(frozen=True)
class Placement:
    label: str
    onset_s: float  # where the clip's first sample lands (sample-exact at the file's rate)
    clip: Path


def noise(n: int, seed: int) -> np.ndarray:
    return (NOISE_RMS * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def clips(speech_commands_dir: Path, philharmonia_dir: Path):
    """``(train, test)`` lists of ``(label, path)``; no file is in both."""
    words = sorted(Path(speech_commands_dir).glob("*/*.wav"))
    notes = sorted(Path(philharmonia_dir).glob("*/*.mp3"))
    train = [("speech", p) for p in words[::10][:N_TRAIN]] + [
        ("music", p) for p in notes[::16][:N_TRAIN]
    ]
    test = [("speech", p) for p in words[5::10][:N_TRAIN]] + [
        ("music", p) for p in notes[7::16][:N_TRAIN]
    ]
    return train, test


def load_clip(path: Path, sr: int, max_s: float = 2.0) -> np.ndarray:
    from earmark import audio

    y, _ = audio.load(path, sr=sr)
    return y[: int(max_s * sr)]


@lru_cache(maxsize=2)
def trained_model(speech_commands_dir: Path, philharmonia_dir: Path):
    """An EarmarkModel (mfcc, logistic regression): speech, music or background."""
    from earmark.backends import get_backend
    from earmark.embedding import embed_signal
    from earmark.models import EarmarkModel

    backend = get_backend("mfcc")
    sr = backend.sample_rate
    train, _ = clips(speech_commands_dir, philharmonia_dir)
    X, y = [], []
    for index, (label, path) in enumerate(train):
        clip = load_clip(path, sr)
        X.append(embed_signal(backend, clip + noise(clip.size, seed=index), sr).clip)
        y.append(label)
    for index in range(N_TRAIN):
        X.append(embed_signal(backend, noise(sr, seed=1000 + index), sr).clip)
        y.append("background")
    return EarmarkModel.train(np.stack(X), y, backend=backend)


def write_soundscape(
    path: Path,
    *,
    sr: int,
    duration_s: float,
    placements: list[Placement],
    block_s: float = 60.0,
    seed: int = 7,
    subtype: str = "PCM_16",
) -> list[Placement]:
    """Write noise with each clip added at ``round(onset_s * sr)``; returns the placements
    with onsets snapped to that sample."""
    total = int(round(duration_s * sr))
    pasted = [(int(round(p.onset_s * sr)), load_clip(p.clip, sr), p) for p in placements]
    block = int(block_s * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype=subtype) as out:
        for index, start in enumerate(range(0, total, block)):
            y = noise(min(block, total - start), seed=seed + index)
            for at, clip, _ in pasted:
                lo, hi = max(at, start), min(at + clip.size, start + y.size)
                if lo < hi:
                    y[lo - start : hi - start] += clip[lo - at : hi - at]
            out.write(np.clip(y, -1, 1))
    return [Placement(p.label, at / sr, p.clip) for at, _, p in pasted]
