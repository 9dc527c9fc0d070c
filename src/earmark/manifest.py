"""A dataset as a table: one row per item (a file, or a segment of one) with its labels and
the metadata honest evaluation needs: official folds, groups that must never be split
between training and test (one speaker, one source recording), and recording domains.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .exceptions import ManifestError, ManifestFormatError, ParameterError

__all__ = ["Manifest", "ManifestItem", "ManifestFormatError", "COLUMNS", "CSV_ALIASES"]

COLUMNS = ("path", "labels", "fold", "group", "domain", "start_s", "end_s")
LABEL_SEPARATOR = ";"

#: Column names accepted in a CSV for each manifest column (matched case-insensitively).
CSV_ALIASES = {
    "path": ("path", "file", "filename", "file_name", "filepath", "file_path", "audio_path"),
    "labels": ("labels", "label", "class", "class_name", "category"),
    "fold": ("fold",),
    "group": ("group", "speaker", "speaker_id", "src_file", "source_file"),
    "domain": ("domain", "site", "device"),
    "start_s": ("start_s", "start", "onset_s", "onset"),
    "end_s": ("end_s", "end", "offset_s", "offset"),
}


@dataclass(frozen=True)
class ManifestItem:
    """One row of a :class:`Manifest`; ``None`` marks a missing value."""

    path: str
    labels: tuple[str, ...]
    fold: int | None = None
    group: str | None = None
    domain: str | None = None
    start_s: float | None = None
    end_s: float | None = None

    @property
    def label(self) -> str:
        """The single label; :class:`ParameterError` if the item has several."""
        if len(self.labels) != 1:
            raise ParameterError(f"{self.path}: expected one label, got {self.labels}")
        return self.labels[0]


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _fail(column: str, expected: str, row: int, value) -> ManifestFormatError:
    value = value.item() if isinstance(value, np.generic) else value
    return ManifestFormatError(f"column {column!r}: expected {expected}, got {value!r} (row {row})")


def _text(value):
    """Integers become their decimal text (digit labels, numeric speaker ids)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    return value


def _label(value, row: int) -> str:
    value = _text(value)
    if not isinstance(value, str) or not value.strip() or LABEL_SEPARATOR in value:
        raise _fail("labels", f"non-empty strings without {LABEL_SEPARATOR!r}", row, value)
    return value.strip()


def _labels_column(values) -> list[tuple[str, ...]]:
    out = []
    for row, value in enumerate(values):
        if isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
            out.append(tuple(_label(item, row) for item in value))
        elif _missing(value) or isinstance(value, (list, tuple, np.ndarray)):
            raise _fail("labels", "at least one label per item", row, value)
        else:
            out.append((_label(value, row),))
    return out


def _text_column(name: str, values) -> list[str | None]:
    out = []
    for row, value in enumerate(map(_text, values)):
        if not _missing(value) and not (isinstance(value, str) and value.strip()):
            raise _fail(name, "a non-empty string or a missing value", row, value)
        out.append(None if _missing(value) else value.strip())
    return out


def _number_column(name: str, values, integral: bool) -> pd.Series:
    series = pd.Series(values, dtype=object).map(lambda v: None if _missing(v) else v)
    numeric = pd.to_numeric(series, errors="coerce")
    expected = "an integer" if integral else "a number"
    for row in np.flatnonzero(numeric.isna().to_numpy() & series.notna().to_numpy())[:1]:
        raise _fail(name, f"{expected} or a missing value", int(row), series.iloc[row])
    if integral:
        fractional = numeric.notna() & (numeric % 1 != 0)
        for row in np.flatnonzero(fractional.to_numpy())[:1]:
            raise _fail(name, expected, int(row), series.iloc[row])
        return numeric.astype("Int64")
    return numeric.astype("float64")


def _path_column(values) -> list[str]:
    out = []
    for row, value in enumerate(values):
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise _fail("path", "a file path", row, value)
        path = os.fspath(value)
        if not os.path.isabs(path):
            raise _fail("path", "an absolute path (resolve relative ones first)", row, path)
        out.append(os.path.normpath(path))
    return out


class Manifest:
    """A labelled dataset: one row per audio item, backed by a pandas DataFrame.

    Parameters
    ----------
    frame : pandas.DataFrame
        Required columns ``path`` (absolute) and ``labels`` (a string, or a tuple of
        strings for multi-label items; ``label`` is accepted as its name). Optional:
        ``fold`` (int), ``group``, ``domain`` (str), ``start_s``, ``end_s`` (float,
        seconds: the item is that segment of the file). Missing values are allowed in the
        optional columns; other columns are kept as they are.
    source : str
        A short name for where the manifest came from, such as the detected layout.

    Attributes
    ----------
    frame : pandas.DataFrame [shape=(n_items, n_columns)]
        The validated table; ``labels`` holds tuples, ``fold`` is ``Int64``.
    source : str

    Examples
    --------
    >>> import pandas as pd
    >>> m = Manifest(pd.DataFrame({"path": ["/data/a.wav", "/data/b.wav"],
    ...                            "labels": ["dog", "cat"], "group": ["s1", "s2"]}))
    >>> len(m), m.classes, m.has_groups
    (2, ['cat', 'dog'], True)
    """

    def __init__(self, frame: pd.DataFrame, *, source: str = "table"):
        if not isinstance(frame, pd.DataFrame):
            raise ManifestFormatError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if "labels" not in frame.columns and "label" in frame.columns:
            frame = frame.rename(columns={"label": "labels"})
        if "path" not in frame.columns or "labels" not in frame.columns:
            raise ManifestFormatError(
                "expected columns 'path' and 'labels' (optional: fold, group, domain, "
                f"start_s, end_s), got {[str(c) for c in frame.columns]}"
            )
        n_items = len(frame)

        def column(name):
            return frame[name].tolist() if name in frame.columns else [None] * n_items

        table = pd.DataFrame(
            {
                "path": pd.Series(_path_column(column("path")), dtype=object),
                "labels": pd.Series(_labels_column(column("labels")), dtype=object),
                "fold": _number_column("fold", column("fold"), integral=True),
                "group": pd.Series(_text_column("group", column("group")), dtype=object),
                "domain": pd.Series(_text_column("domain", column("domain")), dtype=object),
                "start_s": _number_column("start_s", column("start_s"), integral=False),
                "end_s": _number_column("end_s", column("end_s"), integral=False),
            }
        )
        start, end = table["start_s"], table["end_s"]
        bad = (start < 0) | (start.notna() & end.notna() & (end <= start)) | (end <= 0)
        for row in np.flatnonzero(bad.to_numpy())[:1]:
            raise ManifestFormatError(
                f"expected 0 <= start_s < end_s, got start_s={start[row]}, end_s={end[row]} "
                f"(row {row})"
            )
        for name in frame.columns:
            if name not in COLUMNS:
                table[name] = frame[name].to_numpy()
        self.frame = table
        self.source = source

    @classmethod
    def _trusted(cls, frame: pd.DataFrame, source: str) -> Manifest:
        manifest = cls.__new__(cls)
        manifest.frame, manifest.source = frame, source
        return manifest

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[ManifestItem]:
        for path, labels, fold, group, domain, start_s, end_s in self.frame[
            list(COLUMNS)
        ].itertuples(index=False, name=None):
            yield ManifestItem(
                path, labels, None if _missing(fold) else int(fold), group, domain,
                None if _missing(start_s) else float(start_s),
                None if _missing(end_s) else float(end_s),
            )  # fmt: skip

    def __repr__(self) -> str:
        return f"Manifest({len(self)} items, {len(self.classes)} classes, source={self.source!r})"

    @property
    def classes(self) -> list[str]:
        """Sorted unique labels over all items."""
        return sorted({label for labels in self.frame["labels"] for label in labels})

    @property
    def is_multilabel(self) -> bool:
        """True if any item has more than one label."""
        return bool(self.frame["labels"].map(len).gt(1).any())

    @property
    def y(self) -> np.ndarray:
        """Labels [shape=(n_items,), dtype=object]; ParameterError if multi-label."""
        if self.is_multilabel:
            raise ParameterError(
                "expected one label per item for y, got a multi-label manifest: use "
                "manifest.frame['labels'] (tuples) with sklearn's MultiLabelBinarizer"
            )
        return np.array([labels[0] for labels in self.frame["labels"]], dtype=object)

    @property
    def paths(self) -> np.ndarray:
        """Absolute file paths [shape=(n_items,), dtype=object]."""
        return self.frame["path"].to_numpy(dtype=object)

    def _complete(self, name: str) -> bool:
        return len(self) > 0 and bool(self.frame[name].notna().all())

    def _column(self, name: str) -> np.ndarray:
        if not self._complete(name):
            missing = int(self.frame[name].isna().sum())
            raise ParameterError(
                f"expected a {name} for every item, {missing} of {len(self)} lack one"
            )
        return self.frame[name].to_numpy(dtype=np.int64 if name == "fold" else object)

    has_folds = property(lambda self: self._complete("fold"), doc="Every item has a fold.")
    has_groups = property(lambda self: self._complete("group"), doc="Every item has a group.")
    has_domains = property(lambda self: self._complete("domain"), doc="Every item has a domain.")
    folds = property(lambda self: self._column("fold"), doc="Folds [shape=(n_items,)] (int64).")
    groups = property(lambda self: self._column("group"), doc="Groups [shape=(n_items,)].")
    domains = property(lambda self: self._column("domain"), doc="Domains [shape=(n_items,)].")

    def subset(self, mask_or_indices) -> Manifest:
        """The items selected by a boolean mask [shape=(n_items,)] or integer indices.

        Examples
        --------
        >>> test = manifest.subset(manifest.folds == 1)  # doctest: +SKIP
        """
        selection = np.asarray(mask_or_indices)
        if selection.dtype == bool:
            if selection.shape != (len(self),):
                raise ParameterError(
                    f"expected a boolean mask of shape ({len(self)},), got {selection.shape}"
                )
            selection = np.flatnonzero(selection)
        elif selection.size == 0:
            selection = np.array([], dtype=np.int64)
        elif selection.dtype.kind not in "iu" or selection.ndim != 1:
            raise ParameterError(
                f"expected a boolean mask or 1-D integer indices, got {selection.dtype}"
            )
        elif not np.all((-len(self) <= selection) & (selection < len(self))):
            raise ParameterError(f"expected indices below {len(self)}, got {selection.max()}")
        return Manifest._trusted(self.frame.iloc[selection].reset_index(drop=True), self.source)

    @classmethod
    def from_csv(cls, path, *, source: str = "csv") -> Manifest:
        """Read a manifest CSV; relative paths are resolved against the CSV's folder.

        Column names may be any of :data:`CSV_ALIASES`; labels of a multi-label item are
        joined with ``;``. Empty cells are missing values.

        Examples
        --------
        >>> m = Manifest.from_csv("clips.csv")  # doctest: +SKIP
        """
        path = Path(path).expanduser()
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise ManifestError(f"{path}: cannot read as CSV ({error})") from None
        except pd.errors.EmptyDataError:
            raise ManifestFormatError(
                f"{path}: expected a CSV with a header row, got an empty file"
            ) from None
        try:
            renames = resolve_csv_columns(table.columns)
        except ManifestFormatError as error:
            raise ManifestFormatError(f"{path}: {error}") from None
        table = table.rename(columns=renames)
        table = table.astype(object).where(table != "", None)
        folder = os.path.dirname(os.path.abspath(path))
        table["path"] = [
            p if p is None else os.path.join(folder, os.path.expanduser(p)) for p in table["path"]
        ]
        table["labels"] = [
            None if v is None else tuple(s.strip() for s in v.split(LABEL_SEPARATOR) if s.strip())
            for v in table["labels"]
        ]
        try:
            return cls(table, source=source)
        except ManifestFormatError as error:
            raise ManifestFormatError(f"{path}: {error}") from None

    def to_csv(self, path) -> Path:
        """Write the manifest as CSV; files under the CSV's folder get relative paths.

        Examples
        --------
        >>> path = manifest.to_csv("clips.csv")  # doctest: +SKIP
        >>> Manifest.from_csv(path).classes == manifest.classes  # doctest: +SKIP
        True
        """
        path = Path(path).expanduser()
        folder = os.path.dirname(os.path.abspath(path))
        table = self.frame.copy()
        table["path"] = [
            os.path.relpath(p, folder) if os.path.commonpath([p, folder]) == folder else p
            for p in table["path"]
        ]
        table["labels"] = table["labels"].map(LABEL_SEPARATOR.join)
        table.to_csv(path, index=False)
        return path

    def summary(self) -> dict:
        """Counts for reports: items per class, fold, domain; groups and their sizes."""
        def counts(name):
            return {str(k): int(v) for k, v in self.frame[name].value_counts().sort_index().items()}

        group_sizes = self.frame["group"].value_counts()
        return {
            "source": self.source,
            "n_items": len(self),
            "multilabel": self.is_multilabel,
            "classes": {
                str(c): int(v)
                for c, v in self.frame["labels"].explode().value_counts().sort_index().items()
            },
            "folds": counts("fold"),
            "n_groups": len(group_sizes),
            "group_size_min": int(group_sizes.min()) if len(group_sizes) else 0,
            "group_size_max": int(group_sizes.max()) if len(group_sizes) else 0,
            "domains": counts("domain"),
            "missing": {n: int(self.frame[n].isna().sum()) for n in ("fold", "group", "domain")},
            "segments": int((self.frame["start_s"].notna() | self.frame["end_s"].notna()).sum()),
        }

    def describe(self) -> str:
        """A few lines for printing: items per class, fold and domain; group sizes.

        Examples
        --------
        >>> print(manifest.describe())  # doctest: +SKIP
        3000 items, 10 classes (single-label), source: fsdd
        """
        s = self.summary()
        kind = "multi-label" if s["multilabel"] else "single-label"
        lines = [f"{len(self)} items, {len(s['classes'])} classes ({kind}), source: {self.source}"]
        for name in ("classes", "folds", "domains"):
            shown = ", ".join(f"{k} {v}" for k, v in list(s[name].items())[:50]) or "none"
            lines.append(f"{name}: {shown}" + (" ..." if len(s[name]) > 50 else ""))
        low, high = s["group_size_min"], s["group_size_max"]
        each = f"{low} items each" if low == high else f"{low} to {high} items each"
        sizes = f" ({each})" if s["n_groups"] else ""
        lines.append(f"groups: {s['n_groups'] or 'none'}{sizes}")
        # A column no item has is already shown as "none"; name only partial gaps.
        gaps = ", ".join(f"{n} without a {k}" for k, n in s["missing"].items() if 0 < n < len(self))
        if gaps:
            lines.append(f"items: {gaps}")
        return "\n".join(lines)


def resolve_csv_columns(columns) -> dict[str, str]:
    """Map a CSV header onto manifest column names using :data:`CSV_ALIASES`.

    Returns
    -------
    renames : dict
        ``{csv column: manifest column}`` for the columns recognised.

    Raises
    ------
    ManifestFormatError
        If no path or no label column is found, or two columns claim the same role.
    """
    by_name = {str(c).strip().lower(): c for c in columns}
    renames = {}
    for target, aliases in CSV_ALIASES.items():
        found = [by_name[a] for a in aliases if a in by_name]
        if len(found) > 1:
            raise ManifestFormatError(f"ambiguous {target!r} column: {found} could each be it")
        if found:
            renames[found[0]] = target
    for required in ("path", "labels"):
        if required not in renames.values():
            raise ManifestFormatError(
                f"expected a {required} column named one of {list(CSV_ALIASES[required])}, "
                f"got columns {[str(c) for c in columns]}"
            )
    return renames
