"""Anomaly detectors as a model kind: normal sound per section, scored over a backend's frames.

Kind ``"anomaly"``. An :class:`AnomalyModel` holds, for each section (a machine type, a
recorder), a one-class detector fitted on the frame embeddings of its normal
recordings, the normalisation of its scores and its thresholds
(:class:`earmark.anomaly.SectionProfile`). Scores are normalised per section, so 0 is a
typical normal recording and the threshold sits where the chosen fraction of held-out
normal recordings lies above it. A section's recordings may come from several domains
(DCASE's source and target conditions): one detector per section still, but each domain
has its own location and threshold (:class:`earmark.anomaly.DomainProfile`), used when a
recording's domain is given.

Saved in the one file format as plain arrays (``arrays.npz``: every detector's fitted
arrays) and ``model.json`` (sections, normalisation, thresholds, backend identity); no
skops payload, nothing pickled. The reader checks every number is finite and every
array's shape against the detector's dimension.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ParameterError
from ..files import jsonable
from ._prediction import FileScores

__all__ = ["AnomalyModel", "KIND", "anomaly_defaults"]

KIND = "anomaly"
LABELS = ("normal", "anomalous")
#: What ``earmark anomaly fit`` uses when not told: the best combination on the
#: development benchmark (``benchmarks/anomaly.py``; README, "Anomalous sounds").
DEFAULTS = {"backend": "aisfx", "detector": "pca", "pooling": "mean"}
PROFILE_NUMBERS = ("clip_location", "clip_spread", "clip_threshold", "frame_location",
                    "frame_spread", "frame_threshold")


def anomaly_defaults() -> dict:
    """Backend, detector and pooling used when the user names none (a copy)."""
    return dict(DEFAULTS)


class AnomalyModel:
    """Normal sound of one or more sections, learned from normal recordings alone.

    Build one with :meth:`fit_files` (audio files) or :meth:`fit_bags` (frame
    embeddings). Scores are **higher for more anomalous** recordings, normalised per
    section (0: a typical normal recording; the threshold: the chosen false-alarm rate).

    Attributes
    ----------
    kind : str
        ``"anomaly"``.
    classes_ : np.ndarray [shape=(2,)]
        ``["normal", "anomalous"]``: what :func:`~earmark.models.predict_files` labels.
    sections : dict of str to SectionProfile
    backend_identity : dict
    detector, detector_params, pooling, false_alarm_rate
        How it was fitted.
    training : dict

    Examples
    --------
    >>> import numpy as np
    >>> from earmark.backends import get_backend
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(4, 16)) for _ in range(12)]
    >>> model = AnomalyModel.fit_bags(bags, backend=get_backend("placeholder"))
    >>> normal, odd = model.score_bags([rng.normal(size=(4, 16)), rng.normal(size=(4, 16)) + 3])
    >>> bool(odd > model.sections["default"].clip_threshold > normal)
    True
    """

    kind = KIND

    def __init__(self, sections: dict, *, backend_identity: dict, detector: str,
                 detector_params: dict | None = None, pooling: str = "mean",
                 false_alarm_rate: float = 0.1, training: dict | None = None):
        self.sections = dict(sections)
        self.backend_identity = dict(backend_identity)
        self.detector = detector
        self.detector_params = dict(detector_params or {})
        self.pooling = pooling
        self.false_alarm_rate = float(false_alarm_rate)
        self.training = dict(training or {})
        self.classes_ = np.array(LABELS)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit_bags(cls, bags, sections=None, groups=None, *, backend, domains=None,
                 detector: str = "knn", pooling: str = "mean", false_alarm_rate: float = 0.1,
                 min_items: int | None = None, notes=(), **detector_params) -> "AnomalyModel":
        """Fit from the frame embeddings of normal recordings.

        Parameters
        ----------
        bags : list of np.ndarray [shape=(n_frames_i, dimension)]
        sections : array-like [shape=(n_bags,)], optional
            Section of each recording; one section ``"default"`` if not given.
        groups : array-like [shape=(n_bags,)], optional
            Recordings held out together when thresholds are set (a machine, a recorder).
        backend : Backend or dict
            The backend (or its identity) that made the embeddings.
        domains : array-like [shape=(n_bags,)], optional
            Domain of each recording (``"source"``, ``"target"``; None or empty:
            ``"source"``). Each domain of a section gets its own location and threshold;
            one with fewer than :data:`earmark.anomaly.MIN_DOMAIN_ITEMS` recordings is
            refused by section and domain.
        detector : {"knn", "gaussian", "mixture", "pca"}
        pooling : {"mean", "max", "clip"}
        false_alarm_rate : float
        min_items : int, optional
            Fewest normal recordings per section (:data:`earmark.anomaly.MIN_NORMAL_ITEMS`).
        notes : sequence of str
            Recorded in the training summary (e.g. files skipped).
        **detector_params
            Passed to :func:`earmark.anomaly.make_detector`.
        """
        from .. import __version__
        from ..anomaly import MIN_NORMAL_ITEMS, fit_section, make_detector
        from ._embedding_model import check_matrix

        identity = backend if isinstance(backend, dict) else backend.identity()
        bags = [check_matrix(bag, identity.get("dimension")) for bag in bags]
        sections = np.array(["default"] * len(bags) if sections is None else
                            [str(s) for s in sections], dtype=object)
        groups = np.arange(len(bags)) if groups is None else np.asarray(groups)
        domains = np.array([None] * len(bags) if domains is None else list(domains), dtype=object)
        if sections.shape != (len(bags),) or groups.shape != (len(bags),) or domains.shape != (len(bags),):
            raise ParameterError(f"expected one section, group and domain per recording ({len(bags)})")
        template = make_detector(detector, **detector_params)
        profiles = {}
        for name in sorted(set(sections.tolist())):
            where = np.flatnonzero(sections == name)
            profiles[name] = fit_section(
                name, [bags[i] for i in where], detector=template, pooling=pooling,
                groups=groups[where], domains=domains[where], false_alarm_rate=false_alarm_rate,
                min_items=MIN_NORMAL_ITEMS if min_items is None else min_items,
            )
        training = {
            "n_items": len(bags),
            "n_frames": int(sum(len(bag) for bag in bags)),
            "sections": {name: {"n_items": p.n_items, "n_frames": p.n_frames, "n_groups": p.n_groups,
                                "domains": {d.name: d.n_items for d in p.domains.values()}}
                         for name, p in profiles.items()},
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "earmark_version": __version__,
            "notes": list(notes),
        }
        return cls(profiles, backend_identity=identity, detector=detector,
                   detector_params=detector_params, pooling=pooling,
                   false_alarm_rate=false_alarm_rate, training=training)

    @classmethod
    def fit_files(cls, paths, sections=None, groups=None, *, backend, domains=None,
                  progress: bool = False, **kwargs) -> "AnomalyModel":
        """Fit from normal audio files; unreadable files are skipped and named.

        Parameters
        ----------
        paths : list of str or Path
        sections, groups, domains : array-like, optional
            As for :meth:`fit_bags`, one per path.
        backend : Backend
        **kwargs
            Passed to :meth:`fit_bags`.

        Warns
        -----
        UserWarning
            Naming each skipped file and why.
        """
        import warnings

        from ..pipeline import frame_bags

        paths = [str(p) for p in paths]
        bags, ok, reasons = frame_bags(paths, backend)
        notes = [f"skipped {paths[i]}: {reason}" for i, reason in zip(np.flatnonzero(~ok), reasons)]
        for note in notes:
            warnings.warn(note, stacklevel=2)

        def keep(values):
            return None if values is None else np.asarray(values, dtype=object)[ok]

        model = cls.fit_bags(bags, keep(sections), keep(groups), backend=backend, domains=keep(domains),
                             notes=kwargs.pop("notes", ()) + tuple(notes), **kwargs)
        model.fit_baseline([p for p, good in zip(paths, ok) if good], keep(sections))
        return model

    def fit_baseline(self, paths, sections=None) -> "AnomalyModel":
        """Fit the high-pass baseline of each section on its normal recordings.

        The signal-processing check of :class:`earmark.anomaly.HighPassBaseline`,
        stored with the model so that evaluations report it beside the detector.
        """
        from ..anomaly import HighPassBaseline

        from ..anomaly import file_band_levels

        levels = file_band_levels([str(p) for p in paths])
        sections = np.array(["default"] * len(paths) if sections is None else
                            [str(s) for s in sections], dtype=object)
        for name, profile in self.sections.items():
            rows = [row for row, section in zip(levels, sections) if section == name and row is not None]
            if len(rows) >= 2:
                fitted = HighPassBaseline().fit(np.stack(rows))
                profile.baseline = {"cutoff_hz": fitted.cutoff_hz_, "mean": fitted.mean_,
                                    "std": fitted.std_}
        return self

    def baseline_scores(self, paths, section=None) -> np.ndarray:
        """The high-pass baseline's score of each file (NaN where unreadable or not fitted).

        Parameters
        ----------
        paths : list of str
        section : str or sequence of str, optional
            Unknown: the lowest score over the sections.

        Returns
        -------
        np.ndarray [shape=(n_files,)]
        """
        from ..anomaly import CUTOFFS_HZ, file_band_levels

        paths = [str(p) for p in paths]
        per = [section] * len(paths) if section is None or isinstance(section, str) else list(section)
        scores = np.full(len(paths), np.nan)
        for index, row in enumerate(file_band_levels(paths)):
            if row is None:
                continue
            profiles = self._profiles(per[index])
            values = [abs(row[list(CUTOFFS_HZ).index(p.baseline["cutoff_hz"])] - p.baseline["mean"])
                      / p.baseline["std"] for p in profiles if p.baseline]
            if values:
                scores[index] = min(values)
        return scores

    # ----------------------------------------------------------------- scoring
    def _profiles(self, section) -> list:
        if section is None:
            return list(self.sections.values())
        if str(section) not in self.sections:
            raise ParameterError(f"the model has no section {section!r}; it has "
                                 f"{', '.join(self.sections)}")
        return [self.sections[str(section)]]

    def score_bags(self, bags, section=None, *, domain=None, with_section: bool = False,
                   with_domain: bool = False):
        """Normalised anomaly score of each recording's frame embeddings.

        Parameters
        ----------
        bags : list of np.ndarray [shape=(n_frames_i, dimension)]
        section : str or sequence of str, optional
            The recordings' section (one for all, or one each). Unknown: each recording
            is scored against every section and keeps its lowest score (the section it
            sounds most like).
        domain : str or sequence of str, optional
            The recordings' domain (one for all, or one each; None where unknown). Scores
            are shifted to the domain's own normal recordings. Unknown: the domain of the
            nearest normal recording (:meth:`earmark.anomaly.SectionProfile.domain`).
        with_section, with_domain : bool
            Also return the section, the domain, each score came from.

        Returns
        -------
        scores : np.ndarray [shape=(n_bags,)]
        sections : np.ndarray [shape=(n_bags,)], if ``with_section``
        domains : np.ndarray [shape=(n_bags,)], if ``with_domain``
        """
        scores, sections, domains = self._score(bags, section, domain)
        extra = ((sections,) if with_section else ()) + ((domains,) if with_domain else ())
        return (scores, *extra) if extra else scores

    def _score(self, bags, section, domain):
        """Scores, sections and domains of each bag (see :meth:`score_bags`)."""
        from ..anomaly import pooled_scores
        from ._embedding_model import check_matrix

        dimension = self.backend_identity.get("dimension")
        bags = [check_matrix(bag, dimension).astype(np.float64) for bag in bags]
        per = _per_item(section, len(bags), "sections")
        domains = _per_item(domain, len(bags), "domains")
        if domains is None:
            domains = np.array([domain] * len(bags), dtype=object)
        scores = np.full(len(bags), np.inf)
        chosen = np.empty(len(bags), dtype=object)
        chosen_domain = np.empty(len(bags), dtype=object)
        for profile in self._profiles(None if per is not None else section):
            index = np.arange(len(bags)) if per is None else np.flatnonzero(per == profile.name)
            if not len(index):
                continue
            raw, _ = pooled_scores(profile.detector, [bags[i] for i in index], self.pooling)
            for position, item in enumerate(index):
                kept = profile.domain(domains[item], like=bags[item].mean(axis=0))
                z = float(profile.normalise_clip(raw[position], kept.name))
                if z < scores[item]:
                    scores[item], chosen[item], chosen_domain[item] = z, profile.name, kept.name
        if per is not None:
            missing = sorted(set(per.tolist()) - set(self.sections))
            if missing:
                raise ParameterError(f"the model has no section {missing[0]!r}; it has "
                                     f"{', '.join(self.sections)}")
        return scores, chosen, chosen_domain

    def frame_scores(self, X, section=None, domain=None) -> np.ndarray:
        """Normalised anomaly score of each frame of one recording.

        Parameters
        ----------
        X : np.ndarray [shape=(n_frames, dimension)]
        section : str, optional
            Unknown: the lowest over sections, frame by frame.
        domain : str, optional
            Unknown: in each section, the domain of the normal recording nearest to the
            recording's mean frame.

        Returns
        -------
        np.ndarray [shape=(n_frames,)]
        """
        from ._embedding_model import check_matrix

        X = check_matrix(X, self.backend_identity.get("dimension")).astype(np.float64)
        scores = [p.normalise_frames(p.detector.score_samples(X),
                                     p.domain(domain, like=X.mean(axis=0), frames=True).name)
                  for p in self._profiles(section)]
        return np.min(scores, axis=0)

    def frame_threshold(self, section=None, domain=None, *, like=None) -> float:
        """Frame score threshold (the highest over the sections considered); ``like``: the
        recording's mean frame embedding, to infer its domain when not given."""
        return max(p.domain(domain, like=like, frames=True).frame_threshold
                   for p in self._profiles(section))

    def segments(self, path, *, section=None, domain=None, backend=None, threshold: float | None = None,
                 median_frames: int = 1, min_duration_s: float = 0.0, merge_gap_s: float = 0.0):
        """Anomalous stretches of a (long) recording, as events labelled ``"anomaly"``.

        Frames scored above the section's frame threshold (set at the model's false-alarm
        rate on held-out normal frames) become events through
        :func:`earmark.detection.frames_to_events`.

        Returns
        -------
        events : list of Event
        scores : np.ndarray [shape=(n_frames,)]
        start_s, end_s : np.ndarray [shape=(n_frames,)]
        """
        from ..detection.events import frames_to_events
        from ..embedding import embed_file

        backend = backend if backend is not None else self.backend()
        frames = embed_file(backend, path)
        scores = self.frame_scores(frames.X, section, domain)
        level = self.frame_threshold(section, domain, like=frames.X.mean(axis=0)) \
            if threshold is None else float(threshold)
        events = frames_to_events(scores[:, None], frames.start_s, frames.end_s, ["anomaly"],
                                  threshold=level, median_frames=median_frames,
                                  min_duration_s=min_duration_s, merge_gap_s=merge_gap_s,
                                  path=path)
        return events, scores, frames.start_s, frames.end_s

    def backend(self, *, strict: bool = True, params: dict[str, Any] | None = None):
        """The backend the model was fitted with, rebuilt from its identity."""
        from ..backends import from_identity

        source = getattr(self, "source_", None) or "this anomaly model"
        return from_identity(self.backend_identity, params=params, strict=strict, source=source)

    def score_files(self, paths, *, store=None, backend=None, progress: bool = False,
                    section=None, domain=None) -> FileScores:
        """Scores of audio files for :func:`~earmark.models.predict_files`.

        ``P`` is one-hot (``anomalous`` where the score reaches the threshold of the
        section and domain); each prediction's extras hold ``anomaly_score``,
        ``threshold``, ``section`` and ``domain``.
        """
        from ..pipeline import frame_bags

        paths = [str(p) for p in paths]
        backend = backend if backend is not None else self.backend()
        bags, ok, reasons = frame_bags(paths, backend)
        errors: list[str | None] = [None] * len(paths)
        failed = iter(reasons)
        for index in np.flatnonzero(~ok):
            errors[index] = f"{paths[index]}: {next(failed, 'could not be read')}"
        if section is not None and not isinstance(section, str):
            section = np.asarray(section, dtype=object)[ok]
        if domain is not None and not isinstance(domain, str):
            domain = np.asarray(domain, dtype=object)[ok]
        if not bags:
            return FileScores(np.zeros((0, 2)), ok, errors, extra=[], has_proba=False)
        scores, chosen, domains = self._score(bags, section, domain)
        thresholds = np.array([self.sections[name].domains[d].clip_threshold
                               for name, d in zip(chosen, domains)])
        anomalous = scores >= thresholds
        P = np.stack([~anomalous, anomalous], axis=1).astype(np.float64)
        extra = [{"anomaly_score": float(s), "threshold": float(t), "section": str(name),
                  "domain": str(d), "anomalous": bool(a)}
                 for s, t, name, d, a in zip(scores, thresholds, chosen, domains, anomalous)]
        return FileScores(P, ok, errors, extra=extra, has_proba=False)

    def score_rows(self, paths, *, section=None, domain=None, backend=None, store=None) -> list[dict]:
        """One row per file: ``path, score, anomalous, threshold, section, domain, error``.

        ``score`` is the normalised anomaly score (higher = more anomalous); an unreadable
        file gets ``score`` None and its ``error``. ``domain`` is the one whose threshold
        applied (the given one, or the one inferred from the recording when not given).
        """
        paths = [str(p) for p in paths]
        scores = self.score_files(paths, backend=backend, store=store, section=section, domain=domain)
        extras = iter(scores.extra or [])
        rows = []
        for path, ok, error in zip(paths, scores.ok, scores.errors):
            extra = next(extras) if ok else {}
            rows.append({"path": path, "score": extra.get("anomaly_score"),
                         "anomalous": extra.get("anomalous"), "threshold": extra.get("threshold"),
                         "section": extra.get("section"), "domain": extra.get("domain"),
                         "error": error})
        return rows

    # ------------------------------------------------------------------ saving
    def metadata(self) -> dict[str, Any]:
        """What ``model.json`` holds."""
        return {
            "kind": KIND,
            "classes": list(LABELS),
            "learner": f"anomaly-{self.detector}",
            "detector": self.detector,
            "detector_params": self.detector_params,
            "pooling": self.pooling,
            "false_alarm_rate": self.false_alarm_rate,
            "backend": self.backend_identity,
            "sections": [
                {"name": p.name, **{key: float(getattr(p, key)) for key in PROFILE_NUMBERS},
                 "n_items": p.n_items, "n_frames": p.n_frames, "n_groups": p.n_groups,
                 "baseline": p.baseline,
                 "domains": [{"name": d.name, "n_items": d.n_items,
                              **{key: float(getattr(d, key)) for key in d.NUMBERS}}
                             for d in p.domains.values()]}
                for p in self.sections.values()
            ],
            "training": self.training,
        }

    def save(self, path) -> Path:
        """Write the model to one file (arrays and JSON only), atomically."""
        from ._container import write_container

        arrays = {}
        for index, profile in enumerate(self.sections.values()):
            for name, value in profile.detector.get_state().items():
                arrays[f"section{index}/{name}"] = value
            arrays[f"section{index}/out_of_fold"] = profile.out_of_fold
            if profile.domain_examples is not None:
                arrays[f"section{index}/domain_examples"] = profile.domain_examples
                arrays[f"section{index}/domain_labels"] = profile.domain_labels
        return write_container(path, jsonable(self.metadata()), arrays=arrays)

    def __repr__(self) -> str:
        return (f"AnomalyModel(detector={self.detector!r}, pooling={self.pooling!r}, "
                f"backend={self.backend_identity.get('backend')!r}, sections={list(self.sections)})")


def _per_item(values, n: int, what: str):
    """``values`` as one entry per item when it is a sequence; None when it is one value."""
    if values is None or isinstance(values, str) or np.ndim(values) != 1:
        return None
    per = np.asarray([None if v is None else str(v) for v in values], dtype=object)
    if per.shape != (n,):
        raise ParameterError(f"expected {n} {what}, got {per.shape[0]}")
    return per
