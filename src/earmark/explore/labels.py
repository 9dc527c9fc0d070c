"""Labels a person gave to clips of the store, kept in the store's own folder.

The labelling loop (``earmark serve``) writes every decision here at once, so closing
the browser or stopping the server loses nothing. A label says, for one *target* (the
question being asked, e.g. ``"dog bark"``), whether one stored clip is ``positive``,
``negative``, or was ``skip``-ped (heard, but left out of training and of the queue of
clips to ask about).

Layout: one LanceDB table, ``labels``, beside the embedding tables of
:class:`~earmark.store.lance.LanceStore`, one row per (target, key):

===========  ==================  ====================================================
column       type                note
===========  ==================  ====================================================
target       string, not null    what is being labelled
key          string, not null    the clip's :func:`~earmark.store.keys.embedding_key`
value        string              ``positive``, ``negative`` or ``skip``
path         string              the clip's file, as the store records it
start_s      float64, nullable   the clip's span in the file
end_s        float64, nullable
backend_key  string              the embedding table the key lives in
time         timestamp[us, UTC]  when the label was last set
===========  ==================  ====================================================

A key changes with the backend configuration, so labels follow their embeddings:
labels made over one backend's vectors train a classifier on that backend's vectors.

``(target, key)`` is the primary key. Setting a label again replaces it (a merge on
``(target, key)``), and the last write wins. LanceDB does not enforce a primary key
between writers that commit at the same time (each merge sees the table without the
other's row), so every write holds a lock, within the process and on a file in the
folder between processes; reading keeps the newest row of a key, and opening a table
that an older version left with duplicate rows merges them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from ..exceptions import ParameterError, StoreError

__all__ = ["LABEL_VALUES", "Label", "LabelStore", "labels_to_csv", "labels_to_raven"]

#: What a label can say about a clip.
LABEL_VALUES = ("positive", "negative", "skip")
TABLE = "labels"
#: Targets are typed by people; anything printable, but bounded so a row stays small.
_TARGET_MAX = 200
_KEY = re.compile(r"^[0-9a-f]{32}$")
#: LanceDB's (unenforced) primary-key marker; the lock below does the enforcing.
_PRIMARY_KEY = {"lance-schema:unenforced-primary-key": "true"}
#: Guards every write to a folder's labels between threads of this process.
_FOLDER_LOCKS: dict[str, threading.Lock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()

_SCHEMA = pa.schema(
    [
        pa.field("target", pa.string(), nullable=False, metadata=_PRIMARY_KEY),
        pa.field("key", pa.string(), nullable=False, metadata=_PRIMARY_KEY),
        pa.field("value", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("backend_key", pa.string()),
        pa.field("time", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Label:
    """One person's decision about one clip, for one target.

    Attributes
    ----------
    target : str
        What is being labelled.
    key : str
        The clip's embedding key in the store.
    value : str
        ``"positive"``, ``"negative"`` or ``"skip"``.
    path : str
        The clip's file.
    start_s, end_s : float or None
        The clip's span in the file; ``None`` for the start or end.
    backend_key : str
        The backend configuration whose table holds ``key``.
    time : datetime
        When the label was set (UTC).
    """

    target: str
    key: str
    value: str
    path: str
    start_s: float | None = None
    end_s: float | None = None
    backend_key: str = ""
    time: datetime | None = None

    def as_dict(self) -> dict:
        """Plain JSON-ready fields (the time as ISO 8601)."""
        return {
            "target": self.target,
            "key": self.key,
            "value": self.value,
            "path": self.path,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "backend_key": self.backend_key,
            "time": None if self.time is None else self.time.isoformat(),
        }


def check_target(target) -> str:
    """A target name as stored: stripped, non-empty, printable, at most 200 characters.

    Raises
    ------
    ParameterError
        Saying what was expected and what came.
    """
    if not isinstance(target, str):
        raise ParameterError(f"expected a target name (text), got {type(target).__name__}")
    name = target.strip()
    if not name or len(name) > _TARGET_MAX or not name.isprintable():
        raise ParameterError(
            f"expected a target name of 1 to {_TARGET_MAX} printable characters, got {target!r}"
        )
    return name


def check_value(value) -> str:
    if value not in LABEL_VALUES:
        raise ParameterError(f"expected a label value in {LABEL_VALUES}, got {value!r}")
    return value


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LabelStore:
    """Labels on disk in a LanceDB table, usually in the embedding store's folder.

    Parameters
    ----------
    directory : str or Path
        The database folder (a :class:`~earmark.store.lance.LanceStore`'s
        ``directory``); created if missing.

    Examples
    --------
    >>> import tempfile
    >>> labels = LabelStore(tempfile.mkdtemp())
    >>> _ = labels.set(Label("dog", "0" * 32, "positive", "bark.wav"))
    >>> _ = labels.set(Label("dog", "0" * 32, "negative", "bark.wav"))  # replaces it
    >>> [(label.path, label.value) for label in labels.labels("dog")]
    [('bark.wav', 'negative')]
    """

    def __init__(self, directory) -> None:
        import lancedb

        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Interval 0: a second server (or a notebook) on the same folder sees each write.
            self._db = lancedb.connect(str(self.directory), read_consistency_interval=timedelta(0))
        except (OSError, RuntimeError) as error:
            raise StoreError(f"cannot open the labels at {self.directory}: {error}") from None
        self._lock = threading.Lock()
        with _FOLDER_LOCKS_GUARD:
            self._write_lock = _FOLDER_LOCKS.setdefault(
                os.path.realpath(self.directory), threading.Lock()
            )
        self._table = None
        self._repaired = False

    @classmethod
    def for_store(cls, store) -> "LabelStore":
        """The labels kept beside an on-disk embedding store.

        Raises
        ------
        ParameterError
            If the store keeps nothing on disk (a :class:`~earmark.store.MemoryStore`).
        """
        directory = getattr(store, "directory", None)
        if directory is None:
            raise ParameterError(
                f"labels are kept in the store's folder, and {store!r} has none; "
                "use an on-disk store (LanceStore)"
            )
        return cls(directory)

    def __repr__(self) -> str:
        return f"LabelStore({str(self.directory)!r})"

    def _fail(self, what: str, error: Exception):
        raise StoreError(f"labels at {self.directory}: {what} failed: {error}") from error

    def _open(self, *, create: bool):
        with self._lock:
            if self._table is not None:
                return self._table
            try:
                self._table = self._db.open_table(TABLE)
            except ValueError:  # lancedb's "Table ... was not found"
                if not create:
                    return None
                with self._writing():  # two first writers must not both create it
                    try:
                        self._table = self._db.open_table(TABLE)
                    except ValueError:
                        self._table = self._db.create_table(TABLE, schema=_SCHEMA)
            except (RuntimeError, OSError) as error:
                self._fail("opening the table", error)
            return self._table

    @contextlib.contextmanager
    def _writing(self):
        """Hold the folder's write lock: this process's threads, then other processes."""
        with self._write_lock:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: the thread lock only
                yield
                return
            with open(self.directory / ".labels.lock", "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _repair(self, table) -> None:
        """Merge duplicate (target, key) rows an older, lock-less version could leave."""
        if self._repaired:
            return
        self._repaired = True
        try:
            rows = table.to_arrow().to_pylist()
        except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
            self._fail("reading labels", error)
        newest: dict[tuple[str, str], dict] = {}
        for row in rows:
            known = newest.get((row["target"], row["key"]))
            if known is None or (row["time"], row["value"]) >= (known["time"], known["value"]):
                newest[(row["target"], row["key"])] = row
        if len(newest) == len(rows):
            return
        duplicated = {
            pair for pair in newest if sum(1 for r in rows if (r["target"], r["key"]) == pair) > 1
        }
        try:
            for target, key in duplicated:
                table.delete(f"target = {_quoted(target)} AND key = {_quoted(key)}")
            table.add(pa.Table.from_pylist([newest[pair] for pair in duplicated], schema=_SCHEMA))
        except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
            self._fail("merging duplicate labels", error)

    # ------------------------------------------------------------------ writing
    def put_many(self, labels: Iterable[Label]) -> int:
        """Set labels; a (target, key) already labelled takes the new value.

        Parameters
        ----------
        labels : iterable of Label
            Their ``time`` is replaced by now (UTC). A (target, key) given twice keeps
            the last.

        Returns
        -------
        n_written : int

        Raises
        ------
        ParameterError
            If a target, key or value is not one a label can have.
        StoreError
            If the table cannot be written.
        """
        unique: dict[tuple[str, str], Label] = {}
        for label in labels:
            target = check_target(label.target)
            check_value(label.value)
            if not isinstance(label.key, str) or not _KEY.match(label.key):
                raise ParameterError(f"expected a 32-hex-digit store key, got {label.key!r}")
            unique[(target, label.key)] = label
        if not unique:
            return 0
        rows = list(unique.items())
        table = self._open(create=True)
        with self._writing():
            self._repair(table)
            # Stamped inside the lock, so the order of times is the order of writes.
            now = datetime.now(timezone.utc)
            data = pa.table(
                {
                    "target": [target for (target, _), _ in rows],
                    "key": [key for (_, key), _ in rows],
                    "value": [label.value for _, label in rows],
                    "path": [str(label.path) for _, label in rows],
                    "start_s": [label.start_s for _, label in rows],
                    "end_s": [label.end_s for _, label in rows],
                    "backend_key": [label.backend_key for _, label in rows],
                    "time": [now] * len(rows),
                },
                schema=_SCHEMA,
            )
            try:
                table.checkout_latest()
                (
                    table.merge_insert(["target", "key"])
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                )
            except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
                self._fail(f"writing {len(rows)} labels", error)
        return len(rows)

    def set(self, label: Label) -> Label:
        """Set one label (see :meth:`put_many`) and return it as stored."""
        self.put_many([label])
        return self.get(label.key, target=label.target)

    def remove(self, key: str, *, target: str) -> bool:
        """Forget the label of ``key`` for ``target``; ``True`` if there was one."""
        target = check_target(target)
        if self.get(key, target=target) is None:
            return False
        table = self._open(create=False)
        with self._writing():
            try:
                table.delete(f"target = {_quoted(target)} AND key = {_quoted(key)}")
            except (RuntimeError, OSError, ValueError) as error:
                self._fail("removing a label", error)
        return True

    # ------------------------------------------------------------------ reading
    def labels(self, target: str | None = None, *, backend_key: str | None = None) -> list[Label]:
        """Every label, or those of one target (and one backend), oldest first.

        Returns
        -------
        labels : list of Label
        """
        return self._query(target=target, backend_key=backend_key)

    def _query(self, **equal) -> list[Label]:
        table = self._open(create=False)
        if table is None:
            return []
        if equal.get("target") is not None:
            equal["target"] = check_target(equal["target"])
        conditions = [
            f"{name} = {_quoted(value)}" for name, value in equal.items() if value is not None
        ]
        query = table.search()
        if conditions:
            query = query.where(" AND ".join(conditions))
        try:
            rows = query.limit(None).to_arrow().to_pylist()
        except (RuntimeError, OSError, ValueError, pa.ArrowException) as error:
            self._fail("reading labels", error)
        # One label per (target, key), the newest, even in a table written without a lock.
        newest: dict[tuple[str, str], Label] = {}
        for row in rows:
            label = Label(**row)
            known = newest.get((label.target, label.key))
            if known is None or (label.time, label.value) >= (known.time, known.value):
                newest[(label.target, label.key)] = label
        found = list(newest.values())
        return sorted(found, key=lambda label: (label.time, label.target, label.key))

    def get(self, key: str, *, target: str) -> Label | None:
        """The label of ``key`` for ``target``, or ``None``."""
        found = self._query(target=target, key=str(key))
        return found[0] if found else None

    def targets(self) -> list[str]:
        """Targets that have at least one label, sorted."""
        return sorted({label.target for label in self.labels()})

    def count(self, target: str | None = None) -> dict[str, int]:
        """How many labels of each value (for one target, or all)."""
        counts = dict.fromkeys(LABEL_VALUES, 0)
        for label in self.labels(target):
            counts[label.value] += 1
        return counts


#: Columns of :func:`labels_to_csv`.
CSV_COLUMNS = ("path", "start_s", "end_s", "target", "value", "key", "backend_key", "time")


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def labels_to_csv(labels: Iterable[Label]) -> str:
    """Labels as CSV text (:data:`CSV_COLUMNS`), one row per label.

    A cell starting with ``=``, ``+``, ``-`` or ``@`` (a file called ``=cmd()``) is
    prefixed with ``'`` so that spreadsheets show it rather than evaluate it.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for label in labels:
        row = label.as_dict()
        writer.writerow([
            _cell(row[name]) if name not in ("start_s", "end_s") or row[name] is None
            else repr(float(row[name]))
            for name in CSV_COLUMNS
        ])
    return buffer.getvalue()


def labels_to_raven(labels: Iterable[Label], durations_s: dict[str, float] | None = None) -> str:
    """Positive and negative labels as a Raven selection table (tab-separated).

    One selection per label: its clip's span in its file (``start_s`` or 0 to ``end_s``,
    or to the clip's duration from ``durations_s`` by key), the target and value as the
    annotation. Skipped clips are left out.
    """
    durations_s = durations_s or {}
    lines = [
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
        "High Freq (Hz)\tBegin File\tBegin Path\tTarget\tAnnotation"
    ]
    number = 0
    for label in labels:
        if label.value == "skip":
            continue
        number += 1
        begin = label.start_s or 0.0
        end = label.end_s if label.end_s is not None else begin + durations_s.get(label.key, 0.0)
        fields = [
            str(number), "Spectrogram 1", "1", f"{begin:.6f}", f"{end:.6f}", "0", "0",
            os.path.basename(label.path), label.path, label.target, label.value,
        ]
        lines.append("\t".join(field.replace("\t", " ").replace("\n", " ") for field in fields))
    return "\n".join(lines) + "\n"
