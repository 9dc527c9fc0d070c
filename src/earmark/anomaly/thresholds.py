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

**Domains** (DCASE 2022's domain shift): a section's normal recordings may come from
more than one condition, typically a plentiful *source* and a *target* with only a few
recordings (a new microphone, another operating speed). One detector is still fitted on
all of them, so the few target recordings join the normal set (as the source and target
memory bank of DCASE 2023's k-nearest-neighbour baseline), but each domain gets its own
location (the median of *its* out-of-fold normal scores, on the section's spread: ten
recordings cannot estimate a spread) and its own threshold (the quantile of its own
out-of-fold scores), so the false-alarm rate holds per domain instead of being set by the
source's many recordings. Measured on ``benchmarks/anomaly.py --domain-shift``: separate
detectors per domain (the target's fitted on its ten recordings alone) ranked worse,
and pooling everything under one threshold let the false-alarm rate and the hit rate
drift apart between domains (README, "Domain shift"). Folds are stratified by domain so
that every fold's detector has seen some target recordings. A recording whose domain
nobody gives takes the domain of its nearest normal recording (:meth:`SectionProfile.domain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from ..exceptions import ParameterError

__all__ = ["POOLINGS", "SectionProfile", "DomainProfile", "fit_section", "pooled_scores",
           "threshold_at", "MIN_NORMAL_ITEMS", "MIN_DOMAIN_ITEMS", "DEFAULT_DOMAIN"]

#: How a recording's frame scores become its score: the mean or the maximum of its frame
#: scores, or the detector's score of its mean frame embedding (``"clip"``).
POOLINGS = ("mean", "max", "clip")

#: Fewest normal recordings a section may be fitted on (two folds of at least two).
MIN_NORMAL_ITEMS = 4

#: Fewest normal recordings of one domain of a section: fewer cannot place a threshold
#: (a quantile of their out-of-fold scores), so fitting refuses, naming the section and
#: the domain, rather than silently holding the domain to another domain's threshold.
MIN_DOMAIN_ITEMS = 4

#: The domain of a recording nobody assigned one (DCASE's name for the plentiful one).
DEFAULT_DOMAIN = "source"


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
class DomainProfile:
    """Location and thresholds of one domain of a section, on the section's scale.

    Attributes
    ----------
    name : str
    n_items : int
        Normal recordings of this domain the section was fitted on.
    clip_shift, frame_shift : float
        Median out-of-fold normal score of the domain (recordings, frames), in the
        section's normalised units; subtracted, so 0 is a typical normal of the domain.
    clip_threshold, frame_threshold : float
        Shifted score at the chosen false-alarm rate on the domain's own normals.
    """

    name: str
    n_items: int
    clip_shift: float = 0.0
    clip_threshold: float = 0.0
    frame_shift: float = 0.0
    frame_threshold: float = 0.0

    #: Numbers stored in a model file.
    NUMBERS = ("clip_shift", "clip_threshold", "frame_shift", "frame_threshold")


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
    domains : dict of str to DomainProfile
        One per domain of the normal recordings (one, ``"source"``, with no shift and the
        section's thresholds, when no domains were given).
    domain_examples : np.ndarray [shape=(n_items, dimension)] or None
        With several domains: each normal recording's mean frame embedding, standardised
        as the detector standardises, to tell a recording's domain when nobody gives it.
    domain_labels : np.ndarray [shape=(n_items,), dtype=int] or None
        Index into ``domains`` of each example.
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
    domains: dict = field(default_factory=dict)
    domain_examples: np.ndarray | None = field(default=None, repr=False)
    domain_labels: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.domains:
            self.domains = {DEFAULT_DOMAIN: DomainProfile(
                DEFAULT_DOMAIN, self.n_items, clip_threshold=self.clip_threshold,
                frame_threshold=self.frame_threshold)}

    def domain(self, name=None, *, like=None, frames: bool = False) -> DomainProfile:
        """The profile of domain ``name``; unknown (None): inferred, or the most lenient.

        A recording of unknown domain whose mean frame embedding ``like`` is given takes
        the domain of the nearest normal recording (:attr:`domain_examples`): a new
        microphone or a noisier room is usually plain to hear, and DCASE 2022 does not
        say the domain at test time. (Dividing distances by each domain's own spacing,
        to favour the sparse target, told domains apart less often on the benchmark:
        aiSFX, another microphone, 0.90 of test recordings against 0.97.) Without
        ``like`` (or examples), it is held to the domain under which it looks most
        normal, the one whose threshold lies highest on the section's scale: never more
        false alarms than any domain's own rate, at the cost of missing anomalies of the
        stricter domain. A section fitted without domains has one, which every name gets
        (so a model without domains scores a test set with them).
        """
        if len(self.domains) == 1:
            return next(iter(self.domains.values()))
        if name is None and like is not None and self.domain_examples is not None:
            z = (np.asarray(like, dtype=np.float64) - self.detector.mean_) / self.detector.scale_
            nearest = int(np.argmin(((self.domain_examples - z) ** 2).sum(axis=1)))
            return list(self.domains.values())[int(self.domain_labels[nearest])]
        if name is None:
            key = (lambda d: d.frame_shift + d.frame_threshold) if frames else \
                (lambda d: d.clip_shift + d.clip_threshold)
            return max(self.domains.values(), key=key)
        if str(name) not in self.domains:
            raise ParameterError(f"section {self.name!r} has no domain {name!r}; it has "
                                 f"{', '.join(self.domains)}")
        return self.domains[str(name)]

    def normalise_clip(self, raw, domain=None) -> np.ndarray:
        """Recording scores on the section's scale, shifted to ``domain`` (a name, or None:
        the most lenient; see :meth:`domain`)."""
        shift = self.domain(domain).clip_shift
        return (np.asarray(raw, dtype=np.float64) - self.clip_location) / self.clip_spread - shift

    def normalise_frames(self, raw, domain=None) -> np.ndarray:
        shift = self.domain(domain, frames=True).frame_shift
        return (np.asarray(raw, dtype=np.float64) - self.frame_location) / self.frame_spread - shift


def _spread(scores: np.ndarray) -> tuple[float, float]:
    location = float(np.median(scores))
    low, high = np.quantile(scores, [0.25, 0.75])
    # IQR / 1.349 is the standard deviation of a normal distribution, robust to the odd
    # unusual normal recording; the std and an absolute floor cover tiny normal sets.
    spread = max(float(high - low) / 1.349, 0.5 * float(np.std(scores)), 1e-9)
    return location, spread


def fit_section(name: str, bags, *, detector, pooling: str = "mean", groups=None, domains=None,
                false_alarm_rate: float = 0.1, n_folds: int = 5,
                min_items: int = MIN_NORMAL_ITEMS,
                min_domain_items: int = MIN_DOMAIN_ITEMS) -> SectionProfile:
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
    domains : array-like [shape=(n_items,)], optional
        Each recording's domain (``"source"``, ``"target"``, ...); all ``"source"`` if
        not given. Each domain gets its own location and thresholds.
    false_alarm_rate : float
    n_folds : int
        At most; fewer when there are fewer groups.
    min_items, min_domain_items : int

    Returns
    -------
    SectionProfile

    Raises
    ------
    ParameterError
        Fewer than ``min_items`` recordings or fewer than two groups, naming the section;
        a domain with fewer than ``min_domain_items``, naming the section and the domain.

    Examples
    --------
    >>> from earmark.anomaly import make_detector
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(3, 4)) for _ in range(30)] + [rng.normal(size=(3, 4)) + 4 for _ in range(8)]
    >>> profile = fit_section("fan", bags, detector=make_detector("knn"),
    ...                       domains=["source"] * 30 + ["target"] * 8)
    >>> sorted(profile.domains), profile.domains["target"].n_items
    (['source', 'target'], 8)
    """
    import warnings

    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

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
    domains = np.array([DEFAULT_DOMAIN] * len(bags) if domains is None else
                       [DEFAULT_DOMAIN if d is None or str(d) == "" else str(d) for d in domains])
    if domains.shape != (len(bags),):
        raise ParameterError(f"section {name!r}: expected {len(bags)} domains, got {domains.shape}")
    names, counts = np.unique(domains, return_counts=True)
    names = [str(n) for n in names]
    for domain, count in zip(names, counts.tolist()):
        if count < min_domain_items:
            raise ParameterError(
                f"section {name!r} domain {domain!r} has {count} usable normal recording(s); "
                f"at least {min_domain_items} are needed to set the domain's own threshold "
                f"(add recordings, or leave their domain empty to count them as "
                f"{DEFAULT_DOMAIN!r})")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ParameterError(f"section {name!r}: all normal recordings are one group; "
                             f"at least two are needed to hold some out")
    n_splits = min(n_folds, n_groups)
    if len(names) > 1:
        splits = StratifiedGroupKFold(n_splits=n_splits).split(bags, domains, groups=groups)
    else:
        splits = GroupKFold(n_splits=n_splits).split(bags, groups=groups)
    clip_oof = np.zeros(len(bags))
    frame_oof: list = [None] * len(bags)
    with warnings.catch_warnings():
        # StratifiedGroupKFold warns when a domain has fewer recordings than folds: the
        # few-target case this is for.
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(splits)
    for train, test in splits:
        fold = clone(detector).fit(_training_rows([bags[i] for i in train], pooling))
        clip, frames = pooled_scores(fold, [bags[i] for i in test], pooling)
        clip_oof[test] = clip
        for index, scores in zip(test, frames):
            frame_oof[index] = scores
    final = clone(detector).fit(_training_rows(bags, pooling))
    clip_location, clip_spread = _spread(clip_oof)
    frame_raw = np.concatenate(frame_oof)
    frame_location, frame_spread = _spread(frame_raw)
    normal = (clip_oof - clip_location) / clip_spread
    frame_normal = [(f - frame_location) / frame_spread for f in frame_oof]
    profile = SectionProfile(
        name=str(name), detector=final,
        clip_location=clip_location, clip_spread=clip_spread,
        clip_threshold=threshold_at(normal, false_alarm_rate),
        frame_location=frame_location, frame_spread=frame_spread,
        frame_threshold=threshold_at(np.concatenate(frame_normal), false_alarm_rate),
        n_items=len(bags), n_frames=int(sum(len(b) for b in bags)), n_groups=int(n_groups),
        out_of_fold=normal,
    )
    if len(names) > 1:
        profile.domains = {}
        for domain in names:
            where = np.flatnonzero(domains == domain)
            clip, frame = normal[where], np.concatenate([frame_normal[i] for i in where])
            clip_shift, frame_shift = float(np.median(clip)), float(np.median(frame))
            profile.domains[domain] = DomainProfile(
                domain, len(where),
                clip_shift=clip_shift, clip_threshold=threshold_at(clip - clip_shift, false_alarm_rate),
                frame_shift=frame_shift,
                frame_threshold=threshold_at(frame - frame_shift, false_alarm_rate))
        means = np.stack([bag.mean(axis=0) for bag in bags])
        profile.domain_examples = (means - final.mean_) / final.scale_
        profile.domain_labels = np.array([names.index(d) for d in domains])
    else:
        profile.domains = {names[0]: DomainProfile(
            names[0], len(bags), clip_threshold=profile.clip_threshold,
            frame_threshold=profile.frame_threshold)}
    return profile
