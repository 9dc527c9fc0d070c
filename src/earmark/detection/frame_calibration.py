"""Frame scores a user can read as probabilities: Platt scaling fitted on validation recordings.

A detector's frame scores come from a multiple-instance model trained on label sets, so
nothing ties a frame's 0.3 to "three times in ten this class sounds here": read raw, the
default threshold 0.5 finds a third of the events on the development soundscapes. This
module fits, per class, a logistic map of the score's logit (Platt scaling,
``sigmoid(slope * logit(p) + intercept)``: monotone, so every ranking is kept) on the
validation part that :func:`~earmark.detection.detector.train_detector` holds out, with
the targets the labels give:

- a recording with **strong labels** (events with times): each frame, its target whether
  the class sounds over at least half of the frame
  (:func:`~earmark.detection.detector.frame_targets_for`);
- a recording known only by its **label set** (weak labels, negatives included): its
  highest frame per class, the target whether the class is in the set. The calibrated
  score of a recording's loudest frame is then the probability that the class sounds
  somewhere in it, so a threshold of 0.5 reports a class where it more likely sounds
  than not.

A class with fewer than :data:`MIN_EACH` positive or negative targets takes the map
fitted on all classes together (so does one whose fitted slope is not positive: a map
never reverses a ranking); with too few of those, scores stay as they are (identity
map, said in the stored record). scikit-learn's logistic regression does the
fit; what is written here is only which (score, target) pairs the labels allow.

The map is stored in the model's post-processing under ``calibration`` and applied by
:meth:`earmark.models.EarmarkModel.segment_proba`, so ``earmark detect`` and every
figure read calibrated scores.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..exceptions import ParameterError

__all__ = ["MIN_EACH", "apply_frame_calibration", "check_frame_calibration",
           "fit_frame_calibration"]

#: Fewest positive and negative targets for a class's own map.
MIN_EACH = 5
_EPS = 1e-6
_BOUND = 1e3  # slopes and intercepts beyond this are refused when read back


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_frame_calibration(rows, label_sets, classes: Sequence[str], *,
                          frame_targets=None) -> dict[str, Any]:
    """Fit one Platt map per class on validation recordings.

    Parameters
    ----------
    rows : sequence of np.ndarray [shape=(n_frames_i, n_classes)]
        Raw frame scores in [0, 1] of each validation recording.
    label_sets : sequence of sets
        Classes sounding in each recording (empty for a negative).
    classes : sequence of str
        Column names of the scores.
    frame_targets : sequence of (np.ndarray or None), optional
        Per recording, 0/1 frame targets ``[shape=(n_frames_i, n_classes)]`` where strong
        labels give them; None where only the label set is known.

    Returns
    -------
    dict
        ``{"method": "platt", "slope": {class: a}, "intercept": {class: b},
        "source": {class: "own" | "pooled" | "identity"}, "targets": {"frames": n,
        "recordings": m}}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rows = [np.clip(rng.normal(0.2 + 0.4 * (i % 2), 0.1, (20, 1)), 0, 1) for i in range(40)]
    >>> sets = [("a",) if i % 2 else () for i in range(40)]
    >>> fitted = fit_frame_calibration(rows, sets, ["a"])
    >>> fitted["source"], fitted["targets"]
    ({'a': 'own'}, {'frames': 0, 'recordings': 40})
    >>> apply_frame_calibration(np.array([[0.9], [0.1]]), fitted, ["a"]).round(1).ravel().tolist()
    [1.0, 0.0]
    """
    from sklearn.linear_model import LogisticRegression

    classes = [str(c) for c in classes]
    if len(rows) != len(label_sets):
        raise ParameterError(f"expected one label set per recording ({len(rows)}), got {len(label_sets)}")
    frame_targets = list(frame_targets) if frame_targets is not None else [None] * len(rows)
    x: list[list[np.ndarray]] = [[] for _ in classes]
    y: list[list[np.ndarray]] = [[] for _ in classes]
    n_frames = n_recordings = 0
    for scores, labels, targets in zip(rows, label_sets, frame_targets):
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(classes) or len(scores) == 0:
            continue
        present = {str(label) for label in labels}
        if targets is not None:
            targets = np.asarray(targets)
            n_frames += len(scores)
            for k in range(len(classes)):
                x[k].append(scores[:, k])
                y[k].append(targets[:, k] > 0.5)
        else:
            n_recordings += 1
            top = scores.max(axis=0)
            for k, label in enumerate(classes):
                x[k].append(top[k:k + 1])
                y[k].append(np.array([label in present]))
    xs = [np.concatenate(v) if v else np.zeros(0) for v in x]
    ys = [np.concatenate(v).astype(bool) if v else np.zeros(0, dtype=bool) for v in y]

    def fit(features, target):
        if min(int(target.sum()), int((~target).sum())) < MIN_EACH:
            return None
        model = LogisticRegression(C=1.0).fit(_logit(features)[:, None], target)
        if not model.coef_[0, 0] > 0:  # scores that do not rise with the class: no map
            return None
        return float(model.coef_[0, 0]), float(model.intercept_[0])

    pooled = fit(np.concatenate(xs), np.concatenate(ys)) if xs else None
    slope, intercept, source = {}, {}, {}
    for label, features, target in zip(classes, xs, ys):
        own = fit(features, target)
        chosen = own or pooled or (1.0, 0.0)
        slope[label], intercept[label] = chosen
        source[label] = "own" if own else "pooled" if pooled else "identity"
    return {"method": "platt", "slope": slope, "intercept": intercept, "source": source,
            "targets": {"frames": n_frames, "recordings": n_recordings}}


def apply_frame_calibration(scores, calibration: dict[str, Any] | None,
                            classes: Sequence[str]) -> np.ndarray:
    """Calibrated frame scores ``[shape=(n_frames, n_classes)]``; unchanged without a map."""
    scores = np.asarray(scores)
    if not calibration:
        return scores
    slope = np.array([calibration["slope"][str(c)] for c in classes])
    intercept = np.array([calibration["intercept"][str(c)] for c in classes])
    z = slope * _logit(scores) + intercept
    from scipy.special import expit

    return expit(z).astype(scores.dtype if scores.dtype.kind == "f" else np.float64)


def check_frame_calibration(value, classes: Sequence[str]) -> dict[str, Any]:
    """A stored calibration record checked for ``classes``; ParameterError if it is wrong
    (a model file from elsewhere is not trusted)."""
    if not isinstance(value, dict) or value.get("method") != "platt":
        raise ParameterError(f"expected a frame calibration with method 'platt', got {value!r:.80}")
    for key in ("slope", "intercept"):
        table = value.get(key)
        if not isinstance(table, dict) or sorted(table) != sorted(str(c) for c in classes):
            raise ParameterError(f"expected frame calibration {key} for classes {list(classes)}")
        for label, number in table.items():
            if (not isinstance(number, (int, float)) or isinstance(number, bool)
                    or not math.isfinite(number) or abs(number) > _BOUND):
                raise ParameterError(f"expected a finite frame calibration {key} of {label!r} "
                                     f"within ±{_BOUND:g}, got {number!r}")
    return dict(value)
