"""Reading an anomaly model back from the one file format, checking every number.

The reader's last step for kind ``"anomaly"`` (:mod:`earmark.models._files`): the
metadata and arrays were already checked for size, hash and dtype; here every detector
state, normalisation, domain threshold and baseline is checked before a model is built.
Files written before domains existed (no ``domains`` list) load as one ``"source"``
domain per section.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ModelFileError, ParameterError
from ._anomaly_model import LABELS, PROFILE_NUMBERS, AnomalyModel

__all__ = ["anomaly_from_parts"]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def anomaly_from_parts(metadata: dict, arrays: dict[str, np.ndarray], *, where: str) -> AnomalyModel:
    """Build from a file's checked metadata and arrays (the reader's last step).

    Raises
    ------
    ModelFileError
        Unknown detector or pooling, missing or non-finite numbers, arrays whose shapes
        do not match, sections that are not a list of named profiles.
    """
    from ..anomaly import DETECTORS, POOLINGS, SectionProfile

    detector = metadata.get("detector")
    if detector not in DETECTORS:
        raise ModelFileError(f"{where}: unknown anomaly detector {detector!r}")
    if metadata.get("pooling") not in POOLINGS:
        raise ModelFileError(f"{where}: unknown pooling {metadata.get('pooling')!r}")
    rate = metadata.get("false_alarm_rate")
    if not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise ModelFileError(f"{where}: false_alarm_rate {rate!r} is not in (0, 1)")
    if list(metadata.get("classes", [])) != list(LABELS):
        raise ModelFileError(f"{where}: an anomaly model's classes must be {list(LABELS)}")
    params = metadata.get("detector_params") or {}
    cls = DETECTORS[detector]
    if not isinstance(params, dict) or not set(params) <= set(cls().get_params()):
        raise ModelFileError(f"{where}: detector parameters {params!r} are not {detector}'s")
    sections = metadata.get("sections")
    if not isinstance(sections, list) or not sections:
        raise ModelFileError(f"{where}: an anomaly model without sections")
    profiles = {}
    for index, record in enumerate(sections):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise ModelFileError(f"{where}: section {index} is not a named profile")
        numbers = {key: record.get(key) for key in PROFILE_NUMBERS}
        if not all(_finite(v) for v in numbers.values()) or numbers["clip_spread"] <= 0 \
                or numbers["frame_spread"] <= 0:
            raise ModelFileError(f"{where}: section {record['name']!r} has missing or non-finite "
                                 f"normal-set statistics")
        prefix = f"section{index}/"
        state = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        try:
            fitted = cls.from_state(params, state)
        except (ParameterError, TypeError) as error:
            raise ModelFileError(f"{where}: section {record['name']!r}: {error}") from None
        out_of_fold = np.asarray(state.get("out_of_fold", np.zeros(0)), dtype=np.float64)
        baseline = record.get("baseline")
        if baseline is not None:
            from ..anomaly import CUTOFFS_HZ

            values = [baseline.get(k) if isinstance(baseline, dict) else None
                      for k in ("cutoff_hz", "mean", "std")]
            if not all(_finite(v) for v in values) or values[0] not in CUTOFFS_HZ or values[2] <= 0:
                raise ModelFileError(f"{where}: section {record['name']!r} has an invalid baseline")
        profiles[record["name"]] = SectionProfile(
            name=record["name"], detector=fitted, **{k: float(v) for k, v in numbers.items()},
            n_items=int(record.get("n_items", 0)), n_frames=int(record.get("n_frames", 0)),
            n_groups=int(record.get("n_groups", 0)), out_of_fold=out_of_fold, baseline=baseline,
            domains=_domains(record, where),
        )
        _domain_examples(profiles[record["name"]], state, where)
    identity = metadata["backend"]
    dimension = identity.get("dimension")
    for profile in profiles.values():
        if dimension is not None and profile.detector.n_features_in_ != dimension:
            raise ModelFileError(f"{where}: section {profile.name!r} expects dimension "
                                 f"{profile.detector.n_features_in_}, the backend gives {dimension}")
    model = AnomalyModel(profiles, backend_identity=identity, detector=detector,
                         detector_params=params, pooling=metadata["pooling"],
                         false_alarm_rate=float(rate), training=metadata.get("training") or {})
    model.source_ = where
    return model


def _domains(record: dict, where: str) -> dict:
    """A section's domain profiles; empty (one default domain) for files without them."""
    from ..anomaly import DomainProfile

    domains = record.get("domains")
    if domains is None:
        return {}
    if not isinstance(domains, list) or not domains:
        raise ModelFileError(f"{where}: section {record['name']!r}: domains must be a non-empty list")
    profiles = {}
    for entry in domains:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"] \
                or entry["name"] in profiles:
            raise ModelFileError(f"{where}: section {record['name']!r} has an unnamed or repeated domain")
        values = {key: entry.get(key) for key in DomainProfile.NUMBERS}
        n_items = entry.get("n_items")
        if not all(_finite(v) for v in values.values()) or not isinstance(n_items, int) \
                or isinstance(n_items, bool) or n_items < 1:
            raise ModelFileError(f"{where}: section {record['name']!r} domain {entry['name']!r} "
                                 f"has missing or non-finite numbers")
        profiles[entry["name"]] = DomainProfile(entry["name"], n_items,
                                                **{k: float(v) for k, v in values.items()})
    return profiles


def _domain_examples(profile, state: dict, where: str) -> None:
    """The examples that tell an unnamed recording's domain; optional (without them an
    unknown domain gets the most lenient threshold), checked when present."""
    examples, labels = state.get("domain_examples"), state.get("domain_labels")
    if examples is None and labels is None:
        return
    d = profile.detector.n_features_in_
    examples = np.asarray(examples) if examples is not None else None
    labels = np.asarray(labels) if labels is not None else None
    if examples is None or labels is None or examples.ndim != 2 or examples.shape[1] != d \
            or labels.shape != (len(examples),) or labels.dtype.kind not in "iu" \
            or examples.dtype.kind != "f" or not np.isfinite(examples).all() \
            or not len(labels) or labels.min() < 0 or labels.max() >= len(profile.domains):
        raise ModelFileError(f"{where}: section {profile.name!r} has inconsistent domain examples")
    profile.domain_examples = examples.astype(np.float64)
    profile.domain_labels = labels.astype(np.int64)
