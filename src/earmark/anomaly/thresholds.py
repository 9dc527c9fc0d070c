"""A section's normal profile: detector, score normalisation and thresholds, from normal data alone.

A detector fitted on the normal recordings of one section (machine type, recorder)
scores its own training recordings too well (a nearest neighbour is itself), so the
spread of *normal* scores and the threshold are measured out of fold: the normal
recordings are split by group (a machine, a recorder, a speaker; each file its own
group by default) into folds, each fold scored by a detector fitted on the others. The
final detector is then fitted on all of them.

Scores are normalised by those out-of-fold normal scores: ``(score - median) / spread``,
so 0 is a typical normal recording of the section and the sections' scores are on one
scale. The threshold is the ``1 - false_alarm_rate`` quantile of the out-of-fold normal
scores: on new normal recordings like these, about that fraction is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from ..exceptions import ParameterError

__all__ = ["POOLINGS", "SectionProfile", "fit_section", "pooled_scores", "threshold_at",
           "MIN_NORMAL_ITEMS"]

#: How a recording's frame scores become its score: the mean or the maximum of its frame
#: scores, or the detector's score of its mean frame embedding (``"clip"``).
POOLINGS = ("mean", "max", "clip")

#: Fewest normal recordings a section may be fitted on (two folds of at least two).
MIN_NORMAL_ITEMS = 4


def threshold_at(scores, false_alarm_rate: float) -> float:
    """The score above which a fraction ``false_alarm_rate`` of normal ``scores`` lies.

    Parameters
    ----------
    scores : np.ndarray [shape=(n,)]
        Scores of normal recordings not used to fit the detector.
    false_alarm_rate : float
        In (0, 1).

    Examples
    --------
    >>> threshold_at(np.arange(101.0), 0.1)
    90.0
    """
    if not 0 < false_alarm_rate < 1:
        raise ParameterError(f"expected false_alarm_rate in (0, 1), got {false_alarm_rate!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ParameterError("no normal scores to set a threshold on")
    return float(np.quantile(scores, 1.0 - false_alarm_rate))


def pooled_scores(detector, bags, pooling: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Raw score of each recording and of each of its frames.

    Parameters
    ----------
    detector : fitted detector (:mod:`earmark.anomaly.detectors`)
    bags : list of np.ndarray [shape=(n_frames_i, dimension)]
    pooling : {"mean", "max", "clip"}

    Returns
    -------
    clip : np.ndarray [shape=(n_bags,)]
    frames : list of np.ndarray [shape=(n_frames_i,)]
    """
    if pooling not in POOLINGS:
        raise ParameterError(f"expected pooling in {POOLINGS}, got {pooling!r}")
    if not bags:
        return np.zeros(0), []
    counts = [len(bag) for bag in bags]
    frame = detector.score_samples(np.concatenate(bags))
    frames = np.split(frame, np.cumsum(counts)[:-1])
    if pooling == "clip":
        clip = detector.score_samples(np.stack([bag.mean(axis=0) for bag in bags]))
    elif pooling == "max":
        clip = np.array([f.max() for f in frames])
    else:
        clip = np.array([f.mean() for f in frames])
    return clip, frames


def _training_rows(bags, pooling: str) -> np.ndarray:
    return np.stack([bag.mean(axis=0) for bag in bags]) if pooling == "clip" else np.concatenate(bags)


@dataclass
class SectionProfile:
    """What an anomaly model knows about one section's normal sound.

    Attributes
    ----------
    name : str
    detector : fitted detector, on all the section's normal recordings
    clip_location, clip_spread : float
        Median and spread of out-of-fold normal recording scores (the normalisation).
    clip_threshold : float
        Normalised recording score at the chosen false-alarm rate.
    frame_location, frame_spread, frame_threshold : float
        The same for single frames (anomalous segments of long recordings).
    n_items, n_frames, n_groups : int
    out_of_fold : np.ndarray [shape=(n_items,)]
        Normalised out-of-fold scores of the normal recordings.
    baseline : dict or None
        The high-pass baseline fitted on the same recordings (``cutoff_hz``, ``mean``,
        ``std``; :class:`earmark.anomaly.HighPassBaseline`), reported beside the detector.
    """

    name: str
    detector: object
    clip_location: float
    clip_spread: float
    clip_threshold: float
    frame_location: float
    frame_spread: float
    frame_threshold: float
    n_items: int
    n_frames: int
    n_groups: int
    out_of_fold: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    baseline: dict | None = None

    def normalise_clip(self, raw) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64) - self.clip_location) / self.clip_spread

    def normalise_frames(self, raw) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64) - self.frame_location) / self.frame_spread


def _spread(scores: np.ndarray) -> tuple[float, float]:
    location = float(np.median(scores))
    low, high = np.quantile(scores, [0.25, 0.75])
    # IQR / 1.349 is the standard deviation of a normal distribution, robust to the odd
    # unusual normal recording; the std and an absolute floor cover tiny normal sets.
    spread = max(float(high - low) / 1.349, 0.5 * float(np.std(scores)), 1e-9)
    return location, spread


def fit_section(name: str, bags, *, detector, pooling: str = "mean", groups=None,
                false_alarm_rate: float = 0.1, n_folds: int = 5,
                min_items: int = MIN_NORMAL_ITEMS) -> SectionProfile:
    """Fit a detector on one section's normal recordings and set its thresholds.

    Parameters
    ----------
    name : str
        The section, named in errors.
    bags : list of np.ndarray [shape=(n_frames_i, dimension)]
        Frame embeddings of each normal recording.
    detector : unfitted detector (cloned for each fold)
    pooling : {"mean", "max", "clip"}
    groups : array-like [shape=(n_items,)], optional
        Recordings of one group are held out together; each its own group by default.
    false_alarm_rate : float
    n_folds : int
        At most; fewer when there are fewer groups.
    min_items : int

    Returns
    -------
    SectionProfile

    Raises
    ------
    ParameterError
        Fewer than ``min_items`` recordings or fewer than two groups, naming the section.
    """
    from sklearn.model_selection import GroupKFold

    if pooling not in POOLINGS:
        raise ParameterError(f"expected pooling in {POOLINGS}, got {pooling!r}")
    bags = [np.asarray(bag, dtype=np.float64) for bag in bags]
    if len(bags) < min_items:
        raise ParameterError(
            f"section {name!r} has {len(bags)} usable normal recording(s); at least "
            f"{min_items} are needed to fit a detector and set its threshold"
        )
    groups = np.arange(len(bags)) if groups is None else np.asarray(groups)
    if groups.shape != (len(bags),):
        raise ParameterError(f"section {name!r}: expected {len(bags)} groups, got {groups.shape}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ParameterError(f"section {name!r}: all normal recordings are one group; "
                             f"at least two are needed to hold some out")
    clip_oof = np.zeros(len(bags))
    frame_oof: list[np.ndarray] = []
    for train, test in GroupKFold(n_splits=min(n_folds, n_groups)).split(bags, groups=groups):
        fold = clone(detector).fit(_training_rows([bags[i] for i in train], pooling))
        clip, frames = pooled_scores(fold, [bags[i] for i in test], pooling)
        clip_oof[test] = clip
        frame_oof += frames
    final = clone(detector).fit(_training_rows(bags, pooling))
    clip_location, clip_spread = _spread(clip_oof)
    frame_raw = np.concatenate(frame_oof)
    frame_location, frame_spread = _spread(frame_raw)
    normal = (clip_oof - clip_location) / clip_spread
    return SectionProfile(
        name=str(name), detector=final,
        clip_location=clip_location, clip_spread=clip_spread,
        clip_threshold=threshold_at(normal, false_alarm_rate),
        frame_location=frame_location, frame_spread=frame_spread,
        frame_threshold=threshold_at((frame_raw - frame_location) / frame_spread, false_alarm_rate),
        n_items=len(bags), n_frames=int(sum(len(b) for b in bags)), n_groups=int(n_groups),
        out_of_fold=normal,
    )
