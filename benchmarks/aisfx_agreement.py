"""Does earmark's ``aisfx`` backend classify as well as the aisfx package's own pipeline?

Run on demand, not a test:

    python benchmarks/aisfx_agreement.py                          # philharmonia-mini
    python benchmarks/aisfx_agreement.py --dataset speech-commands-mini
    python benchmarks/aisfx_agreement.py --cache-dir /tmp/aisfx-agreement   # reruns only fit

earmark's backend departs from the package on purpose in two ways (see the module
docstring of ``earmark.backends.aisfx``): its windows start on sample 0 with
``center=False`` frames, where the package's ``center=True`` spectrogram puts 1024 zeros
in front of the file (the "offset"), and each 2.35 s window is scaled to its own peak,
where the package scales the whole file to a peak of 1. This script embeds every clip

- with earmark, through ``earmark.pipeline.clip_embeddings`` (default ``normalize=
  "window"``, and ``normalize="none"`` unless ``--skip-none``);
- with the package's own code, as a bare script would: ``librosa.load`` at 44.1 kHz,
  ``aisfx.spectrogram.spectrogram_librosa.compute_spectrogram`` (whole-file peak, one
  ``center=True`` spectrogram), ``aisfx.preprocessing.spectrogram_normalize``, the
  package's ``blocking`` with its 50 % hop, and its ``CrossNet`` with the wheel's
  checkpoint (``model_get_embedding``). The spectrogram is transposed to (frames, mels)
  before blocking, as ``tests/backends/data/make_aisfx_reference.py`` explains. Both
  ``drop_partial_block`` settings are reported (``aisfx.inference.main`` drops the last
  partial block; earmark keeps it);
- with the same package code fed earmark's windows, for each of the four combinations
  of {1024-zero offset or none} x {file or window peak}, to tell which difference moves
  the accuracy. "offset + file peak" is the package's computation framed earmark's way
  (it matches the package's blocks; see ``tests/backends/test_aisfx.py``); "offset +
  window peak" is earmark's computation (its ``lead_samples = 1024``) done with librosa
  and the package's network; the "no offset" rows show what the offset is worth.

Clip embedding = mean over blocks, for every variant. Every variant is scored with the
same learner and splits: ``earmark.evaluation.cross_validate`` with logistic regression,
split the way the dataset's layout gives (Philharmonia: grouped by instrument+dynamic;
Speech Commands: the official lists). Prints accuracy (mean ± std over splits), its
difference from the package in points, the number of clips whose out-of-fold prediction
differs, and the cosine similarity of the clip embeddings to the package's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from earmark.backends import get_backend
from earmark.backends.aisfx import _read_state_dict
from earmark.datasets import load_dataset
from earmark.embedding import n_frames
from earmark.evaluation import cross_validate
from earmark.pipeline import clip_embeddings
from earmark.store import open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SAMPLE_RATE = 44100
N_FFT = 2048
MEL_HOP = 1024
N_MELS = 96
BLOCK_FRAMES = 100
WINDOW_SAMPLES = N_FFT + (BLOCK_FRAMES - 1) * MEL_HOP  # 103424: one block of 100 frames
HOP_SAMPLES = BLOCK_FRAMES // 2 * MEL_HOP  # 51200: the package's 50 % block hop
BATCH = 32

# The 2 x 2 grid of the two deliberate differences, computed with the package's code on
# earmark's windows: (name, zeros in front, peak scaling).
GRID = (
    ("grid: offset + file peak (= package)", MEL_HOP, "file"),
    ("grid: offset + window peak (= earmark)", MEL_HOP, "window"),
    ("grid: no offset + file peak", 0, "file"),
    ("grid: no offset + window peak", 0, "window"),
)


# ------------------------------------------------------------ the package's code
def package_model():
    """The package's ``CrossNet`` with the wheel's embedding weights, in eval mode.

    ``aisfx.inference.load_weights`` fails on torch >= 2.6 (weights-only unpickling), so
    the checkpoint is read the way ``tests/backends/test_aisfx.py`` does; only the
    embedding half is needed, hence the empty dataset dictionary.
    """
    from aisfx.inference import load_bestModel

    (checkpoint,) = get_backend("aisfx").weights_paths()
    weights = {f"embedding_net.{k}": v for k, v in _read_state_dict(checkpoint).items()}
    return load_bestModel(weights, {}, "cpu")


def package_spectrogram(path: Path) -> np.ndarray:
    """The package's librosa path on a file: (frames, mels), min-max scaled."""
    from aisfx.inference import F_MAX, F_MIN
    from aisfx.preprocessing import spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    spec = compute_spectrogram(str(path), float(SAMPLE_RATE), N_FFT, MEL_HOP, N_MELS, F_MIN, F_MAX)
    # compute_spectrogram returns (mels, frames); the package's blocking cuts rows.
    return spectrogram_normalize(spec, spec_norm="original").T


def package_blocks(spec: np.ndarray, *, drop_partial_block: bool) -> np.ndarray:
    """``aisfx.preprocessing.blocking`` as ``model_get_embedding`` calls it: (n, 100, 96).

    ``model_get_embedding`` computes the hop with ``compute_hopSize``, which asserts that
    the hop (50 frames) is shorter than the spectrogram, so the package itself fails on
    clips of 50 frames (1.16 s) or less; the hop is given directly here, with the value
    ``compute_hopSize(100, 0.5, spec)`` returns whenever it does not fail.
    """
    from aisfx.preprocessing import blocking

    return blocking(spec, BLOCK_FRAMES, BLOCK_FRAMES // 2, drop_partial_block).astype(np.float32)


def window_spectrograms(windows: np.ndarray) -> np.ndarray:
    """The package's spectrogram code on windows of 103424 samples: (n, 100, 96).

    Same call as ``compute_spectrogram`` (librosa, HTK mel, unit-sum filters, power 2,
    ``log10(1 + 10000 * mel)``, then ``spectrogram_normalize``) with ``center=False``, so
    that each window gives exactly one block.
    """
    import librosa
    from aisfx.inference import F_MAX, F_MIN
    from aisfx.preprocessing import spectrogram_normalize

    mel = librosa.feature.melspectrogram(
        y=windows, sr=SAMPLE_RATE, n_mels=N_MELS, norm=1.0, fmin=F_MIN, fmax=F_MAX,
        htk=True, power=2.0, hop_length=MEL_HOP, win_length=N_FFT, center=False,
    )  # fmt: skip
    spec = spectrogram_normalize(np.log10(mel * 10000.0 + 1), spec_norm="original")
    return np.swapaxes(spec, 1, 2)


def cut_windows(y: np.ndarray, *, offset: int, scaling: str) -> np.ndarray:
    """earmark's framing of ``offset`` zeros + ``y``, last window zero-padded: (n, 103424)."""
    peak = np.abs(y).max()
    if scaling == "file" and peak > 0:
        y = y / peak
    z = np.concatenate([np.zeros(offset, dtype=np.float32), y.astype(np.float32)])
    count = n_frames(z.size, window_samples=WINDOW_SAMPLES, hop_samples=HOP_SAMPLES)
    windows = np.zeros((count, WINDOW_SAMPLES), dtype=np.float32)
    for i in range(count):
        part = z[i * HOP_SAMPLES : i * HOP_SAMPLES + WINDOW_SAMPLES]
        windows[i, : part.size] = part
    if scaling == "window":
        peaks = np.abs(windows).max(axis=1, keepdims=True)
        windows /= np.where(peaks > 0, peaks, 1)
    return windows


def run_network(model, blocks: list[np.ndarray]) -> np.ndarray:
    """``model.get_embedding`` over (100, 96) blocks, batched: (len(blocks), 512)."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(blocks), BATCH):
            batch = torch.from_numpy(np.stack(blocks[start : start + BATCH]).astype(np.float32))
            out.append(model.get_embedding(batch).numpy())
    return np.concatenate(out) if out else np.zeros((0, 512), dtype=np.float32)


def bare_embeddings(
    paths: list[Path], model, *, other_offsets: tuple[int, ...] = ()
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Clip embeddings (mean over blocks) of every bare variant.

    ``other_offsets`` adds, per number of leading zeros, a variant with window peaks: how
    much accuracy moves when the block grid moves by an arbitrary amount.

    Returns
    -------
    variants : dict of str to np.ndarray [shape=(n_clips, 512)]
    package_blocks : np.ndarray [shape=(n_clips,), dtype=int]
        Blocks the package gives each clip (keeping the last partial one).
    """
    import librosa

    blocks: list[np.ndarray] = []  # every distinct (100, 96) block to embed
    clip_rows: dict[str, list[list[int]]] = {}  # variant -> per clip, its rows of `blocks`
    n_blocks = []

    def add(name: str, new_blocks) -> list[int]:
        rows = list(range(len(blocks), len(blocks) + len(new_blocks)))
        blocks.extend(new_blocks)
        clip_rows.setdefault(name, []).append(rows)
        return rows

    for path in paths:
        spec = package_spectrogram(path)
        kept = package_blocks(spec, drop_partial_block=False)
        dropped = package_blocks(spec, drop_partial_block=True)
        assert np.array_equal(dropped, kept[: len(dropped)])  # a prefix: embed once
        rows = add("package (keeps last partial block)", kept)
        clip_rows.setdefault("package, drop_partial_block=True", []).append(rows[: len(dropped)])
        n_blocks.append(len(kept))

        y, _ = librosa.load(str(path), sr=SAMPLE_RATE)  # what compute_spectrogram reads
        for offset in (MEL_HOP, 0):
            by_window, by_file = (
                next(name for name, o, s in GRID if o == offset and s == scaling)
                for scaling in ("window", "file")
            )
            windows = cut_windows(y, offset=offset, scaling="window")
            rows = add(by_window, window_spectrograms(windows))
            if len(windows) == 1:  # the one window holds the file's peak: same block
                clip_rows.setdefault(by_file, []).append(rows)
            else:
                add(by_file, window_spectrograms(cut_windows(y, offset=offset, scaling="file")))
        for offset in other_offsets:
            windows = cut_windows(y, offset=offset, scaling="window")
            add(f"shift: {offset} zeros + window peak", window_spectrograms(windows))
    started = time.perf_counter()
    X_blocks = run_network(model, blocks)
    print(f"  bare: {len(blocks)} blocks through the package's network "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    variants = {
        name: np.stack([X_blocks[r].mean(axis=0) for r in rows]).astype(np.float32)
        for name, rows in clip_rows.items()
    }
    return variants, np.asarray(n_blocks)


# ------------------------------------------------------------------ comparison
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="philharmonia-mini",
                        help="a folder of --shared (default: philharmonia-mini)")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="earmark's embedding cache (default: a temporary folder)")
    parser.add_argument("--learner", default="logreg")
    parser.add_argument("--offsets", type=int, nargs="*", default=[],
                        help="also shift the grid by these numbers of leading zeros "
                        "(window peak), e.g. 256 512 768 2048: the spread is the noise of "
                        "the accuracy figure under an arbitrary grid")
    parser.add_argument("--skip-none", action="store_true",
                        help='do not embed with earmark\'s normalize="none"')
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # audioread via librosa

    manifest = load_dataset(args.shared / args.dataset)
    folds = manifest.folds if manifest.has_folds else None
    groups = manifest.groups if manifest.has_groups else None
    paths = [Path(p) for p in manifest.paths]
    print(f"{args.dataset}: {len(paths)} clips, {len(manifest.classes)} classes", flush=True)

    variants: dict[str, np.ndarray] = {}
    ok = np.ones(len(paths), dtype=bool)
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(args.cache_dir or scratch)
        settings = [("window", "earmark (normalize='window', default)")]
        if not args.skip_none:
            settings.append(("none", "earmark (normalize='none')"))
        for normalize, name in settings:
            started = time.perf_counter()
            X, ok_e, run = clip_embeddings(manifest, get_backend("aisfx", normalize=normalize), store)
            print(f"  {name}: {time.perf_counter() - started:.0f} s, {run.n_failed} failed",
                  flush=True)
            full = np.full((len(paths), X.shape[1]), np.nan, dtype=np.float32)
            full[ok_e] = X
            variants[name] = full
            ok &= ok_e
        del store

    started = time.perf_counter()
    bare, n_blocks = bare_embeddings(paths, package_model(), other_offsets=tuple(args.offsets))
    print(f"  bare script, all variants: {time.perf_counter() - started:.0f} s", flush=True)
    variants.update(bare)
    reference_name = "package (keeps last partial block)"
    reference = variants[reference_name]
    y = np.asarray(manifest.y)[ok]
    results = {
        name: cross_validate(
            X[ok], y,
            folds=None if folds is None else folds[ok],
            groups=None if groups is None else groups[ok],
            learner=args.learner,
        )
        for name, X in variants.items()
    }
    base = results[reference_name]
    n_long = int((n_blocks[ok] > 1).sum())
    print(f"\n{args.dataset}: {ok.sum()} clips ({n_long} longer than one 2.35 s window), "
          f"{args.learner}, {base.strategy}")
    # differ: clips predicted differently from the package, as "right here / right there".
    header = (f"{'variant':44} {'accuracy':>15} {'vs pkg':>7} {'differ':>13} "
              f"{'cos mean':>9} {'cos min':>8}")
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        cos = cosine(variants[name][ok], reference[ok])
        differ = result.y_pred != base.y_pred
        right_here = int((differ & (result.y_pred == y)).sum())
        right_there = int((differ & (base.y_pred == y)).sum())
        print(
            f"{name:44} {result.accuracy_mean:7.1%} ± {result.accuracy_std:5.1%} "
            f"{100 * (result.accuracy_mean - base.accuracy_mean):+7.1f} "
            f"{differ.sum():4d} ({right_here:2d}/{right_there:2d}) "
            f"{cos.mean():9.5f} {cos.min():8.5f}"
        )
    earmark_x = variants["earmark (normalize='window', default)"][ok]
    grid_x = variants[GRID[1][0]][ok]
    print(f"\ncosine earmark vs its librosa re-computation (decoding, resampling, rounding): "
          f"mean {cosine(earmark_x, grid_x).mean():.5f}, min {cosine(earmark_x, grid_x).min():.5f}")
    pkg_grid = cosine(variants[GRID[0][0]][ok], reference[ok])
    print(f"cosine package vs package-framed-earmark's-way: mean {pkg_grid.mean():.5f}, "
          f"min {pkg_grid.min():.5f}  (block count of the last partial block may differ)")


if __name__ == "__main__":
    main()
