"""Make ``aisfx_reference.npz``: the aisfx package's own embeddings of two real clips.

The reference is the package's librosa code path (``aisfx.spectrogram.spectrogram_librosa``
then ``aisfx.preprocessing.spectrogram_normalize``, ``blocking`` and the ``CrossNet``
model of ``aisfx.inference``, with the checkpoint of the wheel), run with the versions
the package pins, so that ``tests/backends/test_aisfx.py`` compares earmark's rewrite
against it rather than against itself. Two deviations from ``aisfx.inference.main``:

- the spectrogram is transposed to (frames, mels) before blocking: the librosa helper
  returns (mels, frames), and ``main`` blocks it as it is (a known bug of the package;
  its essentia path returns (frames, mels));
- ``drop_partial_block=False``: the last, zero-padded block is kept, as earmark does.

Each clip is trimmed to a multiple of 1024 samples and written to a float WAV first,
because the package's ``center=True`` spectrogram leaves out a last STFT frame that
would start less than 1024 samples before the end, where earmark's frame keeps it.

It runs in two steps, because librosa 0.9.2 and numpy 1.23 cannot live in earmark's
environment (Python 3.11 has no numpy 1.23.0 wheel, hence 1.23.5):

1. spectrograms, in a throwaway environment with the package's pins::

       python -m venv /tmp/aisfx-ref
       /tmp/aisfx-ref/bin/pip install numpy==1.23.5 librosa==0.9.2 'scipy<1.12' \
           'numba<0.59' soundfile
       /tmp/aisfx-ref/bin/pip install --no-deps aisfx==0.1.2
       /tmp/aisfx-ref/bin/python tests/backends/data/make_aisfx_reference.py \
           spectrogram /tmp/aisfx-spec.npz

2. embeddings, in earmark's environment (torch 2.13, ``pip install --no-deps aisfx==0.1.2``)::

       python tests/backends/data/make_aisfx_reference.py embed /tmp/aisfx-spec.npz
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATASETS = Path(
    os.environ.get("EARMARK_SHARED_DATASETS", HERE.parents[2].parent / "shared" / "datasets")
)
OUTPUT = HERE / "aisfx_reference.npz"
CLIPS = {
    # one block (1.9 s), and five blocks (6.5 s) of a crescendo-decrescendo
    "short": "philharmonia-mini/bass_clarinet/bass-clarinet_A4_15_pianissimo_normal.mp3",
    "long": "philharmonia-mini/bassoon/bassoon_E4_very-long_cresc-decresc_normal.mp3",
}
MEL_HOP = 1024


def _package_module(name: str):
    """Import one file of the installed package without its ``__init__`` (which imports torch)."""
    root = Path(importlib.util.find_spec("aisfx").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location(f"_aisfx_{name}", root / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spectrograms(output: str) -> None:
    import librosa
    import soundfile

    spectrogram = _package_module("spectrogram/spectrogram_librosa")
    preprocessing = _package_module("preprocessing")
    arrays = {"librosa_version": np.array(librosa.__version__)}
    with tempfile.TemporaryDirectory() as folder:
        for key, relative in CLIPS.items():
            path = DATASETS / relative
            y, _ = librosa.load(str(path), sr=44100)
            n_samples = len(y) // MEL_HOP * MEL_HOP
            trimmed = Path(folder) / f"{key}.wav"
            soundfile.write(trimmed, y[:n_samples], 44100, subtype="FLOAT")
            spec = spectrogram.compute_spectrogram(
                str(trimmed), 44100.0, block_size=2048, hop_size=MEL_HOP, n_mels=96,
                f_min=0.0, f_max=22050.0,
            )  # fmt: skip
            spec = preprocessing.spectrogram_normalize(spec, spec_norm="original")
            arrays[f"{key}_spectrogram"] = spec.T.astype(np.float32)  # (frames, mels)
            arrays[f"{key}_n_samples"] = np.array(n_samples)
    np.savez(output, **arrays)
    print(f"wrote {output} (librosa {librosa.__version__}, numpy {np.__version__})")


def embeddings(spectrogram_file: str) -> None:
    import torch
    from aisfx.inference import get_path_modelWeights, load_bestModel, model_get_embedding

    from earmark.backends.aisfx import CHECKPOINT_SHA256

    checkpoint = Path(get_path_modelWeights())
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == CHECKPOINT_SHA256
    # aisfx.inference.load_weights fails on torch >= 2.6 (weights-only unpickling);
    # the same (state dict, datasets) pair, read with the allow-list earmark uses.
    with torch.serialization.safe_globals(_allowed_globals()):
        weights, datasets = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = load_bestModel(weights, datasets, "cpu")
    spectra = np.load(spectrogram_file)
    arrays = {
        "librosa_version": spectra["librosa_version"],
        "torch_version": np.array(torch.__version__),
    }
    for key, relative in CLIPS.items():
        spec = spectra[f"{key}_spectrogram"].astype(np.float64)
        X = model_get_embedding(spec, 0.5, False, model, "cpu").numpy()
        arrays[f"{key}_path"] = np.array(relative)
        digest = hashlib.sha256((DATASETS / relative).read_bytes()).hexdigest()
        arrays[f"{key}_sha256"] = np.array(digest)
        arrays[f"{key}_n_samples"] = spectra[f"{key}_n_samples"]
        arrays[f"{key}_X"] = X.astype(np.float32)
        print(key, relative, X.shape)
    np.savez_compressed(OUTPUT, **arrays)
    print(f"wrote {OUTPUT}")


def _allowed_globals():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:
        from numpy.core.multiarray import scalar
    return [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]


if __name__ == "__main__":
    step, path = sys.argv[1], sys.argv[2]
    {"spectrogram": spectrograms, "embed": embeddings}[step](path)
