"""Where a prototype network's encoder starts: from scratch, or from a pretrained network.

``"log-mel"``: the network learns its whole encoder from decibel log-mel patches (two
3x3 convolutions with 2x2 pooling), as APNet does (Zinemanas et al. 2021). With a few
hundred clips that encoder learns little: 53.5 % on Philharmonia-mini, where a linear
probe on pretrained embeddings reaches 80-87 %.

``"aisfx"``: the encoder starts with the frozen convolutions of the aiSFX network
(:class:`earmark.backends.aisfx.AisfxBackend`), whose last block maps a 100-frame patch
of its log-mel to 512 channels x 12 time steps x 12 band groups, before any pooling, so
the prototype layer still compares time-frequency structure. Only a 1x1 convolution
down to a few channels and a 3x3 one after it are learned, then prototypes and head.
The frozen part is computed once per training patch, so training stays CPU-quick.
On Philharmonia-mini (5 group folds, ``benchmarks/protonet.py``) the aisfx encoder
reaches 79.2 % (80.6 % with one prototype per class) where the log-mel one reaches about
54 %; logistic regression on aiSFX's pooled clip embeddings reaches 87.4 %. Tried and
not kept: more latent channels (32: 76 %), pooling the latent over time (4 steps: 81.6,
all 12: 79.6, against 83.4 % unpooled in the same trial), input channel dropout and
weight decay (no gain), the decoder loss (72 % against 76 %).
(Frame embeddings such as BirdNET's are already pooled over frequency and time, which
is why aiSFX's maps are the pretrained start used here.)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from ..exceptions import ParameterError

__all__ = ["ENCODERS", "check_encoder", "frozen_maps", "patch_config"]

#: Encoder names, each with the spectrogram its patches are cut as.
ENCODERS = {"log-mel": "db", "aisfx": "aisfx"}


def check_encoder(name: str) -> str:
    if name not in ENCODERS:
        raise ParameterError(f"expected encoder one of {', '.join(map(repr, ENCODERS))}, got {name!r}")
    return name


def patch_config(encoder: str, **kwargs):
    """The default :class:`~earmark.interpret.features.PatchConfig` for an encoder."""
    from .features import PatchConfig

    check_encoder(encoder)
    return PatchConfig.aisfx(**kwargs) if encoder == "aisfx" else PatchConfig(**kwargs)


@lru_cache(maxsize=1)
def aisfx_backend():
    """One loaded aiSFX backend per process (loading checks the checkpoint's hash)."""
    from ..backends import get_backend

    backend = get_backend("aisfx")
    backend.load()
    return backend


def frozen_maps(encoder: str, X: np.ndarray) -> np.ndarray:
    """The frozen start of the encoder: patches to the maps its learned layers read.

    Parameters
    ----------
    encoder : str
    X : np.ndarray [shape=(n, frames, mels), dtype=float32]

    Returns
    -------
    maps : np.ndarray [shape=(n, channels, height, width), dtype=float32]
        ``X[:, None]`` for ``"log-mel"``; aiSFX's last convolution block (512, 12, 12)
        for ``"aisfx"``.
    """
    check_encoder(encoder)
    if encoder == "log-mel":
        return X[:, None]
    X = np.ascontiguousarray(X, dtype=np.float32)
    # Fitting, refining and scoring the same patches ask for the same maps several
    # times (refine: encode, retrain, score before and after); the maps of the last
    # few inputs are kept, keyed by content, while they stay small.
    key = (encoder, X.shape, hashlib.blake2b(X.tobytes(), digest_size=16).hexdigest())
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key]
    maps = aisfx_backend().feature_maps(X)
    maps.setflags(write=False)
    if maps.nbytes <= _RECENT_BYTES:
        _RECENT[key] = maps
        while sum(m.nbytes for m in _RECENT.values()) > _RECENT_BYTES:
            _RECENT.popitem(last=False)
    return maps


#: Frozen maps of recent inputs (see :func:`frozen_maps`), at most this many bytes.
_RECENT: OrderedDict = OrderedDict()
_RECENT_BYTES = 512 * 2**20
