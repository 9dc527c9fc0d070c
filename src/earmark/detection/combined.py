"""One table of events across all the files of a run, besides the per-file ones.

:func:`write_combined` writes ``all.events.csv`` (the per-file CSV's columns, every
file's rows one after another) and ``all.selections.txt``, a Raven Pro selection table
over many files. Raven opens such a table together with its sound files as one long
stream, the files end to end in the order the table lists them; so each selection's
``Begin Time (s)`` and ``End Time (s)`` run on across files (the durations of the files
before it added), ``Begin Path`` names the file it lies in (absolute, so Raven finds it
wherever the table is opened from) and ``File Offset (s)`` is its onset within that file.
BirdNET's combined tables follow the same convention. ``all.files.txt`` lists those
sound files in that order, one absolute path a line: the list to open in Raven as one
sequence, so that the times line up (files without events included, since their
lengths count).

The tables list the files given, in the order given (the input order), including files
without events (they still take their place in Raven's stream); a file that failed has
no result and is left out. Each table is written whole or not at all, so a run that is
repeated over the same folder replaces them with its own files' events.
:func:`event_files` finds per-file event files in a folder and never these tables, so
nothing that reads a run's folder counts an event twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from ..files import atomic_write
from .events import RAVEN_COLUMNS, _csv_text, _one_line

__all__ = [
    "COMBINED_NAME", "COMBINED_FILES", "COMBINED_RAVEN_COLUMNS", "combined_csv",
    "combined_raven", "event_files", "write_combined",
]

#: Base name of the combined tables; per-file outputs never take it
#: (:func:`~earmark.detection.batch.output_names` reserves it).
COMBINED_NAME = "all"
#: The combined tables by format, and the list of the sound files the Raven table runs over.
COMBINED_FILES = {
    "csv": f"{COMBINED_NAME}.events.csv",
    "raven": f"{COMBINED_NAME}.selections.txt",
    "files": f"{COMBINED_NAME}.files.txt",
}
#: A per-file Raven table's columns plus the two that place a selection in its file.
COMBINED_RAVEN_COLUMNS = (*RAVEN_COLUMNS[:7], "Begin Path", "File Offset (s)", *RAVEN_COLUMNS[7:])


def combined_csv(results: Iterable) -> str:
    """Every result's events as one CSV text (``path,label,onset_s,offset_s,score``).

    Parameters
    ----------
    results : iterable of DetectionResult
        In the order the files should be listed.

    Returns
    -------
    str

    Examples
    --------
    >>> from earmark.detection.events import Event
    >>> from types import SimpleNamespace as Result
    >>> a = Result(path="a.wav", events=[Event("a.wav", "dog", 1.0, 2.0, 0.9)])
    >>> b = Result(path="b.wav", events=[Event("b.wav", "cat", 0.5, 1.0, 0.7)])
    >>> print(combined_csv([a, b]), end="")
    path,label,onset_s,offset_s,score
    a.wav,dog,1.000000,2.000000,0.900000
    b.wav,cat,0.500000,1.000000,0.700000
    """
    return _csv_text([event for result in results for event in result.events])


def combined_raven(results: Iterable, *, low_freq_hz: float = 0.0) -> str:
    """A Raven selection table over many files (see the module docstring).

    Parameters
    ----------
    results : iterable of DetectionResult
        In the order Raven should open the files; each needs ``path``, ``events``,
        ``duration_s`` and ``sample_rate`` (a selection's band reaches half of it).
    low_freq_hz : float
        Lower edge of every selection's band.

    Returns
    -------
    str
        Tab-separated, header first (:data:`COMBINED_RAVEN_COLUMNS`), selections
        numbered from 1 across all files.

    Examples
    --------
    >>> from earmark.detection.events import Event
    >>> from types import SimpleNamespace as Result
    >>> a = Result(path="/rec/a.wav", duration_s=60.0, sample_rate=16000,
    ...            events=[Event("/rec/a.wav", "dog", 1.0, 2.0, 0.9)])
    >>> b = Result(path="/rec/b.wav", duration_s=30.0, sample_rate=16000,
    ...            events=[Event("/rec/b.wav", "cat", 0.5, 1.0, 0.7)])
    >>> row = combined_raven([a, b]).splitlines()[2].split("\\t")
    >>> row[3:5], row[7:9]  # begin and end run on from a.wav's 60 s
    (['60.500000', '61.000000'], ['/rec/b.wav', '0.500000'])
    """
    rows = ["\t".join(COMBINED_RAVEN_COLUMNS)]
    number, start_of_file = 0, 0.0
    for result in results:
        where = _one_line(os.path.abspath(result.path))
        high_freq_hz = result.sample_rate / 2
        for event in result.events:
            number += 1
            score = "" if event.score is None else f"{event.score:.6f}"
            rows.append(
                f"{number}\tSpectrogram 1\t1\t{start_of_file + event.onset_s:.6f}\t"
                f"{start_of_file + event.offset_s:.6f}\t{low_freq_hz:.1f}\t{high_freq_hz:.1f}\t"
                f"{where}\t{event.onset_s:.6f}\t{_one_line(event.label)}\t{score}"
            )
        start_of_file += result.duration_s
    return "\n".join(rows) + "\n"


def write_combined(results: Sequence, output_dir) -> dict[str, Path]:
    """Write :data:`COMBINED_FILES` into ``output_dir``, each atomically.

    Parameters
    ----------
    results : sequence of DetectionResult
        The files that were scanned, in input order (failed files left out).
    output_dir : str or Path

    Returns
    -------
    dict of str to Path
        The written files: the tables by format (``"csv"``, ``"raven"``) and
        ``"files"``, the sound files in the Raven table's order.

    Examples
    --------
    >>> import tempfile
    >>> from types import SimpleNamespace as Result
    >>> folder = tempfile.TemporaryDirectory()
    >>> quiet = Result(path="a.wav", duration_s=5.0, sample_rate=8000, events=[])
    >>> sorted(path.name for path in write_combined([quiet], folder.name).values())
    ['all.events.csv', 'all.files.txt', 'all.selections.txt']
    >>> folder.cleanup()
    """
    output_dir = Path(output_dir)
    results = list(results)
    texts = {
        "csv": combined_csv(results),
        "raven": combined_raven(results),
        "files": "".join(f"{_one_line(os.path.abspath(result.path))}\n" for result in results),
    }
    return {
        format: atomic_write(output_dir / COMBINED_FILES[format], text)
        for format, text in texts.items()
    }


def event_files(paths: Iterable) -> list[Path]:
    """Per-file event files (``.events.csv``, ``.events.json``): files as given, folders searched.

    The combined tables at the top of a searched folder are left out, since their rows
    repeat the per-file files'.

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    list of Path
        Sorted within each folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.events.csv", "all.events.csv", "a.selections.txt"):
    ...     _ = (folder / name).write_text("")
    >>> [path.name for path in event_files([folder])]
    ['a.events.csv']
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        combined = {path / name for name in COMBINED_FILES.values()}
        found += sorted(
            item for item in path.rglob("*")
            if item.name.endswith((".events.csv", ".events.json")) and item not in combined
        )
    return found

