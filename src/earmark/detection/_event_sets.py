"""Reference and estimated events, checked where they enter and grouped by file.

Shared by :mod:`earmark.detection.metrics` and :mod:`earmark.detection.psd_score`. An
event is any object with ``label``, ``onset_s`` and ``offset_s`` attributes (and
optionally ``path``), a mapping with those keys (``event_label``, ``onset``,
``offset`` and ``filename`` or ``file`` are accepted too, as in DCASE files), or a row
of a pandas DataFrame with those columns. Events without a path all belong to one
unnamed file, so a single recording can be scored without naming it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError

_KEYS = {
    "label": ("label", "event_label"),
    "onset_s": ("onset_s", "onset"),
    "offset_s": ("offset_s", "offset"),
    "path": ("path", "file", "filename"),
}


@dataclass(frozen=True)
class FileEvents:
    """The events of one file, as parallel arrays."""

    labels: np.ndarray  # [shape=(n,), dtype=object]
    onset_s: np.ndarray  # [shape=(n,), dtype=float64]
    offset_s: np.ndarray  # [shape=(n,), dtype=float64]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> FileEvents:
        return FileEvents(self.labels[keep], self.onset_s[keep], self.offset_s[keep])


EMPTY = FileEvents(np.zeros(0, dtype=object), np.zeros(0), np.zeros(0))


def file_key(path) -> str:
    """How a path is compared between reference and estimate: normalised text."""
    if path is None or (isinstance(path, float) and math.isnan(path)):  # empty cell
        return ""
    return os.path.normpath(os.fspath(path))


def _field(event, name: str, where: str, required: bool = True):
    for key in _KEYS[name]:
        if isinstance(event, Mapping):
            if key in event and event[key] is not None:
                return event[key]
        elif getattr(event, key, None) is not None:
            return getattr(event, key)
    if required:
        raise ParameterError(f"{where}: expected a {' or '.join(_KEYS[name])}, got {event!r}")
    return None


def by_file(events, name: str) -> dict[str, FileEvents]:
    """Group ``events`` by file; ``name`` ("reference", "estimated") is for messages."""
    if events is None:
        return {}
    if hasattr(events, "to_dict") and hasattr(events, "columns"):  # a DataFrame
        events = events.to_dict("records")
    rows: dict[str, list] = {}
    for index, event in enumerate(events):
        where = f"{name} event {index}"
        label = _field(event, "label", where)
        try:
            onset = float(_field(event, "onset_s", where))
            offset = float(_field(event, "offset_s", where))
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: expected numeric onset and offset, got {event!r}")
        if not (math.isfinite(onset) and math.isfinite(offset) and 0 <= onset <= offset):
            raise ParameterError(
                f"{where}: expected 0 <= onset_s <= offset_s, got {onset}, {offset}")
        key = file_key(_field(event, "path", where, required=False))
        rows.setdefault(key, []).append((str(label), onset, offset))
    return {
        key: FileEvents(np.array([r[0] for r in items], dtype=object),
                        np.array([r[1] for r in items], dtype=np.float64),
                        np.array([r[2] for r in items], dtype=np.float64))
        for key, items in rows.items()
    }


def warn_if_disjoint(reference: dict, estimated: dict) -> None:
    """Paths written two ways (relative and absolute) would silently score zero."""
    if reference and estimated and not set(reference) & set(estimated):
        warnings.warn(
            "no file has both reference and estimated events: do the paths match? "
            f"(reference e.g. {next(iter(reference))!r}, "
            f"estimated e.g. {next(iter(estimated))!r})",
            stacklevel=3,
        )


def resolve_labels(labels: Sequence | None, *sides: dict[str, FileEvents]) -> list[str]:
    """The given labels (checked to cover every event), or every label seen, sorted."""
    seen = {str(label) for side in sides for events in side.values() for label in events.labels}
    if labels is None:
        return sorted(seen)
    labels = [str(label) for label in labels]
    unknown = sorted(seen - set(labels))
    if unknown:
        raise ParameterError(f"events have labels {unknown} not among labels={labels}")
    return labels


def json_safe(value):
    """Lists for arrays, ``None`` for NaN: what ``json.dumps`` writes as strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
