"""Sound event detection on a three-hour file: memory, speed next to embedding, timing.

Writes a long soundscape to a temporary folder, block by block (quiet noise with real
Speech Commands words pasted at known samples, the last at 2 h 59 min), trains a small
clip model (speech / music / background, logistic regression on ``--backend``
embeddings of real clips), then runs in two fresh processes, so that each one's peak
memory is its own:

- detect: ``earmark.detection.detect_file`` with the model in sliding windows (the
  backend's own window and hop), the file streamed;
- embed: ``earmark.embedding.embed_file`` of the same file on the same backend, the
  frame embeddings of the whole file kept, as ``earmark embed`` computes them.

Each task runs ``--rounds`` times, alternating which goes first, and the best run of
each is compared, since other work on a shared machine slows whichever runs beside it.
Prints the peak resident memory of the detect process, the throughput of both (seconds
of audio per wall second, and CPU time) and their ratio, and each pasted word's onset
error. The
goals (issue 4): peak memory < 1 GiB, the event at 2 h 59 min within one hop of its
true onset, detect throughput >= 0.8 x embed.

``--detector`` runs what ``earmark train --detector`` and ``earmark detect`` do instead:
a frame detector with context trained on weakly labelled 10 s recordings (the training
clips pasted into the same noise; negatives too), its learned post-processing and
calibration, and onsets refined on the recording's level (issue 15's line).

Run on demand, not as a test (about 5 minutes with mfcc on two cores)::

    python benchmarks/detect_long.py
    python benchmarks/detect_long.py --detector
    python benchmarks/detect_long.py --detector --backend aisfx -p grid=steps --rounds 1
    python benchmarks/detect_long.py --hours 3 --backend mfcc --sr 44100 --keep /tmp/long
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("EARMARK_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
# Real clips pasted into noise at known samples (shared with the detection tests).
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--backend", default="mfcc")
    parser.add_argument("-p", "--backend-param", action="append", default=[],
                        help="backend parameter KEY=VALUE, e.g. grid=steps for aisfx")
    parser.add_argument("--sr", type=int, default=None,
                        help="the file's sample rate (default: the backend's, no resampling)")
    parser.add_argument("--keep", type=Path, default=None, help="write the file here and keep it")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each task (best kept)")
    parser.add_argument("--detector", action="store_true",
                        help="detect with what `earmark train --detector` trains (a frame model "
                             "with context, learned post-processing and calibration, level "
                             "boundaries) instead of a clip model slid over windows")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "AUDIO", "MODEL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)

    from _pasted import Placement, clips, write_soundscape

    from earmark.backends import get_backend
    from earmark.cli._common import parse_params

    params = parse_params(args.backend_param)
    backend = get_backend(args.backend, **params)
    sr = args.sr or backend.sample_rate
    folder = args.keep or Path(tempfile.mkdtemp(prefix="earmark-detect-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    duration = args.hours * 3600
    speech_dir, music_dir = DATASETS / "speech-commands-mini", DATASETS / "philharmonia-mini"
    _, test = clips(speech_dir, music_dir)
    words = [path for label, path in test if label == "speech"]
    # A word every half hour, on the frame grid, and the one the issue asks for.
    times = [t for t in range(1800, int(duration) - 60, 1800)] + [duration - 60]
    placements = [Placement("speech", t, w) for t, w in zip(times, words[3:])]
    audio_path = folder / "long.flac"
    started = time.perf_counter()
    placements = write_soundscape(
        audio_path, sr=sr, duration_s=duration, placements=placements, block_s=300.0
    )
    print(f"wrote {audio_path} ({duration / 3600:g} h at {sr} Hz, "
          f"{audio_path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s")
    model_path = folder / "model.earmark"
    trainer = train_detector_model if args.detector else train_model
    trainer(args.backend, speech_dir, music_dir, params).save(model_path)

    # Rounds alternate which task goes first, and the best of each is kept, so that
    # other work on the machine hits both alike.
    runs: dict[str, list[dict]] = {"detect": [], "embed": []}
    for round_index in range(args.rounds):
        order = ("detect", "embed") if round_index % 2 == 0 else ("embed", "detect")
        for task in order:
            runs[task].append(run_child(task, audio_path, model_path))
            print(f"  round {round_index + 1}: {task} {runs[task][-1]['wall_s']:.1f} s wall, "
                  f"{runs[task][-1]['cpu_s']:.1f} s CPU", flush=True)
    detect = min(runs["detect"], key=lambda run: run["wall_s"])
    embed = min(runs["embed"], key=lambda run: run["wall_s"])
    hop = detect["hop_s"]
    print(f"\nbackend {args.backend}, file {duration / 3600:g} h at {sr} Hz, hop {hop:g} s, "
          f"best of {args.rounds}")
    for name, run in (("detect", detect), ("embed", embed)):
        print(f"{name:>6}: {run['wall_s']:.1f} s wall ({run['audio_s'] / run['wall_s']:.0f}x "
              f"real time), {run['cpu_s']:.1f} s CPU, peak RSS {run['peak_rss_mib']:.0f} MiB "
              f"({run['baseline_rss_mib']:.0f} after imports and warm-up), "
              f"{run['n_rows']} rows")
    ratio = embed["wall_s"] / detect["wall_s"]
    cpu_ratio = min(r["cpu_s"] for r in runs["embed"]) / min(r["cpu_s"] for r in runs["detect"])
    print(f"throughput detect / embed: {ratio:.2f} by wall time, {cpu_ratio:.2f} by CPU time "
          f"(goal >= 0.8)")
    print(f"{len(detect['events'])} events")
    worst = 0.0
    errors = {}
    for placement in placements:
        near = [e for e in detect["events"] if e["label"] == "speech"
                and abs(e["onset_s"] - placement.onset_s) <= 2.0]
        if not near:
            print(f"  word at {clock(placement.onset_s)}: NOT FOUND")
            worst = float("inf")
            continue
        error = near[0]["onset_s"] - placement.onset_s
        # A Speech Commands clip is 1 s with the word somewhere inside: the word's own
        # onset is where it becomes audible, not the clip's first sample.
        audible = placement.onset_s + audible_onset_s(placement.clip, sr)
        errors[placement.onset_s] = near[0]["onset_s"] - audible
        worst = max(worst, abs(error))
        print(f"  word at {clock(placement.onset_s)} (audible from {clock(audible)}): event at "
              f"{clock(near[0]['onset_s'])} (error {error:+.3f} s from the clip's first "
              f"sample, {errors[placement.onset_s]:+.3f} s from the word's, score "
              f"{near[0]['score']:.2f})")
    stray = [e for e in detect["events"]
             if not any(abs(e["onset_s"] - p.onset_s) <= 2.0 for p in placements)]
    print(f"  events away from any word: {len(stray)}")
    last = placements[-1]
    verdict = {  # throughput judged by wall time, the stricter when nothing else runs
        "peak memory < 1 GiB": detect["peak_rss_mib"] < 1024,
        "event at the end within one hop of the word's onset": last.onset_s in errors
        and abs(errors[last.onset_s]) <= hop,
        "throughput >= 0.8 x embed": ratio >= 0.8,
    }
    for goal, met in verdict.items():
        print(f"{'PASS' if met else 'FAIL'}: {goal}")
    if args.keep is None:
        audio_path.unlink()
        model_path.unlink()
        folder.rmdir()


def audible_onset_s(path, sr: int) -> float:
    """Seconds into a clip where it first comes within 20 dB of its loudest 10 ms."""
    from _pasted import load_clip

    y = load_clip(path, sr)
    frame = max(1, sr // 100)
    rms = np.sqrt(np.convolve(np.square(y, dtype=np.float64), np.ones(frame) / frame, mode="same"))
    return float(np.argmax(rms >= rms.max() * 0.1) / sr)


def train_model(backend_name: str, speech_dir: Path, music_dir: Path, params=None):
    from _pasted import N_TRAIN, clips, load_clip, noise

    from earmark.backends import get_backend
    from earmark.embedding import embed_signal
    from earmark.models import EarmarkModel

    backend = get_backend(backend_name, **(params or {}))
    sr = backend.sample_rate
    train, _ = clips(speech_dir, music_dir)
    X, y = [], []
    for index, (label, path) in enumerate(train):
        clip = load_clip(path, sr)
        X.append(embed_signal(backend, clip + noise(clip.size, seed=index), sr).clip)
        y.append(label)
    for index in range(N_TRAIN):
        X.append(embed_signal(backend, noise(sr, seed=1000 + index), sr).clip)
        y.append("background")

    return EarmarkModel.train(np.stack(X), y, backend=backend)


def train_detector_model(backend_name: str, speech_dir: Path, music_dir: Path, params=None):
    """A detector (`earmark train --detector`) from weakly labelled 10 s recordings: the
    training words or notes pasted at a random time into the benchmark's noise, a third
    of the recordings with neither (negatives); each recording its own group."""
    from _pasted import N_TRAIN, clips, load_clip, noise

    from earmark.backends import get_backend
    from earmark.detection.detector import train_detector
    from earmark.embedding import embed_signal

    backend = get_backend(backend_name, **(params or {}))
    sr = backend.sample_rate
    train, _ = clips(speech_dir, music_dir)
    rng = np.random.default_rng(0)
    frames, label_sets = [], []
    items = [(label, path) for label, path in train] + [(None, None)] * N_TRAIN
    for index, (label, path) in enumerate(items):
        y = noise(10 * sr, seed=2000 + index)
        if path is not None:
            clip = load_clip(path, sr)
            at = int(rng.integers(0, y.size - clip.size))
            y[at:at + clip.size] += clip
        embedded = embed_signal(backend, y, sr)
        frames.append((embedded.X, embedded.start_s, embedded.end_s))
        label_sets.append((label,) if label else ())
    return train_detector(frames, label_sets, backend=backend)


def run_child(task: str, audio_path: Path, model_path: Path) -> dict:
    command = [sys.executable, __file__, "--child", task, str(audio_path), str(model_path)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode:
        sys.exit(f"{task} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child(task: str, audio_path: str, model_path: str) -> None:
    from earmark.models import EarmarkModel

    model = EarmarkModel.load(model_path)
    backend = model.backend()
    # Warm up (imports, model load) on a second of audio, outside the timing.
    from earmark.embedding import embed_signal

    embed_signal(backend, np.zeros(backend.sample_rate, dtype=np.float32), backend.sample_rate)
    # ru_maxrss is in KiB on Linux.
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_started = time.process_time()
    started = time.perf_counter()
    if task == "detect":
        from earmark.detection.postprocessing import resolve_postprocessing
        from earmark.detection.stream import SlidingWindows, detect_file

        if model.kind == "frames":
            # What `earmark detect` runs for a detector: its learned settings, level boundaries.
            scorer, settings = model, resolve_postprocessing(model.postprocessing)
        else:
            scorer, settings = SlidingWindows(model), {"threshold": {"background": 1.1}}
        result = detect_file(scorer, backend, audio_path, **settings)
        wall = time.perf_counter() - started
        out = {"audio_s": result.duration_s, "n_rows": int(result.scores.shape[0]),
               "hop_s": result.hop_s, "events": [e.to_dict() for e in result.events]}
    else:
        from earmark.embedding import embed_file

        frames = embed_file(backend, audio_path)
        wall = time.perf_counter() - started
        out = {"audio_s": frames.duration_s, "n_rows": int(frames.X.shape[0])}
    cpu = time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**out, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak,
                      "baseline_rss_mib": baseline}))


def clock(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{secs:06.3f}"


if __name__ == "__main__":
    main()
