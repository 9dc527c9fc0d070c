"""Real clip embeddings for the learner, model, evaluation and curve tests.

MFCC clip embeddings of a fixed FSDD subset (6 speakers x 10 digits x 4 takes = 240
recordings), computed once per test session: the speaker is the group that an honest
split must keep apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = tuple(str(d) for d in range(10))
TAKES = range(4)


@dataclass(frozen=True)
class Embedded:
    X: np.ndarray  # (n, 120) float32
    y: np.ndarray  # digit names, "0".."9"
    speakers: np.ndarray
    paths: tuple[Path, ...]
    identity: dict


def subset_paths(fsdd_dir: Path) -> list[Path]:
    recordings = Path(fsdd_dir) / "recordings"
    return [
        recordings / f"{digit}_{speaker}_{take}.wav"
        for speaker in SPEAKERS
        for digit in DIGITS
        for take in TAKES
    ]


@lru_cache(maxsize=2)
def fsdd_mfcc(fsdd_dir: Path) -> Embedded:
    from earmark.backends import get_backend
    from earmark.embedding import embed_file

    backend = get_backend("mfcc")
    paths = subset_paths(fsdd_dir)
    X = np.stack([embed_file(backend, path).clip for path in paths])
    names = [path.stem.split("_") for path in paths]
    return Embedded(
        X=X,
        y=np.array([digit for digit, _, _ in names]),
        speakers=np.array([speaker for _, speaker, _ in names]),
        paths=tuple(paths),
        identity=backend.identity(),
    )


def one_blas_thread():
    """Fit small models on one BLAS thread.

    The test machines run several jobs on two cores; there, OpenBLAS threads spinning
    for work made a 10-example logistic regression 20 times slower. Results are the
    same either way.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
