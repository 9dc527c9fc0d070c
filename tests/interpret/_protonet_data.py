"""A small prototype network trained once per session on real Speech Commands clips,
shared by the prototype-network tests (a module, not conftest, so tests import it)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

#: Three words, eight clips each, one patch per clip (clips are at most 1 s).
WORDS = ("yes", "no", "up")
CLIPS_PER_WORD = 8
SMALL = dict(channels=(4, 8), prototypes_per_class=2, epochs=15, head_epochs=10, random_state=0)
#: Coarse patches (32 ms hop, 32 bands) keep training to seconds; still about 1 s of sound.
CONFIG = dict(n_mels=32, hop_length=512, patch_frames=32, patch_hop_frames=16, max_patches=2)


def words_manifest(speech_commands_dir: Path, words=WORDS, clips=CLIPS_PER_WORD):
    from earmark.manifest import Manifest

    rows = [
        {"path": str(path), "labels": word}
        for word in words
        for path in sorted((Path(speech_commands_dir) / word).glob("*.wav"))[:clips]
    ]
    return Manifest(pd.DataFrame(rows))


@functools.lru_cache(maxsize=None)
def trained(speech_commands_dir: Path):
    """``(network, manifest, patches)``: do not modify the network."""
    import torch

    from earmark.interpret.features import PatchConfig, manifest_patches
    from earmark.interpret.protonet import fit_manifest

    torch.set_num_threads(1)
    manifest = words_manifest(speech_commands_dir)
    config = PatchConfig(**CONFIG)
    network = fit_manifest(manifest, config, **SMALL)
    return network, manifest, manifest_patches(manifest, config)


def labels_of(manifest, patches) -> np.ndarray:
    return manifest.y[patches.item]
