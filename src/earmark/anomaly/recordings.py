"""Which recordings a user means: a folder of audio, or a manifest with sections and labels.

``earmark anomaly fit NORMAL/`` and ``evaluate TEST/`` take either

* a folder: every audio file under it; files inside a first-level sub-folder belong to
  the section named after it (``NORMAL/fan/*.wav``, ``NORMAL/pump/*.wav``), files
  directly in the folder to section ``"default"``; or
* a CSV manifest with a ``path`` column (relative to the CSV's folder), and optionally
  ``section``, ``group`` (recordings held out together: a machine, a recorder),
  ``domain`` (the recording condition: ``source``, the plentiful one, or ``target``, a
  second one with few recordings; any name works, empty means unknown) and ``label``
  (``normal`` or ``anomaly``/``anomalous``; for evaluation).

In a folder, a file's domain follows DCASE's file names
(``section_00_target_train_normal_0003.wav``): ``source`` or ``target`` as one of the
``_``-separated words of its name, or as the name of a folder below the section's
(``NORMAL/fan/target/*.wav``); unknown otherwise. For evaluation of a folder without a
manifest, a file is anomalous when its name or parent folder starts with ``anomaly`` or
its name has ``anomaly`` as one of its words, as in the DCASE file names
(``anomaly_id_00_00000.wav``, ``section_00_source_test_anomaly_0001.wav``), and every
other file normal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ParameterError

__all__ = ["Recordings", "read_recordings"]

_ANOMALOUS = {"anomaly", "anomalous", "abnormal", "1", "true"}
_NORMAL = {"normal", "0", "false", ""}
_DOMAIN_WORDS = ("source", "target")


@dataclass
class Recordings:
    """Audio files with their sections, groups and (for evaluation) labels.

    Attributes
    ----------
    paths : list of str
    sections : np.ndarray [shape=(n,), dtype=object]
    groups : np.ndarray [shape=(n,), dtype=object]
        Each file its own group unless the manifest says otherwise.
    anomalous : np.ndarray [shape=(n,), dtype=bool]
    domains : np.ndarray [shape=(n,), dtype=object]
        Each file's domain, None where unknown.
    """

    paths: list
    sections: np.ndarray
    groups: np.ndarray
    anomalous: np.ndarray
    domains: np.ndarray | None = None

    def __post_init__(self):
        if self.domains is None:
            self.domains = np.array([None] * len(self.paths), dtype=object)

    @property
    def has_domains(self) -> bool:
        """Whether any file's domain is known."""
        return any(d is not None for d in self.domains)


def _folder_domain(path: Path, root: Path):
    words = path.stem.lower().split("_")
    folders = [part.lower() for part in path.relative_to(root).parts[1:-1]]
    for domain in _DOMAIN_WORDS:
        if domain in words or domain in folders:
            return domain
    return None


def _folder_anomalous(path: Path) -> bool:
    name, parent = path.name.lower(), path.parent.name.lower()
    return name.startswith(("anomaly", "anomalous")) or parent.startswith(("anomaly", "anomalous")) \
        or "anomaly" in path.stem.lower().split("_")


def read_recordings(source) -> Recordings:
    """The recordings of a folder or a manifest CSV (see the module docstring).

    Raises
    ------
    ParameterError
        A missing source, a manifest without a ``path`` column, an unknown label, or no
        audio at all.
    """
    from ..audio import SUPPORTED_EXTENSIONS

    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "path" not in rows[0]:
            raise ParameterError(f"{source}: expected a manifest with a 'path' column")
        paths, sections, groups, anomalous, domains = [], [], [], [], []
        for index, row in enumerate(rows):
            path = Path(row["path"])
            paths.append(str(path if path.is_absolute() else source.parent / path))
            sections.append(row.get("section") or "default")
            groups.append(row.get("group") or f"item{index}")
            domains.append((row.get("domain") or "").strip() or None)
            label = (row.get("label") or "").strip().lower()
            if label not in _ANOMALOUS | _NORMAL:
                raise ParameterError(f"{source}: row {index + 2} has label {row.get('label')!r}; "
                                     f"expected normal or anomaly")
            anomalous.append(label in _ANOMALOUS)
    elif source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
        paths = [str(p) for p in files]
        sections = [p.relative_to(source).parts[0] if len(p.relative_to(source).parts) > 1
                    else "default" for p in files]
        groups = [f"item{i}" for i in range(len(files))]
        anomalous = [_folder_anomalous(p) for p in files]
        domains = [_folder_domain(p, source) for p in files]
    elif source.exists():
        paths, sections, groups, anomalous, domains = [str(source)], ["default"], ["item0"], [False], [None]
    else:
        raise ParameterError(f"{source}: no such folder or manifest")
    if not paths:
        raise ParameterError(f"{source}: no audio files found")
    return Recordings(paths, np.array(sections, dtype=object), np.array(groups, dtype=object),
                      np.array(anomalous, dtype=bool), np.array(domains, dtype=object))
