"""Detection over many files: one events file per input and format, bad files reported.

:func:`detect_files` runs :func:`~earmark.detection.stream.detect_file` on each file
in turn and writes its events (and picture) under one output folder; a file that cannot
be read is reported by name and the others go on. The per-file work is one task
(:func:`detect_task`), run here or, given a Dask client, on the cluster's workers; each
output file is written atomically (a temporary file renamed into place). Output names
follow the inputs' paths below their common folder, so ``day1/001.wav`` and
``day2/001.wav`` do not overwrite each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..exceptions import AudioError, ParameterError
from .events import FORMATS
from .stream import DetectionResult, _prepare, detect_file

__all__ = [
    "DetectTask", "FileDetection", "OUTPUT_SUFFIXES", "detect_files", "detect_task", "output_names",
]

#: What each format's file is called after the input's name.
OUTPUT_SUFFIXES = {
    "csv": ".events.csv",
    "json": ".events.json",
    "audacity": ".labels.txt",
    "raven": ".selections.txt",
}
PLOT_SUFFIX = ".detections.png"


@dataclass
class FileDetection:
    """What happened to one input file.

    Attributes
    ----------
    path : str
    result : DetectionResult or None
        None if the file failed.
    outputs : dict of str to str
        Written files by format (and ``"plot"``).
    error : str or None
        Why the file failed, naming it.
    """

    path: str
    result: DetectionResult | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def reason(self) -> str | None:
        return self.error

    def to_dict(self) -> dict[str, Any]:
        base = self.result.to_dict() if self.result is not None else {"path": self.path}
        return {**base, "outputs": self.outputs, "error": self.error}


def output_names(paths: Sequence) -> list[str]:
    """Output base names (relative paths, no suffix) for input files, all distinct.

    Examples
    --------
    >>> output_names(["rec/day1/001.wav", "rec/day2/001.wav"])
    ['day1/001', 'day2/001']
    >>> output_names(["a.wav", "a.flac", "b.wav"])
    ['a.wav', 'a.flac', 'b']
    """
    absolute = [Path(os.path.abspath(path)) for path in paths]
    if not absolute:
        return []
    root = Path(os.path.commonpath([str(path.parent) for path in absolute]))
    names = [path.relative_to(root).with_suffix("").as_posix() for path in absolute]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    # Same name, other suffix (a.wav, a.flac): keep the suffix in those names.
    return [
        path.relative_to(root).as_posix() if counts[name] > 1 else name
        for name, path in zip(names, absolute)
    ]


def detect_files(
    scorer,
    backend,
    paths: Sequence,
    output_dir,
    *,
    formats: Sequence[str] = ("csv",),
    plot: bool = True,
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
        :func:`output_names`); pictures to ``name + ".detections.png"``.
    formats : sequence of {"csv", "json", "audacity", "raven"}
    plot : bool
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
        scorer, backend, paths, Path(output_dir), formats, plot, on_file, on_progress,
        detect_params, client,
    )


@dataclass(frozen=True)
class DetectTask:
    """One file to scan, and the base name its outputs get."""

    path: str
    name: str


def _detect_each(
    scorer, backend, paths, output_dir, formats, plot, on_file, on_progress, detect_params,
    client,
) -> Iterator[FileDetection]:
    from ..distributed.executors import WorkerLost, make_executor

    tasks = [DetectTask(path, name) for path, name in zip(paths, output_names(paths))]
    shared = {
        "scorer": scorer, "output_dir": output_dir, "formats": formats, "plot": plot,
        "detect_params": detect_params,
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
    except AudioError as error:
        # Only the file is at fault: say so and go on. Any other error (a model
        # without probabilities, a full disk) would fail every file alike.
        report.error = str(error)
        return report
    for name_of_format in formats:
        target = output_dir / (name + OUTPUT_SUFFIXES[name_of_format])
        # write_events writes to a temporary file and renames it into place.
        report.outputs[name_of_format] = str(report.result.write(target, name_of_format))
    if plot:
        target = output_dir / (name + PLOT_SUFFIX)
        report.outputs["plot"] = str(_plot_atomically(report.result, target))
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
