"""Regenerate metric_references.json: random event sets scored by the reference tools.

Not a test. Run with an interpreter that has the reference packages, e.g.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install sed_eval==0.2.1 \
        psds_eval==0.5.3 "numpy<2" "pandas<2.3"
    /tmp/ref/bin/python tests/detection/data/make_metric_references.py

(psds_eval 0.5.3 needs numpy < 2 and pandas < 3; sed_eval 0.2.1 runs with either.)
The random cases are drawn here and stored as literal events in the JSON, so the test
never depends on a random generator's stream.
"""

import json
import math
import re
import sys
from pathlib import Path

import numpy as np

LABELS = ["bird", "car", "dog"]


def _events(rng, path, n, duration):
    """Random events, disjoint within each class (psds_eval requires it)."""
    events = []
    for label in LABELS:
        t = float(rng.uniform(0, 2))
        for _ in range(int(rng.integers(0, n + 1))):
            length = float(rng.uniform(0.2, 2.5))
            if t + length > duration:
                break
            events.append({"path": path, "label": label,
                           "onset_s": round(t, 3), "offset_s": round(t + length, 3)})
            t += length + float(rng.uniform(0.1, 4))
    return sorted(events, key=lambda e: (e["onset_s"], e["label"]))


def _estimate(rng, reference, path, duration):
    """Jittered, relabelled, dropped and inserted copies of the reference."""
    out = []
    for event in reference:
        if rng.random() < 0.15:
            continue
        label = event["label"] if rng.random() > 0.2 else str(rng.choice(LABELS))
        onset = max(0.0, event["onset_s"] + float(rng.normal(0, 0.2)))
        offset = max(onset + 0.05, event["offset_s"] + float(rng.normal(0, 0.3)))
        out.append({"path": path, "label": label, "onset_s": round(onset, 3),
                    "offset_s": round(min(offset, duration), 3)})
    out += _events(rng, path, 1, duration)
    # Keep the estimate disjoint within each class, as a post-processor's output is.
    out.sort(key=lambda e: (e["label"], e["onset_s"]))
    kept = []
    for event in out:
        if kept and kept[-1]["label"] == event["label"] and event["onset_s"] < kept[-1]["offset_s"]:
            continue
        kept.append(event)
    return sorted(kept, key=lambda e: (e["onset_s"], e["label"]))


def make_case(seed):
    rng = np.random.default_rng(seed)
    duration = 30.0
    reference, estimated = [], []
    for f in range(3):
        ref = _events(rng, f"f{f}.wav", 4, duration)
        reference += ref
        estimated += _estimate(rng, ref, f"f{f}.wav", duration)
    # A file only in the reference (all missed) and one only in the estimate.
    reference += _events(rng, "only_ref.wav", 2, duration)
    estimated += _events(rng, "only_est.wav", 1, duration)
    return reference, estimated


def sed_eval_scores(reference, estimated, kind, **params):
    import sed_eval

    kind = {"event": "EventBasedMetrics", "segment": "SegmentBasedMetrics"}[kind]
    metric = getattr(sed_eval.sound_event, kind)(event_label_list=LABELS, **params)
    # Not a constructor argument of SegmentBasedMetrics in 0.2.1; both classes read it.
    metric.empty_system_output_handling = "zero_score"
    files = sorted({e["path"] for e in reference + estimated})

    def as_dcase(events, path):
        return [{"filename": e["path"], "event_label": e["label"], "onset": e["onset_s"],
                 "offset": e["offset_s"]} for e in events if e["path"] == path]

    for path in files:
        metric.evaluate(as_dcase(reference, path), as_dcase(estimated, path))
    overall = metric.results_overall_metrics()
    average = metric.results_class_wise_average_metrics()
    class_wise = metric.results_class_wise_metrics()

    def clean(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    return {
        "f_measure": clean(overall["f_measure"]["f_measure"]),
        "precision": clean(overall["f_measure"]["precision"]),
        "recall": clean(overall["f_measure"]["recall"]),
        "error_rate": clean(overall["error_rate"]["error_rate"]),
        "substitution_rate": clean(overall["error_rate"]["substitution_rate"]),
        "deletion_rate": clean(overall["error_rate"]["deletion_rate"]),
        "insertion_rate": clean(overall["error_rate"]["insertion_rate"]),
        "macro_f_measure": clean(average["f_measure"]["f_measure"]),
        "macro_error_rate": clean(average["error_rate"]["error_rate"]),
        "per_class": {label: {"f_measure": clean(class_wise[label]["f_measure"]["f_measure"]),
                              "error_rate": clean(class_wise[label]["error_rate"]["error_rate"])}
                      for label in LABELS},
    }


def psds_eval_score(reference, operating_points, durations, **params):
    import pandas as pd
    from psds_eval import PSDSEval

    def table(events):
        return pd.DataFrame(
            [{"filename": e["path"], "onset": e["onset_s"], "offset": e["offset_s"],
              "event_label": e["label"]} for e in events],
            columns=["filename", "onset", "offset", "event_label"])

    metadata = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    evaluator = PSDSEval(params.pop("dtc_threshold"), params.pop("gtc_threshold"),
                         params.pop("cttc_threshold"), ground_truth=table(reference),
                         metadata=metadata)
    for threshold, events in operating_points.items():
        evaluator.add_operating_point(table(events), info={"threshold": threshold})
    return float(evaluator.psds(**params).value)


def make_psds_case(seed):
    """Operating points: detections of a noisy score, thresholded at several values."""
    rng = np.random.default_rng(1000 + seed)
    reference, estimated = make_case(seed)
    scored = [dict(e, score=round(float(rng.uniform(0.05, 1.0)), 3)) for e in estimated]
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    points = {str(t): [{k: v for k, v in e.items() if k != "score"}
                       for e in scored if e["score"] >= t] for t in thresholds}
    durations = {path: 30.0 for path in sorted({e["path"] for e in reference + estimated})}
    return reference, points, durations


def main():
    import sed_eval

    cases = []
    for seed in range(6):
        reference, estimated = make_case(seed)
        cases.append({
            "seed": seed, "reference": reference, "estimated": estimated,
            "event_based": sed_eval_scores(reference, estimated, "event",
                                           t_collar=0.2, percentage_of_length=0.2),
            "segment_based_1s": sed_eval_scores(reference, estimated, "segment",
                                                time_resolution=1.0),
            "segment_based_250ms": sed_eval_scores(reference, estimated, "segment",
                                                   time_resolution=0.25),
        })
    psds_cases = []
    scenarios = {
        "scenario_1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": 0.3,
                       "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0},
        "scenario_2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3,
                       "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0},
        "loose_no_st": {"dtc_threshold": 0.5, "gtc_threshold": 0.5, "cttc_threshold": 0.3,
                        "alpha_ct": 0.0, "alpha_st": 0.0, "max_efpr": None},
    }
    import psds_eval

    for seed in range(4):
        reference, points, durations = make_psds_case(seed)
        psds_cases.append({
            "seed": seed, "reference": reference, "operating_points": points,
            "durations": durations,
            "psds": {name: psds_eval_score(reference, points, durations, **dict(params))
                     for name, params in scenarios.items()},
        })
    out = {
        "how": "tests/detection/data/make_metric_references.py with sed_eval "
               f"{sed_eval.__version__} (empty_system_output_handling='zero_score') and "
               f"psds_eval {psds_eval.__version__} (numpy {np.__version__}, "
               f"python {sys.version.split()[0]})",
        "labels": LABELS, "scenarios": scenarios, "cases": cases, "psds_cases": psds_cases,
    }
    target = Path(__file__).with_name("metric_references.json")
    # One event per line keeps the file short and diffable.
    text = re.sub(r'\{\s*("path"[^{}]*?)\s*\}', lambda m: "{" + " ".join(m.group(1).split()) + "}",
                  json.dumps(out, indent=1))
    target.write_text(text + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
