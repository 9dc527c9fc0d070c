"""Detection over many files: one events file per input and format, bad files reported.

:func:`detect_files` runs :func:`~earmark.detection.stream.detect_file` on each file
in turn and writes its events (and picture and page) under one output folder; a file that cannot
be read is reported by name and the others go on. The per-file work is one task
(:func:`detect_task`), run here or, given a Dask client, on the cluster's workers; each
output file is written atomically (a temporary file renamed into place). Output names
follow the inputs' paths below their common folder, so ``day1/001.wav`` and
``day2/001.wav`` do not overwrite each other. The tables of all the files together are
:func:`~earmark.detection.combined.write_combined`'s, once the run is over.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..exceptions import AudioError, EarmarkError, ParameterError
from .combined import COMBINED_NAME
from .events import FORMATS
from .stream import DetectionResult, _prepare, detect_file

__all__ = [
    "DetectTask", "FileDetection", "MAX_NAME_BYTES", "OUTPUT_SUFFIXES", "detect_files",
    "detect_task", "fit_name", "output_names",
]

#: What each format's file is called after the input's name.
OUTPUT_SUFFIXES = {
    "csv": ".events.csv",
    "json": ".events.json",
    "audacity": ".labels.txt",
    "raven": ".selections.txt",
}
PLOT_SUFFIX = ".detections.png"
PAGE_SUFFIX = ".detections.html"


@dataclass
class FileDetection:
    """What happened to one input file.

    Attributes
    ----------
    path : str
    result : DetectionResult or None
        None if the file failed.
    outputs : dict of str to str
        Written files by format (and ``"plot"``, ``"html"``).
    error : str or None
        Why the file failed, naming it.
    """

    path: str
    result: DetectionResult | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def reason(self) -> str | None:
        """Why the file failed, without the file's name (which ``path`` holds)."""
        if self.error is None:
            return None
        prefix = f"{self.path}: "
        return self.error[len(prefix):] if self.error.startswith(prefix) else self.error

    def to_dict(self) -> dict[str, Any]:
        base = self.result.to_dict() if self.result is not None else {"path": self.path}
        return {**base, "outputs": self.outputs, "error": self.error}


#: Longest base name component (in UTF-8 bytes) an output may have: 255 (the common
#: file-system limit) less the longest suffix and the temporary name's decorations.
MAX_NAME_BYTES = 200


def output_names(paths: Sequence) -> list[str]:
    """Output base names (relative paths, no suffix) for input files, all distinct.

    Distinct also where case is not (``A.wav``, ``a.wav``) and after the suffix is
    dropped (``a.wav.wav`` and ``a.wav``), and never the combined tables' name
    (:data:`~earmark.detection.combined.COMBINED_NAME`) at the top; a name too long for a file system once the
    output suffix and a temporary name's decorations are added is shortened and given a
    hash of the whole name.

    Examples
    --------
    >>> output_names(["rec/day1/001.wav", "rec/day2/001.wav"])
    ['day1/001', 'day2/001']
    >>> output_names(["a.wav", "a.flac", "b.wav"])
    ['a.wav', 'a.flac', 'b']
    >>> output_names(["a.wav", "a.wav.wav"])
    ['a', 'a.wav']
    >>> output_names(["x/a.wav", "x/a.wav.wav", "x/a.flac"])
    ['a.wav', 'a.wav.wav', 'a.flac']
    >>> output_names(["all.wav", "day1/all.wav"])  # "all" is the combined tables' name
    ['all.wav', 'day1/all']
    """
    absolute = [Path(os.path.abspath(path)) for path in paths]
    if not absolute:
        return []
    root = Path(os.path.commonpath([str(path.parent) for path in absolute]))
    relative = [path.relative_to(root).as_posix() for path in absolute]
    names = [fit_name(path.relative_to(root).with_suffix("").as_posix()) for path in absolute]
    # The run's combined tables (all.events.csv) sit at the top of the folder: an input
    # named all.wav there keeps its suffix, as if another file had its name.
    reserved = Counter({COMBINED_NAME.casefold(): 1})
    # Same name, other suffix (a.wav, a.flac): keep the suffix in those names; again for
    # names that then meet a name kept whole (a.wav.wav's "a.wav" beside a.wav).
    for _ in range(2):
        counts = Counter(name.casefold() for name in names) + reserved
        names = [
            fit_name(whole) if counts[name.casefold()] > 1 else name
            for name, whole in zip(names, relative)
        ]
    # Only case can still make two names one (A.wav, a.wav on a case-blind disk):
    # number the later ones.
    taken: set[str] = set(reserved)
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{name}~{number}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def fit_name(name: str) -> str:
    """``name`` with each ``/``-separated part at most :data:`MAX_NAME_BYTES` bytes: a
    longer part keeps its start and gets a hash of the whole, so names stay distinct.

    Examples
    --------
    >>> fit_name("short")
    'short'
    >>> len(fit_name("x" * 300).encode()) <= MAX_NAME_BYTES
    True
    """
    parts = name.split("/")
    fitted = []
    for part in parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            digest = hashlib.blake2b(part.encode(), digest_size=4).hexdigest()
            head = part.encode()[: MAX_NAME_BYTES - 20].decode(errors="ignore")
            part = f"{head}~{digest}"
        fitted.append(part)
    return "/".join(fitted)


def detect_files(
    scorer,
    backend,
    paths: Sequence,
    output_dir,
    *,
    formats: Sequence[str] = ("csv",),
    plot: bool = True,
    html: bool = False,
    on_file: Callable[[str, float | None], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    client=None,
    **detect_params: Any,
) -> Iterator[FileDetection]:
    """Detect events in each file and write them; yields one report per file.

    Parameters
    ----------
    scorer, backend
        As for :func:`~earmark.detection.stream.detect_file`.
    paths : sequence of str or Path
    output_dir : str or Path
        Events go to ``output_dir / (name + suffix)`` (see :data:`OUTPUT_SUFFIXES` and
        :func:`output_names`); pictures to ``name + ".detections.png"``, pages to
        ``name + ".detections.html"``.
    formats : sequence of {"csv", "json", "audacity", "raven"}
    plot : bool
        Draw a picture per file (:func:`~earmark.detection.plots.plot_detections`).
    html : bool
        Write a page per file that zooms and plays each event
        (:func:`~earmark.detection.page.write_detection_page`).
    on_file : callable, optional
        Called with ``(path, duration_s)`` as each file starts (duration None when its
        header cannot be read).
    on_progress : callable, optional
        Called with the seconds of audio each batch advanced by.
    client : distributed.Client, optional
        Scan the files on this Dask cluster, one task per file: workers write the
        outputs (on a shared file system) and reports come back as files finish, in
        no particular order; ``on_file`` and ``on_progress`` are not called. ``None``
        scans them here, in order.
    **detect_params
        ``threshold``, ``median_s``, ``min_duration_s``, ``merge_gap_s``, ``cells``.

    Returns
    -------
    iterator of FileDetection
        One per file, each as soon as its file is done (in input order without a
        client). The arguments are
        checked (and a window or hop off the backend's grid refused) before this
        returns, not when the first file starts.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ParameterError(f"expected formats from {FORMATS}, got {formats}")
    _prepare(scorer, backend, **detect_params)
    paths = [str(path) for path in paths]
    return _detect_each(
        scorer, backend, paths, Path(output_dir), formats, plot, html, on_file, on_progress,
        detect_params, client,
    )


@dataclass(frozen=True)
class DetectTask:
    """One file to scan, and the base name its outputs get."""

    path: str
    name: str


def _detect_each(
    scorer, backend, paths, output_dir, formats, plot, html, on_file, on_progress,
    detect_params, client,
) -> Iterator[FileDetection]:
    from ..pipeline import WorkerLost, make_executor

    tasks = [DetectTask(path, name) for path, name in zip(paths, output_names(paths))]
    shared = {
        "scorer": scorer, "output_dir": output_dir, "formats": formats, "plot": plot,
        "html": html, "detect_params": detect_params,
    }
    if client is None:
        # Progress callbacks reach into this process; on a cluster, files are the unit.
        shared.update(on_file=on_file, on_progress=on_progress)
    executor = make_executor(backend, client)
    if tasks:
        executor.prepare()
    for task, report in executor.run(detect_task, tasks, shared):
        if isinstance(report, WorkerLost):
            report = FileDetection(task.path, error=f"{task.path}: {report.reason}")
        yield report


def detect_task(
    backend,
    task: DetectTask,
    *,
    scorer,
    output_dir: Path,
    formats: Sequence[str],
    plot: bool,
    detect_params: dict[str, Any],
    html: bool = False,
    on_file: Callable[[str, float | None], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> FileDetection:
    """Detect events in one file and write its outputs, each atomically.

    The task :func:`detect_files` runs for each file, in this process or on a Dask
    worker (which writes the outputs itself, so ``output_dir`` must be on a file system
    the workers share). Every output is written to a temporary file and renamed into
    place, so a killed or retried task never leaves half a file.

    Returns
    -------
    FileDetection
        With ``error`` set (naming the file) if the file could not be read.
    """
    from .. import audio

    path, name = task.path, task.name
    report = FileDetection(path)
    try:
        duration = None
        try:
            duration = audio.info(path).duration_s
        finally:
            if on_file is not None:
                on_file(path, duration)
        report.result = detect_file(
            scorer, backend, path, on_progress=on_progress, **detect_params
        )
        for name_of_format in formats:
            target = output_dir / (name + OUTPUT_SUFFIXES[name_of_format])
            # write_events writes to a temporary file and renames it into place.
            report.outputs[name_of_format] = str(report.result.write(target, name_of_format))
        if plot:
            target = output_dir / (name + PLOT_SUFFIX)
            report.outputs["plot"] = str(_plot_atomically(report.result, target))
        if html:
            from .page import write_detection_page

            target = output_dir / (name + PAGE_SUFFIX)
            report.outputs["html"] = str(write_detection_page(report.result, target))
    except AudioError as error:
        report.error = str(error)
    except (EarmarkError, OSError, ValueError, RuntimeError, MemoryError) as error:
        # Whatever stops one file (a header a backend cannot use, an output the file
        # system refuses) is that file's failure: named, and the others go on. If it
        # fails every file alike, the command says so by exiting non-zero.
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        report.error = f"{path}: {reason}"
    if report.error is not None:
        report.result = None
    return report


def _plot_atomically(result, target: Path) -> Path:
    import tempfile

    from .plots import plot_detections

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".png"
    )
    os.close(handle)
    try:
        plot_detections(result, temporary)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 suits no picture
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
