"""Real multi-label items: two Philharmonia recordings of different instruments, mixed.

The first second of each recording, scaled to equal RMS, summed, peak-normalised (so
loudness does not tell a mixture from a single recording), and embedded with the MFCC
backend. Every recording is used once: support and query never share one, and no two
support items do either (leave-one-out calibration would be flattered otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Three woodwinds, two brass, one bowed string: the taxonomy has three families.
INSTRUMENTS = ("clarinet", "flute", "oboe", "french_horn", "trombone", "cello")
SUPPORT_SINGLES = 2  # recordings per instrument heard alone in the support set
SUPPORT_MIXED = 4  # recordings per instrument mixed with another in the support set
QUERY_MIXED = 8  # recordings per instrument in the query mixtures
WINDOW_S = 1.0


@dataclass(frozen=True)
class Mixtures:
    X_support: np.ndarray  # (n_support, 120)
    Y_support: list  # label tuples
    X_query: np.ndarray
    Y_query: list


def _wave(path: Path, sr: int) -> np.ndarray:
    from earmark.audio import load

    y, _ = load(path, sr=sr, end_s=WINDOW_S)
    y = np.pad(y, (0, max(0, int(WINDOW_S * sr) - len(y))))
    return y / max(float(np.sqrt(np.mean(y**2))), 1e-8)


def pair_up(rng, slots: list) -> list:
    """Pairs of (instrument, wave) slots, each slot used once, instruments different."""
    for _ in range(1000):
        order = rng.permutation(len(slots))
        pairs = [(slots[a], slots[b]) for a, b in zip(order[::2], order[1::2])]
        if all(first[0] != second[0] for first, second in pairs):
            return pairs
    raise RuntimeError("no pairing of different instruments found")


@lru_cache(maxsize=1)
def philharmonia_mixtures(root: Path, seed: int = 0) -> Mixtures:
    from earmark.backends import get_backend
    from earmark.embedding import embed_signal

    backend = get_backend("mfcc")
    sr = backend.sample_rate
    rng = np.random.default_rng(seed)
    singles, support_slots, query_slots = [], [], []
    for instrument in INSTRUMENTS:
        files = sorted((Path(root) / instrument).glob("*.mp3"))
        picked = rng.permutation(len(files))[: SUPPORT_SINGLES + SUPPORT_MIXED + QUERY_MIXED]
        waves = [_wave(files[i], sr) for i in picked]
        singles += [(instrument, w) for w in waves[:SUPPORT_SINGLES]]
        support_slots += [(instrument, w) for w in waves[SUPPORT_SINGLES:-QUERY_MIXED]]
        query_slots += [(instrument, w) for w in waves[-QUERY_MIXED:]]

    def embed(slots) -> tuple[np.ndarray, tuple]:
        mix = sum(wave for _, wave in slots)
        mix = 0.1 * mix / max(float(np.abs(mix).max()), 1e-8)
        return embed_signal(backend, mix.astype(np.float32), sr).clip, tuple(i for i, _ in slots)

    support = [embed((slot,)) for slot in singles] + [embed(p) for p in pair_up(rng, support_slots)]
    query = [embed(p) for p in pair_up(rng, query_slots)]
    return Mixtures(
        X_support=np.stack([x for x, _ in support]),
        Y_support=[labels for _, labels in support],
        X_query=np.stack([x for x, _ in query]),
        Y_query=[labels for _, labels in query],
    )
