"""How fast earmark embeds, next to the bare model: is the pipeline in the way?

For each backend, over the same real files and in the same run (the three passes are
interleaved, round after round, so that CPU contention hits them alike):

- pipeline: ``earmark.embedding.embed_file`` on the original files (decoding,
  resampling, framing, batching, model);
- pipeline, no resampling: the same on copies already at the backend's rate;
- embed: what ``earmark embed`` runs, ``earmark.pipeline.embed_manifest`` into a new
  LanceDB store (content hashing, cache look-up and writes included);
- bare: ``backend._embed_windows`` on the very same windows, pre-cut, pre-resampled and
  stacked in full batches (padded if the backend needs fixed batches).

Speeds are seconds of audio per wall second ("x real time"); the ratio pipeline / bare
is the figure to watch (the goal is at least 0.8).

A fused backend (``birdnet+aisfx+musicnn``) is measured with its parts, in the same run
(the parts are added to the list if missing): its "bare" is its parts' bare models one
after the other on their own windows, and "fused / parts" is its pipeline speed against
the parts' pipelines run one after the other (1.0: fusion costs nothing of its own). ``--profile`` shows where the
pipeline spends its time; ``--long-file-hours`` writes a long file to a temporary folder,
block by block, and embeds it in a fresh process to show the peak memory it takes.

Run on demand, not as a test::

    python benchmarks/embed_speed.py birdnet mfcc --files 24 --rounds 3
    python benchmarks/embed_speed.py birdnet+aisfx+musicnn --files 24
    python benchmarks/embed_speed.py birdnet --long-file-hours 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = Path(
    os.environ.get("EARMARK_SHARED_DATASETS", ROOT.parent / "shared" / "datasets")
)
DATASET_GLOBS = {
    "philharmonia": ("philharmonia-mini", "*/*.mp3"),
    "fsdd": ("fsdd", "recordings/*.wav"),
    "speech-commands": ("speech-commands-mini", "*/*.wav"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "backends", nargs="*", help="backend names (default: every installed non-test one)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--dataset",
        default="philharmonia",
        help=f"one of {', '.join(DATASET_GLOBS)}, or a folder of audio files",
    )
    parser.add_argument(
        "--files", type=int, default=24, help="files to embed (default 24; 0: long file only)"
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=0.0,
        help="only files at least this long (separates per-file costs from streaming)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="BACKEND:KEY=VALUE",
        help="backend parameter, e.g. birdnet:batch_size=16 (repeatable; VALUE is JSON)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one pipeline pass")
    parser.add_argument(
        "--long-file-hours",
        type=float,
        default=0.0,
        metavar="H",
        help="also embed a synthetic file of H hours and report peak memory",
    )
    parser.add_argument(
        "--long-file-sr", type=int, default=22050, help="sample rate of the long file"
    )
    parser.add_argument("--_long-file-child", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def limit_threads(threads: int) -> None:
    """Hold every numeric library to ``threads`` threads, before any of them loads."""
    for variable in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[variable] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def backend_params(args, name: str) -> dict:
    """Parameters given for ``name`` (for a fused name: ``{part: params}``)."""
    if "+" in name:
        return {part: backend_params(args, part) for part in name.split("+")}
    params = {}
    for item in args.param:
        backend, _, assignment = item.partition(":")
        if backend == name:
            key, _, value = assignment.partition("=")
            params[key] = json.loads(value)
    return params


def make_backend(name: str, threads: int, params: dict):
    """Instantiate ``name`` with ``threads`` threads, or return a reason it cannot run."""
    import inspect

    from earmark.backends import FusedBackend, registry
    from earmark.backends.fused import part_names
    from earmark.exceptions import ParameterError

    names = part_names(name)
    if names is not None:
        parts = []
        for part in names:
            backend, reason = make_backend(part, threads, params.get(part, {}))
            if backend is None:
                return None, f"part {part}: {reason}"
            parts.append(backend)
        return FusedBackend(parts), ""
    try:
        cls = registry.spec(name).load_class()
    except ParameterError:
        return None, "not registered"
    except (ImportError, AttributeError) as error:
        return None, f"not implemented yet ({error})"
    if not cls.is_available():
        return None, f"not installed ({cls.install_hint or cls.extra or cls.requires})"
    for argument in ("num_threads", "n_threads"):  # BirdNET's, musicnn's
        if argument in inspect.signature(cls.__init__).parameters:
            params = {argument: threads, **params}
    from earmark.exceptions import EarmarkError

    try:
        backend = registry.get_backend(name, **params).load()
    except EarmarkError as error:  # e.g. hear, which needs a module= parameter
        return None, f"cannot load: {error}"
    if name == "aisfx" or name == "musicnn":
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    return backend, ""


def pick_files(args) -> list[Path]:
    if args.dataset in DATASET_GLOBS:
        folder, pattern = DATASET_GLOBS[args.dataset]
        files = sorted((DEFAULT_DATASETS / folder).glob(pattern))
    else:
        from earmark.audio import SUPPORTED_EXTENSIONS

        files = sorted(
            p for p in Path(args.dataset).rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS
        )
    if args.min_seconds > 0:
        from earmark import audio

        files = [p for p in files if audio.info(p).duration_s >= args.min_seconds]
    if not files:
        sys.exit(f"no audio files for --dataset {args.dataset!r} (looked in {DEFAULT_DATASETS})")
    step = max(1, len(files) // args.files)
    return files[::step][: args.files]


def prepare(backend, files: list[Path], folder: Path):
    """Copies of ``files`` at the backend's rate, and the windows the pipeline will cut."""
    import numpy as np
    import soundfile as sf

    from earmark import audio
    from earmark.embedding import cut_frames, with_lead

    resampled, windows, seconds = [], [], 0.0
    for index, path in enumerate(files):
        y, sr = audio.load(path, sr=backend.sample_rate)
        seconds += audio.info(path).duration_s
        copy = folder / f"{backend.name}-{index}.wav"
        sf.write(copy, y, sr, subtype="FLOAT")
        resampled.append(copy)
        cut = cut_frames(with_lead([y], backend.lead_samples), backend.window_samples,
                         backend.hop_samples)
        windows.extend(window.copy() for window in cut)
    return resampled, np.stack(windows), seconds


def bare(backend, windows) -> None:
    import numpy as np

    size = backend.batch_size
    for start in range(0, len(windows), size):
        batch = windows[start : start + size]
        if backend.fixed_batch and len(batch) < size:
            padding = np.zeros((size - len(batch), batch.shape[1]), dtype=batch.dtype)
            batch = np.concatenate([batch, padding])
        backend._embed_windows(batch)


def pipeline(backend, files) -> None:
    from earmark.embedding import embed_file

    for path in files:
        embed_file(backend, path)


def embed_command(backend, files, folder: Path) -> None:
    from earmark.pipeline import embed_manifest
    from earmark.store.lance import LanceStore

    # A new, empty store each time, so that every file is embedded and written.
    store = LanceStore(tempfile.mkdtemp(dir=folder))
    embed_manifest([str(path) for path in files], backend, store, progress=False)


def measure_fused(backend, files: list[Path], rounds: int) -> dict:
    """A fused backend: its pipeline and ``earmark embed`` against its parts' bare models."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        prepared = [prepare(part, files, Path(tmp)) for part in backend.parts]
        seconds = prepared[0][2]
        backend.load()
        for part, (_, windows, _) in zip(backend.parts, prepared):
            bare(part, windows[: part.batch_size])
        pipeline(backend, files[:1])
        embed_command(backend, files[:1], Path(tmp))
        passes = {
            "pipeline": lambda: pipeline(backend, files),
            "embed": lambda: embed_command(backend, files, Path(tmp)),
            "bare": lambda: [bare(part, windows) for part, (_, windows, _) in
                             zip(backend.parts, prepared)],
        }
        times: dict[str, list[float]] = {key: [] for key in passes}
        for round_ in range(rounds):
            order = list(passes) if round_ % 2 == 0 else list(passes)[::-1]
            for key in order:
                start = time.perf_counter()
                passes[key]()
                times[key].append(time.perf_counter() - start)
            print(f"  {backend.name} round {round_ + 1}: "
                  + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in passes), file=sys.stderr)
    bare_t, pipe_t, embed_t = (np.array(times[k]) for k in ("bare", "pipeline", "embed"))
    return {
        "backend": backend.name,
        "parts": [part.name for part in backend.parts],
        "files": len(files),
        "audio_s": seconds,
        "windows": sum(len(windows) for _, windows, _ in prepared),
        "pipeline_x": seconds / np.median(pipe_t),
        "native_x": float("nan"),
        "bare_x": seconds / np.median(bare_t),
        "window_x": float("nan"),
        "ratio": float(np.median(bare_t / pipe_t)),
        "ratio_native": float("nan"),
        "embed_x": seconds / np.median(embed_t),
        "ratio_embed": float(np.median(bare_t / embed_t)),
    }


def fused_over_parts(rows: list[dict]) -> None:
    """Add ``fused_over_parts`` to each fused row whose parts were measured too: its
    pipeline speed over the parts' pipelines run one after the other."""
    by_name = {row["backend"]: row for row in rows}
    for row in rows:
        parts = [by_name.get(name) for name in row.get("parts", ())]
        if parts and all(parts):
            sequential_x = 1.0 / sum(1.0 / part["pipeline_x"] for part in parts)
            row["parts_pipeline_x"] = sequential_x
            row["fused_over_parts"] = row["pipeline_x"] / sequential_x


def measure(backend, files: list[Path], rounds: int, profile: bool) -> dict:
    import numpy as np

    if getattr(backend, "parts", None):
        return measure_fused(backend, files, rounds)
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        resampled, windows, seconds = prepare(backend, files, Path(tmp))
        backend.load()
        bare(backend, windows[: backend.batch_size])  # warm-up: first calls allocate
        pipeline(backend, files[:1])
        embed_command(backend, files[:1], Path(tmp))  # and imports lancedb (seconds)
        passes = {
            "pipeline": lambda: pipeline(backend, files),
            "native": lambda: pipeline(backend, resampled),
            "embed": lambda: embed_command(backend, files, Path(tmp)),
            "bare": lambda: bare(backend, windows),
        }
        times: dict[str, list[float]] = {key: [] for key in passes}
        for round_ in range(rounds):
            # Alternate the order so that no pass always runs right after another.
            order = list(passes) if round_ % 2 == 0 else list(passes)[::-1]
            for key in order:
                start = time.perf_counter()
                passes[key]()
                times[key].append(time.perf_counter() - start)
            print(
                f"  {backend.name} round {round_ + 1}: "
                + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in passes),
                file=sys.stderr,
            )
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            pipeline(backend, files)
            profiler.disable()
            print(f"\nProfile of one pipeline pass ({backend.name}):", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    bare_t, pipe_t, native_t, embed_t = (
        np.array(times[k]) for k in ("bare", "pipeline", "native", "embed")
    )
    return {
        "backend": backend.name,
        "files": len(files),
        "audio_s": seconds,
        "windows": len(windows),
        "pipeline_x": seconds / np.median(pipe_t),
        "native_x": seconds / np.median(native_t),
        "bare_x": seconds / np.median(bare_t),
        "window_x": len(windows) * backend.hop_s / np.median(bare_t),
        # Ratios per round (passes of one round ran side by side), then the median.
        "ratio": float(np.median(bare_t / pipe_t)),
        "ratio_native": float(np.median(bare_t / native_t)),
        "embed_x": seconds / np.median(embed_t),
        "ratio_embed": float(np.median(bare_t / embed_t)),
    }


def print_table(rows: list[dict], skipped: list[tuple[str, str]], threads: int) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of earmark
        for row in rows:
            print(row)
        return
    table = Table(title=f"Embedding speed, x real time ({threads} threads)")
    for column in (
        "backend",
        "files",
        "audio s",
        "windows",
        "pipeline",
        "no resampling",
        "earmark embed",
        "bare",
        "pipeline/bare",
        "no resampling/bare",
        "earmark embed/bare",
        "fused/parts",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["files"]),
            f"{r['audio_s']:.0f}",
            str(r["windows"]),
            f"{r['pipeline_x']:.1f}",
            f"{r['native_x']:.1f}",
            f"{r['embed_x']:.1f}",
            f"{r['bare_x']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['ratio_native']:.2f}",
            f"{r['ratio_embed']:.2f}",
            f"{r['fused_over_parts']:.2f}" if "fused_over_parts" in r else "",
        )
    console = Console(width=max(110, Console().width))
    console.print(table)
    console.print(
        "pipeline: embed_file on the original files; no resampling: on copies at the "
        "backend's rate; earmark embed: embed_manifest into a new LanceDB store; bare: the model alone on the same windows, pre-cut, in full "
        "batches (a fused backend: its parts' bare models one after the other); fused/parts: "
        "the fused pipeline against its parts' pipelines one after the other. Window "
        "throughput of the bare model (hops per second x hop_s): "
        + ", ".join(f"{r['backend']} {r['window_x']:.1f}x" for r in rows if "parts" not in r)
    )
    for name, reason in skipped:
        console.print(f"skipped {name}: {reason}")


# ---------------------------------------------------------------- long file
def write_long_file(path: Path, hours: float, sr: int) -> float:
    """Write ``hours`` of tones in noise to ``path``, one minute at a time."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(hours * 3600 * sr)
    block = 60 * sr
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as handle:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sr
            pitch = 220.0 * 2 ** ((start // block) % 24 / 12)
            y = 0.2 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
            handle.write(y.astype(np.float32))
    return total / sr


def long_file_child(name: str, path: str, threads: int, params: dict) -> None:
    """Embed one file in this fresh process and print JSON with its peak memory."""
    from earmark.embedding import embed_file

    def memory_mib(field: str) -> float:
        # /proc, not getrusage: ru_maxrss survives exec and would report the parent's peak.
        with open("/proc/self/status") as handle:
            line = next(x for x in handle if x.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    backend, reason = make_backend(name, threads, params)
    if backend is None:
        print(json.dumps({"error": reason}))
        return
    backend.load()
    loaded = memory_mib("VmRSS")
    start = time.perf_counter()
    out = embed_file(backend, path)
    elapsed = time.perf_counter() - start
    peak = memory_mib("VmHWM")
    print(
        json.dumps(
            {
                "frames": int(out.X.shape[0]),
                "duration_s": out.duration_s,
                "seconds": elapsed,
                "rss_after_load_mib": loaded,
                "peak_rss_mib": peak,
                "output_mib": out.X.nbytes / 2**20,
            }
        )
    )


def long_file(args, names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="earmark-long-") as tmp:
        path = Path(tmp) / "long.wav"
        start = time.perf_counter()
        seconds = write_long_file(path, args.long_file_hours, args.long_file_sr)
        print(
            f"wrote {seconds / 3600:.2f} h at {args.long_file_sr} Hz "
            f"({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        for name in names:
            command = [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                *(f"--param={p}" for p in args.param),
                "--_long-file-child",
                name,
                str(path),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            lines = [x for x in result.stdout.splitlines() if x.startswith("{")]
            if result.returncode or not lines:
                print(f"{name}: long file failed:\n{result.stderr[-2000:]}")
                continue
            report = json.loads(lines[-1])
            if "error" in report:
                print(f"{name}: skipped ({report['error']})")
                continue
            print(
                f"{name}: {report['duration_s'] / 3600:.2f} h -> {report['frames']} frames in "
                f"{report['seconds']:.0f} s ({report['duration_s'] / report['seconds']:.1f}x "
                f"real time); RSS {report['rss_after_load_mib']:.0f} MiB after loading the "
                f"model, peak {report['peak_rss_mib']:.0f} MiB "
                f"(output {report['output_mib']:.1f} MiB)"
            )


def main(argv=None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    if args._long_file_child:
        name, path = args._long_file_child
        long_file_child(name, path, args.threads, backend_params(args, name))
        return

    from earmark.backends import registry

    names = args.backends or [s.name for s in registry.registered(include_test_backends=False)]
    # A fused backend is measured beside its parts, in the same run.
    for name in list(names):
        for part in name.split("+") if "+" in name else ():
            if part not in names:
                names.insert(names.index(name), part)
    files = pick_files(args) if args.files > 0 else []
    rows, skipped, runnable = [], [], []
    for name in names:
        backend, reason = make_backend(name, args.threads, backend_params(args, name))
        if backend is None:
            print(f"skipping {name}: {reason}", file=sys.stderr)
            skipped.append((name, reason))
            continue
        runnable.append(name)
        if files:
            print(f"{name}: {len(files)} files from {args.dataset}", file=sys.stderr)
            rows.append(measure(backend, files, args.rounds, args.profile))
        del backend
    if files:
        fused_over_parts(rows)
        print_table(rows, skipped, args.threads)
        print(json.dumps(rows, default=float))
    if args.long_file_hours > 0:
        long_file(args, runnable)


if __name__ == "__main__":
    main()
