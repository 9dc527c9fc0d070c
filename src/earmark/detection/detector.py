"""A detector in one call: weakly labelled recordings in, a frame model with learned
post-processing out.

:func:`train_detector` is what ``earmark train DATA --detector`` runs:

1. frame embeddings of every recording come from the embedding store
   (:func:`earmark.pipeline.embed_manifest` with frames, so a second run reads them
   back instead of embedding again; a run that is stopped resumes);
2. the recordings are split by group (speaker, site, source file; each recording is
   its own group where none is given) into training and validation parts, so that no
   group is on both sides;
3. a multiple-instance model with temporal context (a width-5 convolution over the frame
   sequence, linear-softmax pooling: :class:`~earmark.detection.mil.MILClassifier`) learns
   from the training part's label sets, empty sets (negatives) included;
4. thresholds per class, median filter, minimum duration, merge gap and cells are
   chosen on the validation part's weak labels
   (:func:`~earmark.detection.postprocessing.tune_postprocessing`) and stored in the
   model, where ``earmark detect`` finds them;
5. the frame scores are calibrated on the same part (Platt scaling per class,
   :mod:`~earmark.detection.frame_calibration`), so that a score reads as a
   probability; the thresholds move with the (monotone) map, so the events found are
   the same (up to cells averaged over windows, ``cells="mean"``).

:func:`weak_items` reads what users have: a manifest whose labels cell holds ``a;b``
(several classes) or nothing (a recording with none of them), and folders of negatives.
Rows that cannot be used (a missing file) are named with their row and left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..audio import SUPPORTED_EXTENSIONS
from ..exceptions import EarmarkError, ParameterError

__all__ = ["DETECTOR_BACKEND", "DETECTOR_DEFAULTS", "FINE_GRID", "WeakItems", "train_detector",
           "weak_items", "detector_frames", "frame_targets_for"]

#: What ``earmark train --detector`` trains, chosen on the development soundscapes
#: (benchmarks/detector.py): see docs and the README.
DETECTOR_DEFAULTS: dict[str, Any] = {
    "pooling": "linear-softmax", "context": 2, "hidden": 128, "epochs": 60, "dropout": 0.2,
    "n_networks": 3,
}
#: The backend ``earmark train --detector`` uses when the user names none: aiSFX on its
#: step grid (a frame every 0.186 s). On the development soundscapes, weak labels:
#: segment F 0.61 and onset F 0.57 against BirdNET's 0.31 and 0.22 at its 0.5 s hop,
#: whose 3 s windows hold a 0.9 s note as a third of what they hear.
DETECTOR_BACKEND = "aisfx"
#: Finest frame grid each backend offers for detection when the user gives none.
FINE_GRID = {"birdnet": {"hop_s": 0.5}, "aisfx": {"grid": "steps"}}


@dataclass
class WeakItems:
    """Recordings with the set of classes sounding in each (empty: none of them).

    Attributes
    ----------
    paths : list of str
    label_sets : list of tuple of str
    groups : list of str
        Group per recording, for the validation split (the path where none is given).
    skipped : list of str
        Rows left out, each naming its row and why.
    events : list of (list of (label, onset_s, offset_s) or None) or None
        Strong labels per recording, from an events table; None where only label sets
        are known.
    """

    paths: list[str]
    label_sets: list[tuple[str, ...]]
    groups: list[str]
    skipped: list[str] = field(default_factory=list)
    events: list | None = None

    @property
    def classes(self) -> list[str]:
        return sorted({label for labels in self.label_sets for label in labels})

    @property
    def n_negatives(self) -> int:
        return sum(1 for labels in self.label_sets if not labels)


def weak_items(data, *, layout: str = "auto", negatives: Sequence = ()) -> WeakItems:
    """Recordings and their label sets from a manifest CSV or dataset folder, and negatives.

    Parameters
    ----------
    data : str or Path
        A CSV (columns ``path`` and ``labels``, labels joined with ``;``, an empty cell
        for a recording with none of the classes; ``group`` optional) or any dataset
        folder :func:`earmark.datasets.load_dataset` reads. A CSV with ``onset_s`` and
        ``offset_s`` columns is an **events table** (strong labels): one row per event
        (``path, label, onset_s, offset_s``), and a row with an empty label and times
        for a recording with none of the classes; the detector then also learns frame
        by frame. A row naming a missing file, a time past the file's end or an offset
        before its onset is skipped with its row number.
    layout : str
        For a folder, as :func:`~earmark.datasets.load_dataset`.
    negatives : sequence of str or Path
        Folders (searched recursively) or files of audio in which none of the classes
        sounds.

    Returns
    -------
    WeakItems

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.wav", "b.wav"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> _ = (folder / "weak.csv").write_text("path,labels\\na.wav,dog;bird\\nb.wav,\\nc.wav,dog\\n")
    >>> items = weak_items(folder / "weak.csv")
    >>> items.label_sets, items.skipped
    ([('bird', 'dog'), ()], ['row 3 (c.wav): no such file'])
    """
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        items = _from_csv(path)
    else:
        from ..datasets import load_dataset

        manifest = load_dataset(path, layout=layout)
        groups = manifest.groups if manifest.has_groups else manifest.paths
        items = WeakItems([str(p) for p in manifest.paths],
                          [tuple(labels) for labels in manifest.frame["labels"]],
                          [str(g) for g in groups])
    for source in negatives:
        source = Path(source).expanduser()
        if source.is_dir():
            found = sorted(str(p) for p in source.rglob("*")
                           if p.suffix.lower() in SUPPORTED_EXTENSIONS and not p.name.startswith("."))
            if not found:
                raise ParameterError(f"--negatives {source}: expected audio files, found none")
        elif source.is_file():
            found = [str(source)]
        else:
            raise ParameterError(f"--negatives {source}: no such file or folder")
        items.paths += [os.path.abspath(p) for p in found]
        items.label_sets += [()] * len(found)
        items.groups += [os.path.abspath(p) for p in found]
        if items.events is not None:
            items.events += [None] * len(found)
    if not items.paths:
        raise ParameterError(f"{data}: no usable recording ({'; '.join(items.skipped[:3])})")
    if not items.classes:
        raise ParameterError(f"{data}: expected at least one labelled recording, got only negatives")
    return items


def _from_csv(path: Path) -> WeakItems:
    import pandas as pd

    from ..manifest import LABEL_SEPARATOR, resolve_csv_columns

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ParameterError(f"{path}: cannot read as CSV ({error})") from None
    lowered = {str(c).strip().lower(): c for c in table.columns}
    if "onset_s" in lowered and "offset_s" in lowered:
        return _from_events_table(path, table.rename(columns={v: k for k, v in lowered.items()}))
    table = table.rename(columns=resolve_csv_columns(table.columns))
    if "labels" not in table.columns and "label" in table.columns:
        table = table.rename(columns={"label": "labels"})
    if "path" not in table.columns or "labels" not in table.columns:
        raise ParameterError(f"{path}: expected columns path and labels, got {list(table.columns)}")
    folder = path.parent.resolve()
    items = WeakItems([], [], [])
    for row, record in enumerate(table.to_dict("records"), start=1):
        name = record["path"].strip()
        full = os.path.normpath(os.path.join(folder, os.path.expanduser(name)))
        if not name:
            items.skipped.append(f"row {row}: no path")
            continue
        if not os.path.isfile(full):
            items.skipped.append(f"row {row} ({name}): no such file")
            continue
        labels = tuple(sorted({s.strip() for s in record["labels"].split(LABEL_SEPARATOR)
                               if s.strip()}))
        items.paths.append(full)
        items.label_sets.append(labels)
        group = (record.get("group") or "").strip()
        items.groups.append(group or full)
    return items


def _from_events_table(path: Path, table) -> WeakItems:
    """Recordings, label sets and events from ``path, label, onset_s, offset_s`` rows."""
    from .. import audio
    from ..exceptions import AudioError

    label_column = "label" if "label" in table.columns else "labels"
    if "path" not in table.columns or label_column not in table.columns:
        raise ParameterError(f"{path}: an events table needs columns path, label, onset_s, "
                             f"offset_s; got {list(table.columns)}")
    folder = path.parent.resolve()
    order: list[str] = []
    found: dict[str, list] = {}
    groups: dict[str, str] = {}
    durations: dict[str, float | None] = {}
    skipped: list[str] = []
    for row, record in enumerate(table.to_dict("records"), start=1):
        name = str(record["path"]).strip()
        if not name:
            skipped.append(f"row {row}: no path")
            continue
        full = os.path.normpath(os.path.join(folder, os.path.expanduser(name)))
        if full not in durations:
            try:
                durations[full] = audio.info(full).duration_s if os.path.isfile(full) else None
            except AudioError as error:
                durations[full] = None
                skipped.append(f"row {row} ({name}): {error}")
                continue
        if durations[full] is None:
            if os.path.isfile(full):
                continue  # unreadable: said once above
            skipped.append(f"row {row} ({name}): no such file")
            continue
        label = str(record[label_column]).strip()
        try:
            onset, offset = float(record["onset_s"] or "nan"), float(record["offset_s"] or "nan")
        except ValueError:
            skipped.append(f"row {row} ({name}): onset_s and offset_s must be numbers")
            continue
        if label:
            if not (0 <= onset < offset):
                skipped.append(f"row {row} ({name}): expected 0 <= onset_s < offset_s, "
                               f"got {record['onset_s']!r}, {record['offset_s']!r}")
                continue
            if onset >= durations[full]:
                skipped.append(f"row {row} ({name}): onset {onset:g} s is past the end of the "
                               f"{durations[full]:.2f} s recording")
                continue
        if full not in found:
            order.append(full)
            found[full] = []
            groups[full] = str(record.get("group") or "").strip() or full
        if label:
            found[full].append((label, onset, min(offset, durations[full])))
    return WeakItems(
        order, [tuple(sorted({label for label, _, _ in found[p]})) for p in order],
        [groups[p] for p in order], skipped, events=[found[p] for p in order],
    )


def detector_frames(paths, backend, store=None, *, progress: bool = False):
    """Frame embeddings and their times for each path, through the store.

    Returns
    -------
    frames : list of (X, start_s, end_s) or None
        ``None`` where the file failed (or gave no frame).
    failures : dict of int to str
        Why each failed file failed, by its index in ``paths``.
    """
    from ..pipeline import embed_manifest
    from ..store import MemoryStore

    store = store if store is not None else MemoryStore()
    run = embed_manifest(list(paths), backend, store, progress=progress, with_frames=True)
    reasons = {failure.path: failure.reason for failure in run.failures}
    keys = [key for key in run.keys if key is not None]
    records = store.get_many(keys, backend_key=run.backend_key, with_frames=True)
    frames, failures = [], {}
    for index, (path, key) in enumerate(zip(paths, run.keys)):
        record = records.get(key) if key is not None else None
        if record is None or record.X is None or len(record.X) == 0:
            frames.append(None)
            failures[index] = reasons.get(str(path), f"too short for one {backend.name} frame")
            continue
        frames.append((np.asarray(record.X, dtype=np.float32),
                       np.asarray(record.frame_start_s, dtype=np.float64),
                       np.asarray(record.frame_end_s, dtype=np.float64)))
    return frames, failures


def frame_targets_for(events, start_s, end_s, classes: Sequence[str]) -> np.ndarray:
    """Which classes sound in each frame, from a recording's strong labels.

    A frame counts an event when they overlap by at least half the shorter of the two
    (so a short note inside a long window marks it, and a window grazing the end of an
    event does not).

    Parameters
    ----------
    events : iterable of (label, onset_s, offset_s)
    start_s, end_s : np.ndarray [shape=(n_frames,)]
    classes : sequence of str
        Column order; labels outside it are ignored.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_classes), dtype=float32]

    Examples
    --------
    >>> frame_targets_for([("dog", 1.2, 1.8)], np.array([0.0, 1.0, 2.0]),
    ...                   np.array([1.0, 2.0, 3.0]), ["cat", "dog"]).tolist()
    [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    """
    start_s, end_s = np.asarray(start_s, dtype=float), np.asarray(end_s, dtype=float)
    column = {label: index for index, label in enumerate(classes)}
    targets = np.zeros((len(start_s), len(classes)), dtype=np.float32)
    for label, onset, offset in events:
        if label not in column or not offset > onset:
            continue
        overlap = np.minimum(end_s, offset) - np.maximum(start_s, onset)
        shorter = np.minimum(end_s - start_s, offset - onset)
        targets[overlap >= 0.5 * shorter, column[label]] = 1.0
    return targets


def train_detector(frames, label_sets, *, backend, groups=None, validation_fraction: float = 0.2,
                   random_state: int = 0, events=None, cells="auto", **params):
    """Train a frame detector and learn its post-processing on a group-aware validation split.

    Parameters
    ----------
    frames : sequence of (X, start_s, end_s)
        Frame embeddings ``[shape=(n_frames_i, dimension)]`` of each recording and the
        frames' spans in seconds (:func:`detector_frames`).
    label_sets : sequence of tuple of str
        Classes sounding in each recording; empty for a negative.
    backend : Backend
        The backend that made the frames (its hop and window set the time grid).
    groups : sequence, optional
        Group of each recording; no group is in both training and validation parts.
    validation_fraction : float
        Share of groups held out for choosing the post-processing.
    random_state : int
    events : sequence of (list of (label, onset_s, offset_s) or None), optional
        Strong labels of each recording where a user has them (an events table, or a
        soundscape earmark synthesised): the detector also learns frame by frame from
        those (:func:`frame_targets_for`); None for a recording known only by its label
        set. A recording's label set must hold its events' labels.
    cells : {"auto", None, "mean", "min", "max"}
        For windows longer than their hop: score the cells between window edges
        (:func:`~earmark.detection.events.window_cells`); ``"auto"`` lets the validation
        part choose among None, mean and min.
    **params
        Override :data:`DETECTOR_DEFAULTS` (passed to
        :class:`~earmark.detection.mil.MILClassifier`).

    Returns
    -------
    EarmarkModel
        Kind ``"frames"``, learner ``"detector"``, with ``postprocessing`` (including
        its ``validation`` figures and the frame ``calibration``).
    """
    from sklearn.model_selection import GroupShuffleSplit

    from ..models import EarmarkModel
    from .frame_calibration import apply_frame_calibration, fit_frame_calibration
    from .postprocessing import tune_postprocessing

    label_sets = [tuple(str(label) for label in labels) for labels in label_sets]
    if len(frames) != len(label_sets):
        raise ParameterError(f"expected one label set per recording ({len(frames)}), "
                             f"got {len(label_sets)}")
    if not 0 < validation_fraction < 1:
        raise ParameterError(f"expected validation_fraction in (0, 1), got {validation_fraction}")
    groups = np.asarray(list(groups) if groups is not None else range(len(frames)), dtype=object)
    if len(set(groups.tolist())) < 2:
        raise ParameterError("expected recordings from at least 2 groups for a validation split")
    splitter = GroupShuffleSplit(n_splits=1, test_size=validation_fraction,
                                 random_state=random_state)
    train_index, validation_index = next(splitter.split(np.zeros(len(frames)), groups=groups))
    classes = sorted({label for labels in label_sets for label in labels})
    training_classes = {label for i in train_index for label in label_sets[i]}
    if set(classes) - training_classes:
        raise EarmarkError(f"the training part has no recording of {sorted(set(classes) - training_classes)}; "
                           f"give more recordings of those classes")
    settings = {**DETECTOR_DEFAULTS, **params}
    frame_targets = None
    if events is not None:
        events = list(events)
        if len(events) != len(frames):
            raise ParameterError(f"expected one events entry per recording ({len(frames)}), "
                                 f"got {len(events)}")
        frame_targets = [
            None if events[i] is None
            else frame_targets_for(events[i], frames[i][1], frames[i][2], classes)
            for i in train_index
        ]
    model = EarmarkModel.train_mil(
        [frames[i][0] for i in train_index], [label_sets[i] for i in train_index],
        backend=backend, random_state=random_state, frame_targets=frame_targets, **settings,
    )
    scorer = model.segment_proba
    rows = [(scorer(frames[i][0]), frames[i][1], frames[i][2]) for i in validation_index]
    event_counts = None
    if events is not None:
        from collections import Counter

        event_counts = [None if events[i] is None else Counter(label for label, _, _ in events[i])
                        for i in validation_index]
    postprocessing = tune_postprocessing(
        rows, [label_sets[i] for i in validation_index], classes, hop_s=backend.hop_s,
        overlapping=(backend.focus_samples or backend.window_samples) > backend.hop_samples,
        event_counts=event_counts,
        cells_options=None if cells == "auto" else (cells,),
    )
    # Frame scores calibrated on the same validation part (frame targets where strong
    # labels give them, each recording's top frame where only its label set does). The
    # map is monotone, so the thresholds chosen on the raw scores move with it and
    # `detect` finds the same events; only what a score means changes.
    columns = [str(c) for c in model.classes_]
    calibration = fit_frame_calibration(
        [row[0] for row in rows], [label_sets[i] for i in validation_index], columns,
        frame_targets=None if events is None else [
            None if events[i] is None else frame_targets_for(events[i], frames[i][1], frames[i][2], columns)
            for i in validation_index
        ],
    )
    raw_thresholds = np.array([[postprocessing["thresholds"][c] for c in columns]])
    moved = apply_frame_calibration(raw_thresholds, calibration, columns)[0]
    postprocessing["thresholds"] = {c: float(t) for c, t in zip(columns, moved)}
    postprocessing["calibration"] = calibration
    counts: dict[str, int] = {}
    for labels in label_sets:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    training = dict(model.training)
    training.update({
        "n_items": len(frames), "n_training": len(train_index),
        "n_validation": len(validation_index), "class_counts": dict(sorted(counts.items())),
        "n_without_label": sum(1 for labels in label_sets if not labels),
        "n_groups": len(set(groups.tolist())),
        "n_strongly_labelled": 0 if events is None
        else sum(events[i] is not None for i in range(len(frames))),
    })
    return EarmarkModel(
        model.pipeline, backend_identity=model.backend_identity, learner="detector",
        learner_params=settings, training=training, kind="frames",
        postprocessing=postprocessing,
    )
