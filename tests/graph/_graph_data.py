"""Small graph taggers trained once per session on real Philharmonia notes, shared by the
graph tests (a module, not conftest, so tests import it)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

INSTRUMENTS = ("flute", "trombone", "cello")
#: Few epochs and a narrow network: seconds on one CPU thread, still well above chance.
SMALL = dict(hidden=16, epochs=12, random_state=0)


def notes(philharmonia_dir: Path, part: int, take: int):
    """Every other note of each instrument (part 0 or 1: disjoint)."""
    from earmark.manifest import Manifest

    rows = [{"path": str(p), "labels": name} for name in INSTRUMENTS
            for p in sorted((Path(philharmonia_dir) / name).glob("*.mp3"))[part::2][:take]]  # fmt: skip
    return Manifest(pd.DataFrame(rows))


@functools.lru_cache(maxsize=None)
def trained(philharmonia_dir: Path):
    """``(tagger, manifest)``: an aiSFX graph tagger fitted on files; do not modify it."""
    import torch

    from earmark.graph import fit_manifest
    from earmark.interpret.features import PatchConfig

    torch.set_num_threads(1)
    manifest = notes(philharmonia_dir, 0, 8)
    tagger = fit_manifest(manifest, PatchConfig.aisfx(max_patches=1), **SMALL)
    return tagger, manifest


def note(path, sr: int) -> np.ndarray:
    """The first second of a recording, at unit RMS."""
    from earmark.audio import load

    y, _ = load(path, sr=sr, end_s=1.0)
    y = np.pad(y, (0, max(0, sr - len(y))))[:sr]
    return (y / max(float(np.sqrt(np.mean(y**2))), 1e-8)).astype(np.float32)
