"""Detection scores: hand-computed cases, and agreement with sed_eval and psds_eval.

The reference numbers in data/metric_references.json were computed by sed_eval 0.2.1
and psds_eval 0.5.3 themselves (see data/make_metric_references.py, and its "how"
field), on random event sets stored there as literal events; these tests compare our
implementation with those numbers.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from earmark.detection.metrics import (
    PSDS_SCENARIO_2,
    event_based_scores,
    psds,
    segment_based_scores,
)
from earmark.exceptions import ParameterError

REFERENCES = json.loads((Path(__file__).parent / "data" / "metric_references.json").read_text())


def ev(label, onset_s, offset_s, path="a.wav"):
    return {"path": path, "label": label, "onset_s": onset_s, "offset_s": offset_s}


def same(ours, theirs):
    """Equal, with None in the reference standing for an undefined (NaN) figure."""
    return math.isnan(ours) if theirs is None else ours == pytest.approx(theirs, abs=1e-12)


# --------------------------------------------------------------------- hand cases
def test_perfect_estimate_scores_one_and_no_error():
    ref = [ev("dog", 1.0, 2.0), ev("cat", 1.5, 4.0), ev("dog", 5.0, 6.5, path="b.wav")]
    for scores in (event_based_scores(ref, ref), segment_based_scores(ref, ref)):
        assert (scores.f_measure, scores.error_rate, scores.macro_f_measure) == (1.0, 0.0, 1.0)
        assert {label: s.f_measure for label, s in scores.per_class.items()} == {
            "cat": 1.0, "dog": 1.0}
    assert event_based_scores(ref, ref).n_reference == 3


def test_onset_shift_inside_the_collar_matches_and_outside_does_not():
    ref = [ev("dog", 1.0, 2.0)]
    inside = event_based_scores(ref, [ev("dog", 1.15, 2.15)])
    assert (inside.f_measure, inside.error_rate) == (1.0, 0.0)
    outside = event_based_scores(ref, [ev("dog", 1.25, 2.25)])
    # One deletion and one insertion of the same class: no substitution.
    assert (outside.f_measure, outside.n_deletions, outside.n_insertions) == (0.0, 1, 1)
    assert (outside.n_substitutions, outside.error_rate) == (0, 2.0)
    # Segments: the reference is active in segment 1, the estimate in 1 and 2.
    segments = segment_based_scores(ref, [ev("dog", 1.25, 2.25)])
    assert (segments.precision, segments.recall) == (0.5, 1.0)
    assert segments.f_measure == pytest.approx(2 / 3)
    assert segments.error_rate == 1.0  # one inserted (segment, class) over one reference


def test_offset_collar_grows_with_the_reference_length():
    ref = [ev("dog", 0.0, 5.0)]  # offset collar max(0.2, 20 % of 5 s) = 1 s
    assert event_based_scores(ref, [ev("dog", 0.1, 5.9)]).f_measure == 1.0
    assert event_based_scores(ref, [ev("dog", 0.1, 6.1)]).f_measure == 0.0
    wider = event_based_scores(ref, [ev("dog", 0.1, 6.1)], percentage_of_length=0.25)
    assert wider.f_measure == 1.0
    onset_only = event_based_scores(ref, [ev("dog", 0.3, 5.0)], t_collar=0.25)
    assert onset_only.f_measure == 0.0


def test_onset_only_matching_ignores_the_offset_but_not_the_onset():
    ref = [ev("dog", 1.0, 2.0)]
    late_end = [ev("dog", 1.1, 4.0)]
    assert event_based_scores(ref, late_end).f_measure == 0.0
    onset_only = event_based_scores(ref, late_end, evaluate_offset=False)
    assert (onset_only.f_measure, onset_only.parameters["evaluate_offset"]) == (1.0, False)
    assert event_based_scores(ref, [ev("dog", 1.3, 2.0)], evaluate_offset=False).f_measure == 0.0


def test_a_split_event_fails_event_based_but_not_segment_based():
    ref = [ev("dog", 1.0, 3.0)]
    est = [ev("dog", 1.0, 1.9), ev("dog", 2.1, 3.0)]
    events = event_based_scores(ref, est)
    # First half: offset 1.1 s off (collar 0.4 s); second half: onset 1.1 s off.
    assert (events.n_true_positive, events.n_deletions, events.n_insertions) == (0, 1, 2)
    assert (events.f_measure, events.error_rate) == (0.0, 3.0)
    segments = segment_based_scores(ref, est)
    assert (segments.f_measure, segments.error_rate, segments.n_reference) == (1.0, 0.0, 2)


def test_a_file_missing_from_the_estimate_counts_as_all_missed():
    ref = [ev("dog", 1.0, 2.0), ev("dog", 1.0, 2.0, path="b.wav")]
    est = [ev("dog", 1.0, 2.0)]
    scores = event_based_scores(ref, est)
    assert (scores.precision, scores.recall, scores.error_rate) == (1.0, 0.5, 0.5)
    assert scores.f_measure == pytest.approx(2 / 3)
    assert scores.n_files == 2
    assert segment_based_scores(ref, est).recall == 0.5
    # And a file only in the estimate is all insertions.
    extra = event_based_scores(est, ref)
    assert (extra.precision, extra.recall, extra.insertion_rate) == (0.5, 1.0, 1.0)


def test_wrong_class_at_the_right_time_is_a_substitution_and_per_class_errors():
    scores = event_based_scores([ev("dog", 1.0, 2.0)], [ev("cat", 1.0, 2.0)])
    assert (scores.n_substitutions, scores.n_deletions, scores.n_insertions) == (1, 0, 0)
    assert (scores.error_rate, scores.f_measure) == (1.0, 0.0)
    dog, cat = scores.per_class["dog"], scores.per_class["cat"]
    assert (dog.recall, dog.precision, dog.error_rate, dog.f_measure) == (0.0, 0.0, 1.0, 0.0)
    # No cat in the reference: recall and error rate are undefined, not zero.
    assert cat.precision == 0.0 and math.isnan(cat.recall) and math.isnan(cat.error_rate)
    assert scores.macro_f_measure == 0.0  # the mean over classes where F is defined
    # Asking for the classes puts a class nobody mentions in the table.
    listed = event_based_scores([ev("dog", 1.0, 2.0)], [ev("dog", 1.0, 2.0)],
                                labels=["bird", "dog"])
    assert list(listed.per_class) == ["bird", "dog"]
    assert listed.per_class["bird"].n_reference == 0 and listed.macro_f_measure == 1.0


def test_segment_based_substitutions_deletions_insertions_per_segment():
    ref = [ev("dog", 0.0, 2.0), ev("cat", 1.0, 2.0)]
    est = [ev("cat", 0.0, 1.0), ev("dog", 2.0, 3.0)]
    # Segment 0: dog vs cat (1 S); segment 1: dog, cat vs nothing (2 D); 2: dog (1 I).
    scores = segment_based_scores(ref, est)
    assert (scores.n_substitutions, scores.n_deletions, scores.n_insertions) == (1, 2, 1)
    assert scores.error_rate == pytest.approx(4 / 3)
    assert scores.per_class["dog"].error_rate == 1.5  # 2 missed + 1 false over 2
    half = segment_based_scores(ref, est, segment_s=0.5)
    assert half.n_reference == 6 and half.n_estimated == 4


def test_matching_is_maximal_not_first_come():
    # The first estimate fits both references, the second fits only the first one:
    # matching in list order would pair (A, X) and leave B and Y unmatched.
    ref = [ev("dog", 0.0, 1.0), ev("dog", 0.15, 1.15)]
    est = [ev("dog", 0.1, 1.1), ev("dog", 0.0, 0.9)]
    assert event_based_scores(ref, est).f_measure == 1.0


def test_segment_boundaries_survive_floating_point_error():
    # 0.3 / 0.1 is 2.9999999999999996: the event must not spill into segment 2.
    scores = segment_based_scores([ev("dog", 0.3, 0.5)], [ev("dog", 0.3, 0.5)], segment_s=0.1)
    assert scores.n_reference == 2


def test_events_as_objects_dataframes_and_dcase_keys():
    @dataclass
    class Found:  # shaped like earmark.detection.events.Event
        path: str | None
        label: str
        onset_s: float
        offset_s: float
        score: float | None = None

    ref = pd.DataFrame([ev("dog", 1.0, 2.0), ev("cat", 3.0, 4.0)])
    est = [Found("a.wav", "dog", 1.05, 2.0, 0.9),
           {"filename": "a.wav", "event_label": "cat", "onset": 3.0, "offset": 4.1}]
    assert event_based_scores(ref, est).f_measure == 1.0
    # Events without a path all belong to one unnamed file.
    assert event_based_scores([Found(None, "dog", 1.0, 2.0)],
                              [{"label": "dog", "onset_s": 1.0, "offset_s": 2.0}]).f_measure == 1.0


def test_bad_input_says_what_was_expected():
    with pytest.raises(ParameterError, match="onset_s <= offset_s"):
        event_based_scores([ev("dog", 2.0, 1.0)], [])
    with pytest.raises(ParameterError, match="label"):
        segment_based_scores([{"onset_s": 0.0, "offset_s": 1.0}], [])
    with pytest.raises(ParameterError, match=r"\['cat'\] not among"):
        event_based_scores([ev("dog", 0.0, 1.0)], [ev("cat", 0.0, 1.0)], labels=["dog"])
    with pytest.raises(ParameterError, match="segment_s > 0"):
        segment_based_scores([], [], segment_s=0)
    with pytest.warns(UserWarning, match="do the paths match"):
        event_based_scores([ev("dog", 0.0, 1.0, path="/data/a.wav")], [ev("dog", 0.0, 1.0)])


def test_nothing_estimated_scores_zero_and_to_dict_is_strict_json():
    scores = event_based_scores([ev("dog", 0.0, 1.0)], [])
    assert (scores.precision, scores.f_measure, scores.error_rate) == (0.0, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = segment_based_scores([], [])
    assert empty.n_files == 0 and math.isnan(empty.error_rate)
    text = json.dumps(event_based_scores([ev("dog", 1, 2)], [ev("cat", 1, 2)]).to_dict(),
                      allow_nan=False)
    assert json.loads(text)["per_class"]["cat"]["recall"] is None


# --------------------------------------------------------- agreement with sed_eval
@pytest.mark.parametrize("case", REFERENCES["cases"], ids=lambda c: f"seed{c['seed']}")
@pytest.mark.parametrize(
    ("key", "score", "params"),
    [("event_based", event_based_scores, {}),
     ("segment_based_1s", segment_based_scores, {}),
     ("segment_based_250ms", segment_based_scores, {"segment_s": 0.25})],
)
def test_agrees_with_sed_eval(case, key, score, params):
    ours = score(case["reference"], case["estimated"], labels=REFERENCES["labels"], **params)
    theirs = case[key]
    for name, value in theirs.items():
        if name != "per_class":
            assert same(getattr(ours, name), value), (name, getattr(ours, name), value)
    for label, figures in theirs["per_class"].items():
        for name, value in figures.items():
            assert same(getattr(ours.per_class[label], name), value), (label, name)


# ---------------------------------------------------------------------------- PSDS
def test_psds_staircase_area_by_hand():
    ref = [ev("dog", 1.0, 2.0), ev("dog", 5.0, 6.0)]
    points = {
        0.5: [ev("dog", 1.0, 2.0)],  # TPR 0.5, no false positive
        0.2: [ev("dog", 1.0, 2.0), ev("dog", 5.0, 6.0), ev("dog", 8.0, 9.0)],
    }
    # 72 s of audio is 0.02 h, so one false positive is 50 per hour: the ROC is 0.5 up
    # to 50 FP/h and 1 after; its area up to 100 FP/h is 25 + 50.
    result = psds(ref, points, {"a.wav": 72.0}, alpha_st=0.0)
    assert result.value == pytest.approx(0.75)
    assert result.efpr.tolist() == [0.0, 50.0]
    assert result.etpr.tolist() == [0.5, 1.0]
    assert psds(ref, points, {"a.wav": 72.0}, max_efpr=50.0).value == pytest.approx(0.5)


def test_psds_tolerance_criteria():
    ref = [ev("dog", 0.0, 10.0)]
    durations = {"a.wav": 3600.0}

    def tpr_fpr(detections, **criteria):
        point = psds(ref, [detections], durations, **criteria).operating_points[0]["dog"]
        return point["tpr"], point["fpr"]

    # 60 % of the reference covered: not detected at GTC 0.7, detected at 0.5, and the
    # detection is no false positive either way (it lies wholly on the reference).
    assert tpr_fpr([ev("dog", 0.0, 6.0)]) == (0.0, 0.0)
    assert tpr_fpr([ev("dog", 0.0, 6.0)], gtc_threshold=0.5) == (1.0, 0.0)
    # Coverage adds up over several detections.
    assert tpr_fpr([ev("dog", 0.0, 4.0), ev("dog", 4.5, 8.0)]) == (1.0, 0.0)
    # Half of this detection lies off the reference: it fails the DTC (0.7).
    assert tpr_fpr([ev("dog", 0.0, 20.0)]) == (0.0, 1.0)
    assert tpr_fpr([ev("dog", 0.0, 20.0)], dtc_threshold=0.5, gtc_threshold=0.5) == (1.0, 0.0)


def test_psds_cross_triggers_and_class_instability():
    ref = [ev("a", 0.0, 3.6), ev("b", 10.0, 13.6)]
    found = [ev("a", 0.0, 3.6), ev("b", 10.0, 13.6), ev("b", 0.0, 3.6)]
    durations = {"a.wav": 36.0}  # 0.01 h: one false positive is 100 per hour
    # The stray "b" lies wholly on an "a" event (0.001 h of "a"): 1000 cross-triggers
    # per hour, so b's effective FPR is 100 + 0.5 * 1000 = 600 per hour.
    result = psds(ref, [found], durations, **dict(PSDS_SCENARIO_2, alpha_st=0.0,
                                                   max_efpr=1000.0))
    assert result.operating_points[0]["b"]["efpr"] == pytest.approx(600.0)
    assert result.value == pytest.approx((600 * 0.5 + 400 * 1.0) / 1000)
    plain = psds(ref, [found], durations, alpha_st=0.0, max_efpr=1000.0)
    assert plain.value == pytest.approx((100 * 0.5 + 900 * 1.0) / 1000)
    # Class "a" is perfect and "b" has nothing below 100 FP/h: mean 0.5, spread 0.5.
    assert psds(ref, [found], durations, alpha_st=0.0).value == pytest.approx(0.5)
    assert psds(ref, [found], durations, alpha_st=1.0).value == pytest.approx(0.0)


def test_psds_refuses_what_it_cannot_score():
    ref = [ev("dog", 0.0, 1.0)]
    with pytest.raises(ParameterError, match="overlap"):
        psds(ref, [[ev("dog", 0.0, 2.0), ev("dog", 1.0, 3.0)]], {"a.wav": 10.0})
    with pytest.raises(ParameterError, match="no duration given"):
        psds(ref, [[ev("dog", 0.0, 1.0, path="b.wav")]], {"a.wav": 10.0})
    with pytest.raises(ParameterError, match="cttc_threshold"):
        psds(ref, [ref], {"a.wav": 10.0}, alpha_ct=0.5)
    with pytest.raises(ParameterError, match="no reference events"):
        psds(ref, [ref], {"a.wav": 10.0}, labels=["cat", "dog"])
    json.dumps(psds(ref, [ref], {"a.wav": 10.0}).to_dict(), allow_nan=False)


@pytest.mark.parametrize("case", REFERENCES["psds_cases"], ids=lambda c: f"seed{c['seed']}")
@pytest.mark.parametrize("scenario", sorted(REFERENCES["scenarios"]))
def test_psds_agrees_with_psds_eval(case, scenario):
    params = REFERENCES["scenarios"][scenario]
    ours = psds(case["reference"], case["operating_points"], case["durations"], **params)
    assert ours.value == pytest.approx(case["psds"][scenario], abs=1e-12)
