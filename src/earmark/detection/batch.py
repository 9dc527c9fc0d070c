"""Detection over many files: one events file per input and format, bad files reported.

:func:`detect_files` runs :func:`~earmark.detection.stream.detect_file` on each file
in turn and writes its events (and picture) under one output folder; a file that cannot
be read is reported by name and the others go on. Output names follow the inputs'
paths below their common folder, so ``day1/001.wav`` and ``day2/001.wav`` do not
overwrite each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..exceptions import AudioError, ParameterError
from .events import FORMATS
from .stream import DetectionResult, _prepare, detect_file

__all__ = ["FileDetection", "OUTPUT_SUFFIXES", "detect_files", "output_names"]

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
    **detect_params: Any,
) -> Iterator[FileDetection]:
    """Detect events in each file and write them; yields one report per file, in order.

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
    **detect_params
        ``threshold``, ``median_s``, ``min_duration_s``, ``merge_gap_s``.

    Returns
    -------
    iterator of FileDetection
        One per file, in order, each as soon as its file is done. The arguments are
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
        detect_params,
    )


def _detect_each(
    scorer, backend, paths, output_dir, formats, plot, on_file, on_progress, detect_params
) -> Iterator[FileDetection]:
    from .. import audio

    for path, name in zip(paths, output_names(paths)):
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
            yield report
            continue
        for name_of_format in formats:
            target = output_dir / (name + OUTPUT_SUFFIXES[name_of_format])
            report.outputs[name_of_format] = str(report.result.write(target, name_of_format))
        if plot:
            from .plots import plot_detections

            report.outputs["plot"] = str(
                plot_detections(report.result, output_dir / (name + PLOT_SUFFIX))
            )
        yield report
