"""Anomalous sound detection from normal recordings alone: a development benchmark.

Run on demand, not a test (set OMP_NUM_THREADS=1 on a shared machine):

    python benchmarks/anomaly.py                        # mfcc and aisfx, 5 seeds
    python benchmarks/anomaly.py --backends birdnet musicnn --poolings mean clip
    python benchmarks/anomaly.py --seeds 0 --backends --explain 4   # explanations only
    python benchmarks/anomaly.py --domain-shift dynamics microphone --poolings mean

Sections are four instruments of ``../shared/datasets/philharmonia-mini`` (flute,
clarinet, oboe, cello). A section's **normal** sound is its notes played at forte,
fortissimo, mezzo-forte or mezzo-piano in the normal articulation; each seed splits
them by note name (the group) into a normal training side (60 %) and held-out normal
test recordings. **Anomalies**, the way faults differ:

* ``other``: another instrument's notes (real recordings);
* ``dynamics``: the section's own notes played piano / pianissimo (real recordings);
* ``clicks``: a held-out normal recording with a train of clicks mixed in at -6 to 0 dB;
* ``hum``: the same with mains hum (50 Hz and harmonics) at -12 to -6 dB;
* ``speed``: the same played 6-10 % faster or slower (resampled).

Every detector of :mod:`earmark.anomaly` x every pooling is fitted on the training side
(through :class:`earmark.models.AnomalyModel`, thresholds out of fold) and scored on
the test recordings; the high-pass baseline beside them. Prints AUC and pAUC (p = 0.1,
mean over sections and seeds) per configuration and per anomaly type, and writes JSON
(``--output``).

``--domain-shift`` runs the domain-shift case instead (DCASE 2022): sections flute,
clarinet, cello and cor anglais; the **source** domain is a section's loud notes (forte,
fortissimo, mezzo-forte), the **target** its quiet ones (mezzo-piano to pianissimo), of
which only 10 train (``dynamics``), or the same quiet notes through another microphone in
a noisier room (``microphone``: low-pass at 3 kHz, brown noise 20 dB down, for every
target recording, anomalies included). Anomalies in both domains: another instrument at
the domain's dynamics, clicks, hum, speed. Each detector is fitted three ways: **pooled**
(no domains: every normal in one set under one threshold, the ablation), **domains** (one
detector, each domain its own location and threshold; test recordings' domains given)
and **domains, inferred at test** (the same model, test domains not given, DCASE 2022's
rule: each recording takes the domain of its nearest normal training recording), and
beside them **separate detectors** (one per domain, the target's on its 10
recordings, a recording's score the lower of the two). Reported: AUC per domain (the
domain's normals against all anomalies of the section, as DCASE 2022's evaluator),
pAUC over both, DCASE 2022's score (harmonic mean of both), and at the stored threshold
the false-alarm rate and hit rate per domain.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from earmark import audio
from earmark.anomaly import CUTOFFS_HZ, DETECTORS, POOLINGS, HighPassBaseline, band_levels, evaluate_scores
from earmark.backends import get_backend
from earmark.embedding import embed_signal
from earmark.models import AnomalyModel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "philharmonia-mini"
SECTIONS = {"flute": "oboe", "clarinet": "saxophone", "oboe": "flute", "cello": "double_bass"}
NORMAL_DYNAMICS = {"forte", "fortissimo", "mezzo-forte", "mezzo-piano"}
QUIET_DYNAMICS = {"piano", "pianissimo"}
SR = 44100
MAX_S = 3.0
TYPES = ("other", "dynamics", "clicks", "hum", "speed")


def _parse(path: Path) -> dict:
    instrument, note, _, dynamic, articulation = path.stem.split("_")[:5]
    return {"path": path, "note": re.sub(r"\d", "", note) + note[-1], "dynamic": dynamic,
            "articulation": articulation}


def _load(path: Path) -> np.ndarray:
    y, _ = audio.load(path, sr=SR, end_s=MAX_S)
    return y.astype(np.float32)


def _rms(y) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-12))


def _mix(y, noise, snr_db) -> np.ndarray:
    noise = noise[: len(y)]
    gain = _rms(y) / _rms(noise) * 10 ** (-snr_db / 20)
    return (y + gain * noise).astype(np.float32)


def _clicks(y, rng) -> np.ndarray:
    noise = np.zeros(len(y), dtype=np.float32)
    period = int(SR / rng.uniform(4, 12))  # a rattle, 4-12 clicks per second
    for start in range(int(rng.integers(0, period)), len(y) - 200, period):
        noise[start:start + 200] += rng.normal(size=200).astype(np.float32) * np.exp(-np.arange(200) / 40)
    return _mix(y, noise, rng.uniform(-6, 0))


def _hum(y, rng) -> np.ndarray:
    t = np.arange(len(y)) / SR
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2, 3, 4, 5))
    return _mix(y, hum.astype(np.float32), rng.uniform(-12, -6))


def _speed(y, rng) -> np.ndarray:
    import soxr

    factor = rng.uniform(1.06, 1.10) ** rng.choice([-1, 1])
    return soxr.resample(y, SR * factor, SR).astype(np.float32)


def build(seed: int, files: dict) -> list[dict]:
    """Training and test recordings of every section for one seed."""
    rng = np.random.default_rng(seed)
    items = []
    for section, other in SECTIONS.items():
        normal = [f for f in files[section] if f["dynamic"] in NORMAL_DYNAMICS and "normal" in f["articulation"]]
        notes = sorted({f["note"] for f in normal})
        rng.shuffle(notes)
        train_notes = set(notes[: int(round(0.6 * len(notes)))])
        for f in normal:
            role = "train" if f["note"] in train_notes else "test"
            items.append({"section": section, "role": role, "type": "normal", "group": f["note"],
                          "y": f["y"], "key": str(f["path"])})
            if role == "test":
                kind = TYPES[2 + len([i for i in items if i["section"] == section and i["role"] == "test"]) % 3]
                y = {"clicks": _clicks, "hum": _hum, "speed": _speed}[kind](f["y"], rng)
                items.append({"section": section, "role": "test", "type": kind, "group": f["note"],
                              "y": y, "key": None})
        quiet = [f for f in files[section] if f["dynamic"] in QUIET_DYNAMICS]
        others = list(files[other])
        for kind, pool in (("dynamics", quiet), ("other", others)):
            for index in rng.permutation(len(pool))[:6]:
                f = pool[index]
                items.append({"section": section, "role": "test", "type": kind, "group": f["note"],
                              "y": f["y"], "key": str(f["path"])})
    return items


#: The domain-shift case: sections with enough loud and quiet notes, each with the
#: instrument whose notes are its "other" anomalies.
SHIFT_SECTIONS = {"flute": "oboe", "clarinet": "saxophone", "cello": "double_bass",
                  "cor_anglais": "bassoon"}
#: Source domain (plentiful): loud notes; target domain (10 for training): quiet notes,
#: a change of condition that changes the timbre as well as the level.
SOURCE_DYNAMICS = {"forte", "fortissimo", "mezzo-forte"}
TARGET_DYNAMICS = {"mezzo-piano", "piano", "pianissimo", "molto-pianissimo"}
N_TARGET_TRAIN = 10
SHIFT_TYPES = ("other", "clicks", "hum", "speed")


def _microphone(y, key: str) -> np.ndarray:
    """The target's second condition when ``--domain-shift microphone``: another
    microphone (low-pass at 3 kHz) in a noisier room (noise 20 dB below the note)."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(zlib.crc32(key.encode()))
    y = sosfilt(butter(4, 3000, fs=SR, output="sos"), y)
    noise = np.cumsum(rng.normal(size=len(y)))  # brown noise: a room's rumble
    noise = sosfilt(butter(2, 40, btype="highpass", fs=SR, output="sos"), noise)
    return _mix(y.astype(np.float32), noise.astype(np.float32), 20.0)


def build_domain_shift(seed: int, files: dict, shift: str = "dynamics") -> list[dict]:
    """Training and test recordings of the domain-shift case for one seed.

    Per section: source normals split by note 60/40 as in :func:`build`; 10 random target
    normals train, the others are held out. Each held-out normal of either domain gets a
    synthetic twin (clicks, hum or speed in turn), and each domain 6 notes of the other
    instrument at that domain's dynamics. ``shift="microphone"``: every target recording,
    anomalies included, also passes through :func:`_microphone`.
    """
    rng = np.random.default_rng(seed)
    items = []
    if shift not in ("dynamics", "microphone"):
        raise ValueError(f"expected shift dynamics or microphone, got {shift!r}")

    def add(item):
        if shift == "microphone" and item["domain"] == "target":
            key = item["key"] or f"{seed}-{len(items)}"
            item = dict(item, y=_microphone(item["y"], key),
                        key=None if item["key"] is None else f"{key}|microphone")
        items.append(item)

    def normal_notes(instrument, dynamics):
        return [f for f in files[instrument] if f["dynamic"] in dynamics and "normal" in f["articulation"]]

    for section, other in SHIFT_SECTIONS.items():
        source = normal_notes(section, SOURCE_DYNAMICS)
        notes = sorted({f["note"] for f in source})
        rng.shuffle(notes)
        train_notes = set(notes[: int(round(0.6 * len(notes)))])
        target = normal_notes(section, TARGET_DYNAMICS)
        train_target = set(rng.permutation(len(target))[:N_TARGET_TRAIN].tolist())
        roles = [("source", f, "train" if f["note"] in train_notes else "test") for f in source]
        roles += [("target", f, "train" if k in train_target else "test") for k, f in enumerate(target)]
        n_test = 0
        for domain, f, role in roles:
            add({"section": section, "domain": domain, "role": role, "type": "normal",
                          "group": f"{domain}-{f['note']}", "y": f["y"], "key": str(f["path"])})
            if role == "test":
                kind = SHIFT_TYPES[1 + n_test % 3]
                n_test += 1
                y = {"clicks": _clicks, "hum": _hum, "speed": _speed}[kind](f["y"], rng)
                add({"section": section, "domain": domain, "role": "test", "type": kind,
                              "group": f["note"], "y": y, "key": None})
        for domain, dynamics in (("source", SOURCE_DYNAMICS), ("target", TARGET_DYNAMICS)):
            pool = normal_notes(other, dynamics)
            for index in rng.permutation(len(pool))[:6]:
                f = pool[index]
                add({"section": section, "domain": domain, "role": "test", "type": "other",
                              "group": f["note"], "y": f["y"], "key": str(f["path"])})
    return items


def domain_shift(args, files, console) -> dict:
    """The domain-shift case (see the module docstring): fit, score, tabulate."""
    results: dict[str, list] = {}
    backends = {spec: get_backend(spec) for spec in args.backends}
    caches: dict[str, dict] = {spec: {} for spec in args.backends}
    for shift in args.domain_shift:
        for seed in args.seeds:
            items = build_domain_shift(seed, files, shift)
            train = [i for i in items if i["role"] == "train"]
            test = [i for i in items if i["role"] == "test"]
            labels = np.array([i["type"] != "normal" for i in test])
            sections = np.array([i["section"] for i in test])
            domains = np.array([i["domain"] for i in test], dtype=object)
            for spec, backend in backends.items():
                t0 = time.perf_counter()
                cache = caches[spec]

                def bag(item):
                    key = item["key"]
                    if key is None or key not in cache:
                        X = embed_signal(backend, item["y"], SR).X
                        if key is None:
                            return X
                        cache[key] = X
                    return cache[key]

                train_bags, test_bags = [bag(i) for i in train], [bag(i) for i in test]
                console.print(f"{shift} seed {seed} {spec}: embedded in {time.perf_counter() - t0:.0f} s")
                fit = dict(sections=[i["section"] for i in train], groups=[i["group"] for i in train],
                           backend=backend)
                for detector in args.detectors:
                    for pooling in args.poolings:
                        name = f"{shift} {spec} {detector} {pooling}"
                        pooled = AnomalyModel.fit_bags(train_bags, **fit, detector=detector, pooling=pooling)
                        aware = AnomalyModel.fit_bags(train_bags, **fit, domains=[i["domain"] for i in train],
                                                      detector=detector, pooling=pooling)
                        for label, model, given in (("pooled (no domains)", pooled, None),
                                                    ("domains", aware, domains),
                                                    ("domains, inferred at test", aware, None)):
                            scores, used = model.score_bags(test_bags, sections, domain=given,
                                                            with_domain=True)
                            thresholds = np.array([model.sections[s].domains[d].clip_threshold
                                                   for s, d in zip(sections, used)])
                            results.setdefault(f"{name} | {label}", []).append(
                                _shift_figures(scores, thresholds, labels, sections, domains))
                        split = AnomalyModel.fit_bags(
                            train_bags, [f"{i['section']}/{i['domain']}" for i in train],
                            fit["groups"], backend=backend, detector=detector, pooling=pooling)
                        scores = np.full(len(test), np.inf)
                        margins = np.full(len(test), np.inf)
                        for domain in ("source", "target"):
                            z = split.score_bags(test_bags, [f"{s}/{domain}" for s in sections])
                            threshold = np.array([split.sections[f"{s}/{domain}"].clip_threshold
                                                  for s in sections])
                            scores = np.minimum(scores, z)
                            margins = np.minimum(margins, z - threshold)
                        results.setdefault(f"{name} | separate detectors", []).append(
                            _shift_figures(scores, scores - margins, labels, sections, domains))
    table = Table(title=f"Domain shift ({N_TARGET_TRAIN} target recordings per section), "
                        f"philharmonia-mini, seeds {args.seeds}: mean over sections, then seeds")
    columns = ("auc_source", "auc_target", "pauc", "score", "false_alarms_source",
               "false_alarms_target", "hits_source", "hits_target")
    for column in ("configuration", "AUC source", "AUC target", "pAUC", "DCASE score",
                   "false alarms source", "false alarms target", "hits source", "hits target"):
        table.add_column(column)
    summary = {}
    for name, runs in results.items():
        mean = {k: float(np.mean([r[k] for r in runs])) for k in columns}
        std = {k: float(np.std([r[k] for r in runs])) for k in columns}
        summary[name] = {"mean": mean, "std": std, "runs": runs}
        table.add_row(name, f"{mean['auc_source']:.3f} ± {std['auc_source']:.3f}",
                      f"{mean['auc_target']:.3f} ± {std['auc_target']:.3f}",
                      *(f"{mean[k]:.3f}" for k in columns[2:4]), *(f"{mean[k]:.2f}" for k in columns[4:]))
    console.print(table)
    return summary


def _shift_figures(scores, thresholds, labels, sections, domains) -> dict:
    evaluation = evaluate_scores(scores, labels, sections, domains)
    flagged = scores >= thresholds
    figures = {"auc_source": evaluation.domains["source"]["auc"],
               "auc_target": evaluation.domains["target"]["auc"],
               "pauc": evaluation.pauc, "score": evaluation.score_hmean}
    for domain in ("source", "target"):
        here = domains == domain
        figures[f"false_alarms_{domain}"] = float(flagged[here & ~labels].mean())
        figures[f"hits_{domain}"] = float(flagged[here & labels].mean())
    return figures


def explain_types(items, n: int, console) -> dict:
    """Occlusion explanations of the default model's score on anomalous test clips: where
    in frequency they point per anomaly type, and how often deletion beats random order."""
    from earmark.anomaly import explain_anomaly, frequency_profile
    from earmark.interpret.reliability import deletion_insertion
    from earmark.models import anomaly_defaults

    defaults = anomaly_defaults()
    backend = get_backend(defaults["backend"])
    train = [i for i in items if i["role"] == "train"]
    model = AnomalyModel.fit_bags([embed_signal(backend, i["y"], SR).X for i in train],
                                  [i["section"] for i in train], [i["group"] for i in train],
                                  backend=backend, detector=defaults["detector"],
                                  pooling=defaults["pooling"])
    table = Table(title=f"Where explanations of {defaults} point ({n} clips per type, seed 0)")
    for column in ("type", "dominant region (Hz)", "share", "deletion beats random", "s per clip"):
        table.add_column(column)
    out = {}
    for kind in TYPES:
        chosen = [i for i in items if i["role"] == "test" and i["type"] == kind][:n]
        t0 = time.perf_counter()
        explanations, beats = [], 0
        for item in chosen:
            explanation = explain_anomaly(model, item["y"], SR, n_time=4, n_bands=8, backend=backend)
            explanations.append(explanation)
            deletion, _ = deletion_insertion(explanation, model, backend=backend, n_steps=8, n_random=3)
            beats += deletion.beats_random
        profile = frequency_profile(explanations)
        low, high = profile.dominant
        out[kind] = {**profile.to_dict(), "deletion_beats_random": beats / max(len(chosen), 1)}
        table.add_row(kind, f"{low:g}-{high:g}", f"{profile.share.max():.0%}",
                      f"{beats}/{len(chosen)}", f"{(time.perf_counter() - t0) / max(len(chosen), 1):.1f}")
    console.print(table)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="*", default=["mfcc", "aisfx"],
                        help="backend names; mfcc:0.25 means mfcc with 0.25 s windows")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    parser.add_argument("--poolings", nargs="+", default=list(POOLINGS))
    parser.add_argument("--explain", type=int, default=0,
                        help="explain this many anomalous test clips per type (first seed, "
                        "default configuration of `earmark anomaly`)")
    parser.add_argument("--domain-shift", nargs="+", choices=("dynamics", "microphone"), default=None,
                        help="run the domain-shift case (target: quiet notes; microphone: "
                        "through another microphone too) instead")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=170)
    started = time.perf_counter()

    instruments = {*SHIFT_SECTIONS, *SHIFT_SECTIONS.values()} if args.domain_shift else {*SECTIONS, *SECTIONS.values()}
    files = {}
    for instrument in instruments:
        files[instrument] = [dict(_parse(p), y=_load(p)) for p in sorted((DATA / instrument).glob("*.mp3"))]
    console.print(f"loaded {sum(map(len, files.values()))} recordings in {time.perf_counter() - started:.0f} s")
    if args.domain_shift:
        summary = domain_shift(args, files, console)
        console.print(f"total {time.perf_counter() - started:.0f} s")
        if args.output:
            args.output.write_text(json.dumps({"domain_shift": summary}, indent=2))
        return

    results: dict[str, list] = {}
    for seed in args.seeds:
        items = build(seed, files)
        train = [i for i in items if i["role"] == "train"]
        test = [i for i in items if i["role"] == "test"]
        labels = np.array([i["type"] != "normal" for i in test])
        sections = np.array([i["section"] for i in test])
        types = np.array([i["type"] for i in test])

        def record(name, scores):
            evaluation = evaluate_scores(scores, labels, sections)
            by_type = {}
            for kind in TYPES:
                keep = (types == kind) | (types == "normal")
                by_type[kind] = evaluate_scores(scores[keep], labels[keep], sections[keep]).auc
            results.setdefault(name, []).append({"auc": evaluation.auc, "pauc": evaluation.pauc, **by_type})

        level = lambda item: band_levels(item["y"], SR, CUTOFFS_HZ)  # noqa: E731
        baseline_scores = np.zeros(len(test))
        for section in SECTIONS:
            fitted = HighPassBaseline().fit(np.stack([level(i) for i in train if i["section"] == section]))
            where = np.flatnonzero(sections == section)
            baseline_scores[where] = fitted.score_samples(np.stack([level(test[k]) for k in where]))
        record("high-pass baseline", baseline_scores)

        for spec in args.backends:
            name, _, window = spec.partition(":")
            backend = get_backend(name, **({"window_s": float(window), "hop_s": float(window) / 2}
                                           if window else {}))
            t0 = time.perf_counter()
            cache = {}

            def bag(item):
                key = item["key"]
                if key is not None and key in cache:
                    return cache[key]
                X = embed_signal(backend, item["y"], SR).X
                if key is not None:
                    cache[key] = X
                return X

            train_bags = [bag(i) for i in train]
            test_bags = [bag(i) for i in test]
            console.print(f"seed {seed} {spec}: embedded in {time.perf_counter() - t0:.0f} s")
            for detector in args.detectors:
                for pooling in args.poolings:
                    model = AnomalyModel.fit_bags(
                        train_bags, [i["section"] for i in train], [i["group"] for i in train],
                        backend=backend, detector=detector, pooling=pooling)
                    record(f"{spec} {detector} {pooling}", model.score_bags(test_bags, sections))

    if args.explain:
        summary_explain = explain_types(build(args.seeds[0], files), args.explain, console)
    else:
        summary_explain = {}

    table = Table(title=f"Anomaly detection, philharmonia-mini, 4 sections, seeds {args.seeds}: "
                        f"mean over sections, then seeds (± std over seeds)")
    for column in ("configuration", "AUC", "pAUC", *TYPES):
        table.add_column(column)
    summary = {}
    for name, runs in results.items():
        mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        std = {k: float(np.std([r[k] for r in runs])) for k in runs[0]}
        summary[name] = {"mean": mean, "std": std, "runs": runs}
        table.add_row(name, f"{mean['auc']:.3f} ± {std['auc']:.3f}", f"{mean['pauc']:.3f}",
                      *(f"{mean[k]:.2f}" for k in TYPES))
    console.print(table)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    if args.output:
        args.output.write_text(json.dumps({"configurations": summary, "explanations": summary_explain},
                                          indent=2))


if __name__ == "__main__":
    main()
