"""Long synthetic soundscapes built from real recordings, with sample-exact truth.

:func:`make_soundscapes` pastes short labelled clips (the events) over a continuous bed
of other real recordings (the background) and writes, per soundscape, a WAV file and
the events' onsets and offsets, so a detector can be scored with
:mod:`earmark.detection.metrics` on audio whose truth is known to the sample.

How each soundscape is made (``seed`` and the soundscape's index fix every choice, so
soundscape ``i`` is the same whatever ``n``):

1. **Events**: every clip is loaded at ``sr`` and trimmed to its non-silent part: the
   32 ms frames quieter than ``top_db`` below the loudest frame are cut from both ends
   (the rule of :func:`librosa.effects.trim`), then each cut is moved to the first
   (last) sample that reaches the same level. 5 ms raised-cosine fades keep the edges
   from clicking. The truth spans exactly the trimmed clip's samples: onset = its
   first sample / ``sr``, offset = one past its last sample / ``sr``.
2. **Schedule**: ``round(events_per_minute * duration_s / 60)`` events; each draws a
   class uniformly (so rare classes are not starved), a clip of that class, an onset
   uniformly over the file, and an SNR uniformly in ``snr_db``. Events of one class
   never overlap and keep ``min_gap_s`` apart (with ``allow_overlap=False``, all events
   do); a placement that fails 100 tries is dropped with a warning.
3. **Background**: clips from ``background_pool``, trimmed the same way, each at unit
   RMS times a random -6 to +6 dB, follow one another with about
   ``background_density`` of them sounding at any time, from before the start to past
   the end. The whole bed is then scaled to ``background_rms_db`` dBFS RMS, measured
   over the full soundscape.
4. **SNR**: an event's gain makes its RMS (over its own samples) ``snr_db`` above the
   background's RMS (over the whole soundscape). If the mix would clip, the whole file
   is scaled down, which keeps every SNR.
5. **Writing**: the file is rendered in blocks of ``block_s`` seconds (three passes:
   background level, peak, then 16-bit PCM writing), so memory holds the clips and one
   block, never the whole signal.

Real background: the project has no background-noise recordings, so the bed is made of
real recordings from a *different* dataset than the events. The standard set
(:func:`standard_soundscapes`) puts Speech Commands words (or FSDD digits) over a low
bed of overlapping Philharmonia orchestral notes: real, continuous, broadband-tonal,
and never a keyword, so a detection on the bed alone is a false positive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ParameterError
from ._clips import Clip, load_clips, pool_items

__all__ = [
    "SoundscapeSet",
    "STANDARD_PARAMETERS",
    "make_soundscapes",
    "standard_soundscapes",
    "load_soundscapes",
]

TRUTH_CSV = "truth.csv"
DESCRIPTION_JSON = "soundscapes.json"
TRUTH_COLUMNS = ("path", "label", "onset_s", "offset_s", "source", "source_onset_s", "snr_db")
#: What :func:`standard_soundscapes` builds, besides the choice of recordings.
STANDARD_PARAMETERS = {
    "n": 20, "duration_s": 60.0, "sr": 16000, "events_per_minute": 10.0,
    "snr_db": (5.0, 20.0), "background_rms_db": -40.0, "background_density": 3.0,
    "min_gap_s": 0.5, "allow_overlap": False,
}
_BACKGROUND_SPREAD_DB = 6.0
_PLACEMENT_TRIES = 100
#: Full scale of 16-bit PCM, less a margin: libsndfile wraps values past 1.0 around.
_PEAK_LIMIT = 0.99


@dataclass(frozen=True)
class SoundscapeSet:
    """Soundscapes on disk and their truth.

    Attributes
    ----------
    out_dir : Path
    paths : list of str
        The WAV files (absolute), in order.
    truth : pandas.DataFrame [shape=(n_events, 7)]
        Columns ``path`` (absolute), ``label``, ``onset_s``, ``offset_s``, ``source``
        (the clip's file), ``source_onset_s`` (where the trimmed clip starts in it) and
        ``snr_db``; sorted by file and onset. Pass it to the metrics as the reference.
    durations : dict of str to float
        Seconds per file, for :func:`earmark.detection.metrics.psds`.
    labels : list of str
        The event classes that could occur.
    sr : int
    parameters : dict
        Everything needed to make the same set again.
    held_out : dict
        For :func:`standard_soundscapes`: the dataset, folds, groups and files the
        events may come from, which a model evaluated on the set must not train on.
    """

    out_dir: Path
    paths: list[str]
    truth: pd.DataFrame
    durations: dict[str, float]
    labels: list[str]
    sr: int
    parameters: dict[str, Any] = field(default_factory=dict)
    held_out: dict[str, Any] = field(default_factory=dict)

    @property
    def truth_csv(self) -> Path:
        """The truth as written (paths relative to ``out_dir``)."""
        return self.out_dir / TRUTH_CSV


class _Layer:
    """Clips placed at sample positions with gains; renders any block of samples."""

    def __init__(self, clips: list[Clip], placements: list[tuple[int, int, float]]):
        self.clips = clips
        self.clip = np.array([p[0] for p in placements], dtype=np.int64)
        self.position = np.array([p[1] for p in placements], dtype=np.int64)
        self.gain = np.array([p[2] for p in placements], dtype=np.float64)
        self.stop = self.position + np.array([clips[c].y.size for c in self.clip], dtype=np.int64)

    def render(self, start: int, stop: int, scale: float = 1.0) -> np.ndarray:
        out = np.zeros(stop - start, dtype=np.float64)
        for i in np.flatnonzero((self.position < stop) & (self.stop > start)):
            y, at = self.clips[self.clip[i]].y, int(self.position[i])
            a, b = max(start, at), min(stop, at + y.size)
            out[a - start : b - start] += (scale * self.gain[i]) * y[a - at : b - at]
        return out


def _blocks(n_samples: int, block: int):
    for start in range(0, n_samples, block):
        yield start, min(n_samples, start + block)


def _schedule(rng, events: list[Clip], n_samples, sr, n_events, snr_db, min_gap_s,
              allow_overlap, name):
    """Event placements: (clip index, first sample, snr) drawn under the overlap rules."""
    by_label: dict[str, list[int]] = {}
    for index, clip in enumerate(events):
        if clip.y.size <= n_samples:
            by_label.setdefault(clip.label, []).append(index)
    if not by_label:
        raise ParameterError(
            f"every event clip is longer than the soundscape ({n_samples} samples)")
    labels = sorted(by_label)
    gap = int(round(min_gap_s * sr))
    starts, stops, placed_labels, placed = [], [], [], []
    dropped = 0
    for _ in range(n_events):
        label = labels[rng.integers(len(labels))]
        index = by_label[label][rng.integers(len(by_label[label]))]
        length = events[index].y.size
        snr = float(rng.uniform(*snr_db))
        blocking = np.array([allow_overlap is False or other == label for other in placed_labels],
                            dtype=bool)
        for _ in range(_PLACEMENT_TRIES):
            at = int(rng.integers(0, n_samples - length + 1))
            if not np.any(blocking & (np.array(starts, dtype=np.int64) < at + length + gap)
                          & (np.array(stops, dtype=np.int64) + gap > at)):
                break
        else:
            dropped += 1
            continue
        starts.append(at)
        stops.append(at + length)
        placed_labels.append(label)
        placed.append((index, at, snr))
    if dropped:
        warnings.warn(f"{name}: {dropped} of {n_events} events found no free place and were "
                      "dropped; lower events_per_minute or min_gap_s", stacklevel=3)
    return placed


def _background(rng, clips: list[Clip], n_samples: int, density: float) -> _Layer:
    placements = []
    index = int(rng.integers(len(clips)))
    at = -int(rng.integers(clips[index].y.size))  # the bed is already sounding at 0
    while at < n_samples:
        spread = 10 ** (rng.uniform(-_BACKGROUND_SPREAD_DB, _BACKGROUND_SPREAD_DB) / 20)
        placements.append((index, at, spread / clips[index].rms))
        at += max(1, int(clips[index].y.size / density * rng.uniform(0.5, 1.5)))
        index = int(rng.integers(len(clips)))
    return _Layer(clips, placements)


def _write_one(path: Path, rng, events, background, p, block: int):
    """Render and write one soundscape; return its truth rows and the mix's scale."""
    import soundfile as sf

    sr, n_samples = p["sr"], p["n_samples"]
    n_events = int(round(p["events_per_minute"] * p["duration_s"] / 60))
    placed = _schedule(rng, events, n_samples, sr, n_events, p["snr_db"], p["min_gap_s"],
                       p["allow_overlap"], path.name)
    bed = _background(rng, background, n_samples, p["background_density"])
    bed_rms = 10 ** (p["background_rms_db"] / 20)
    squares = sum(float(np.sum(bed.render(a, b) ** 2)) for a, b in _blocks(n_samples, block))
    bed_scale = bed_rms / math.sqrt(squares / n_samples)
    layer = _Layer(events, [(index, at, bed_rms * 10 ** (snr / 20) / events[index].rms)
                            for index, at, snr in placed])
    peak = max(float(np.max(np.abs(bed.render(a, b, bed_scale) + layer.render(a, b))))
               for a, b in _blocks(n_samples, block))
    scale = min(1.0, _PEAK_LIMIT / peak) if peak > 0 else 1.0

    def open_wav(target):
        return sf.SoundFile(target, "w", samplerate=sr, channels=1, subtype="PCM_16")

    with contextlib.ExitStack() as files:
        out = files.enter_context(open_wav(path))
        stems = {name: files.enter_context(open_wav(path.with_suffix(f".{name}.wav")))
                 for name in (("background", "events") if p["save_stems"] else ())}
        for a, b in _blocks(n_samples, block):
            bed_block, event_block = bed.render(a, b, bed_scale * scale), layer.render(a, b, scale)
            out.write((bed_block + event_block).astype(np.float32))
            if stems:
                stems["background"].write(bed_block.astype(np.float32))
                stems["events"].write(event_block.astype(np.float32))
    return [
        {"path": str(path), "label": events[index].label, "onset_s": at / sr,
         "offset_s": (at + events[index].y.size) / sr, "source": events[index].source,
         "source_onset_s": events[index].source_start / sr, "snr_db": snr}
        for index, at, snr in placed
    ], scale


def make_soundscapes(
    events_pool,
    background_pool,
    *,
    out_dir,
    n: int = 10,
    duration_s: float = 60.0,
    sr: int = 16000,
    events_per_minute: float = 10.0,
    snr_db: tuple[float, float] = (5.0, 20.0),
    seed: int = 0,
    background_rms_db: float = -40.0,
    background_density: float = 3.0,
    min_gap_s: float = 0.5,
    allow_overlap: bool = True,
    top_db: float = 30.0,
    block_s: float = 10.0,
    save_stems: bool = False,
    prefix: str = "soundscape",
) -> SoundscapeSet:
    """Write ``n`` soundscapes of real clips over a real background, with their truth.

    See the module docstring for how they are made.

    Parameters
    ----------
    events_pool : Manifest, or sequence of (path, label) or of items with .path/.label
        The labelled clips to place.
    background_pool : Manifest, or sequence of paths
        Recordings for the background bed (from another source than the events).
    out_dir : str or Path
        Created if needed; receives ``{prefix}_{i:03d}.wav``, ``truth.csv`` (paths
        relative to it) and ``soundscapes.json`` (parameters and durations).
    n : int
        Number of soundscapes.
    duration_s : float
        Length of each, in seconds.
    sr : int
        Sample rate of the output (clips are resampled to it).
    events_per_minute : float
    snr_db : (float, float)
        Range of event-to-background ratios, in dB, drawn uniformly.
    seed : int
    background_rms_db : float
        RMS of the bed in dBFS.
    background_density : float
        About how many background clips sound at once.
    min_gap_s : float
        Least silence between events of one class (of any class if not
        ``allow_overlap``).
    allow_overlap : bool
        Whether events of different classes may overlap.
    top_db : float
        Trimming threshold, in dB below a clip's loudest frame.
    block_s : float
        Seconds rendered per step.
    save_stems : bool
        Also write ``{name}.background.wav`` and ``{name}.events.wav``, the two
        parts of each mix, scaled as in it.
    prefix : str

    Returns
    -------
    soundscapes : SoundscapeSet

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> folder = Path(tempfile.mkdtemp())
    >>> t = np.arange(8000) / 8000
    >>> sf.write(folder / "beep.wav", np.sin(2 * np.pi * 440 * t) * (t < 0.5), 8000)
    >>> sf.write(folder / "hum.wav", 0.1 * np.sin(2 * np.pi * 50 * t), 8000)
    >>> s = make_soundscapes([(folder / "beep.wav", "beep")], [folder / "hum.wav"],
    ...                      out_dir=folder / "out", n=2, duration_s=10, sr=8000)
    >>> len(s.paths), len(s.truth), round(float(s.truth.offset_s[0] - s.truth.onset_s[0]), 3)
    (2, 4, 0.5)
    """
    if not (n >= 1 and duration_s > 0 and sr > 0 and events_per_minute >= 0 and block_s > 0):
        raise ParameterError(
            "expected n >= 1, duration_s > 0, sr > 0, events_per_minute >= 0 and "
            f"block_s > 0, got {n}, {duration_s}, {sr}, {events_per_minute}, {block_s}")
    low, high = snr_db
    if not low <= high:
        raise ParameterError(f"expected snr_db=(low, high) with low <= high, got {snr_db}")
    if not (background_density > 0 and min_gap_s >= 0 and background_rms_db < 0):
        raise ParameterError(
            "expected background_density > 0, min_gap_s >= 0 and background_rms_db < 0, got "
            f"{background_density}, {min_gap_s}, {background_rms_db}")
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    events = load_clips(pool_items(events_pool, True, "events_pool"), sr, top_db,
                         "events_pool")
    background = load_clips(pool_items(background_pool, False, "background_pool"), sr,
                             top_db, "background_pool")
    n_samples = int(round(duration_s * sr))
    parameters = {
        "n": n, "duration_s": duration_s, "sr": sr, "events_per_minute": events_per_minute,
        "snr_db": [float(low), float(high)], "seed": seed,
        "background_rms_db": background_rms_db, "background_density": background_density,
        "min_gap_s": min_gap_s, "allow_overlap": allow_overlap, "top_db": top_db,
        "save_stems": save_stems, "prefix": prefix,
    }
    block = max(1, int(round(block_s * sr)))
    rows, paths, scales = [], [], []
    for i in range(n):
        path = out_dir / f"{prefix}_{i:03d}.wav"
        # One generator per soundscape: soundscape i is the same whatever n is.
        rng = np.random.default_rng([seed, i])
        truth, scale = _write_one(path, rng, events, background,
                                  dict(parameters, n_samples=n_samples), block)
        rows += truth
        paths.append(str(path))
        scales.append(scale)
    truth = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    truth = truth.sort_values(["path", "onset_s", "label"], kind="stable", ignore_index=True)
    written = truth.assign(path=[os.path.relpath(p, out_dir) for p in truth["path"]])
    written.to_csv(out_dir / TRUTH_CSV, index=False)
    result = SoundscapeSet(
        out_dir=out_dir, paths=paths, truth=truth,
        durations={p: n_samples / sr for p in paths},
        labels=sorted({clip.label for clip in events}), sr=sr,
        parameters=dict(parameters, mix_scale=scales),
    )
    _write_description(result)
    return result


def _write_description(result: SoundscapeSet) -> None:
    description = {
        "files": [os.path.relpath(p, result.out_dir) for p in result.paths],
        "durations_s": [result.durations[p] for p in result.paths],
        "labels": result.labels, "sr": result.sr, "parameters": result.parameters,
        "held_out": result.held_out, "truth_csv": TRUTH_CSV,
    }
    (result.out_dir / DESCRIPTION_JSON).write_text(json.dumps(description, indent=1) + "\n")


def load_soundscapes(out_dir) -> SoundscapeSet:
    """Read back a set written by :func:`make_soundscapes` or :func:`standard_soundscapes`.

    Examples
    --------
    >>> s = load_soundscapes("soundscapes/")  # doctest: +SKIP
    """
    out_dir = Path(out_dir).expanduser().resolve()
    try:
        description = json.loads((out_dir / DESCRIPTION_JSON).read_text())
        truth = pd.read_csv(out_dir / TRUTH_CSV, dtype={"label": str})
    except (OSError, ValueError) as error:
        raise ParameterError(f"{out_dir}: not a soundscape set ({error})") from None
    truth["path"] = [str(out_dir / p) for p in truth["path"]]
    paths = [str(out_dir / p) for p in description["files"]]
    return SoundscapeSet(
        out_dir=out_dir, paths=paths, truth=truth,
        durations=dict(zip(paths, description["durations_s"])),
        labels=description["labels"], sr=description["sr"],
        parameters=description["parameters"], held_out=description["held_out"],
    )


def _held_out_events(shared: Path, events: str):
    """The clips a standard set draws events from, and what a trainer must leave out."""
    from ..datasets import load_dataset

    if events == "speech-commands":
        manifest = load_dataset(shared / "speech-commands-mini")
        # The official validation and testing lists (folds 1 and 2) keep their
        # speakers out of the training list, and together they cover all 30 words.
        folds = [1, 2]
        keep = np.isin(manifest.folds, folds)
        held = manifest.subset(keep)
        leaked = set(held.groups) & set(manifest.subset(~keep).groups)
        if leaked:
            raise ParameterError(f"speakers {sorted(leaked)} are in both the training and "
                                 "the held-out lists; the dataset folder is not the official one")
        info = {"dataset": "speech-commands-mini", "folds": folds}
    elif events == "fsdd":
        manifest = load_dataset(shared / "fsdd")
        # One of the six speakers; the others are left to train on.
        speaker = "yweweler"
        held = manifest.subset(manifest.groups == speaker)
        info = {"dataset": "fsdd", "folds": []}
    else:
        raise ParameterError(f"expected events='speech-commands' or 'fsdd', got {events!r}")
    info.update(groups=sorted(set(held.groups)), paths=sorted(str(p) for p in held.paths))
    return held, info


def standard_soundscapes(shared_datasets_dir, out_dir, seed: int = 0, *,
                         events: str = "speech-commands") -> SoundscapeSet:
    """The benchmark's test soundscapes: held-out speakers' words over orchestral notes.

    Twenty 60 s soundscapes at 16 kHz (:data:`STANDARD_PARAMETERS`): 10 events a
    minute, SNR 5-20 dB, no two events overlapping. Events come only from clips a
    model must not train on, listed in ``held_out``:

    - ``"speech-commands"``: the official validation and testing lists (folds 1 and 2
      of ``speech-commands-mini``, 95 clips, 30 words); train on fold 0;
    - ``"fsdd"``: every recording of speaker ``yweweler`` (500 clips, 10 digits);
      train on the five other speakers.

    The background is a fixed pick of 24 Philharmonia notes (two per instrument).

    Parameters
    ----------
    shared_datasets_dir : str or Path
        The folder holding ``speech-commands-mini``, ``fsdd`` and ``philharmonia-mini``.
    out_dir : str or Path
    seed : int
    events : {"speech-commands", "fsdd"}

    Returns
    -------
    soundscapes : SoundscapeSet
        With ``held_out`` = ``dataset``, ``folds``, ``groups`` (speakers) and
        ``paths`` (every clip the events may come from).

    Examples
    --------
    >>> s = standard_soundscapes("../shared/datasets", "soundscapes/")  # doctest: +SKIP
    >>> keep = ~np.isin(manifest.groups, s.held_out["groups"])  # doctest: +SKIP
    """
    from ..datasets import load_dataset

    shared = Path(shared_datasets_dir).expanduser().resolve()
    held, info = _held_out_events(shared, events)
    notes = load_dataset(shared / "philharmonia-mini")
    rng = np.random.default_rng(seed)
    instruments = np.array([item.label for item in notes])
    background = [str(path) for label in sorted(set(instruments))
                  for path in rng.choice(notes.paths[instruments == label], 2, replace=False)]
    result = make_soundscapes(held, background, out_dir=out_dir, seed=seed,
                              **STANDARD_PARAMETERS)
    result = dataclasses.replace(result, held_out=dict(info, background=background))
    _write_description(result)
    return result
