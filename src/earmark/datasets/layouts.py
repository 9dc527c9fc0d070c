"""Read a dataset folder or CSV as a :class:`~earmark.manifest.Manifest`, detecting its layout.

Longer than ~500 lines: each layout is a short reader, and detection must see them
all at once to say which one a folder is and why the others are not.

Layouts, with what each contributes beyond labels:

``csv``
    A CSV with a path column and a label column (names in
    :data:`earmark.manifest.CSV_ALIASES`); optional fold, group, domain, start_s, end_s.
    Relative paths are resolved against the CSV's folder. A folder holding exactly one such
    CSV at its top level is read through it.
``esc50``
    ``meta/esc50.csv`` + ``audio/``: label = category, fold = official fold (1-5),
    group = ``src_file`` (clips cut from one recording share it), extra column ``esc10``.
``urbansound8k``
    ``metadata/UrbanSound8K.csv`` + ``audio/foldN/``: label = class, fold = fold (1-10),
    group = ``fsID`` (the Freesound recording), extra column ``salience``.
``fsdd``
    Free Spoken Digit Dataset, ``{digit}_{speaker}_{index}.wav`` in ``recordings/`` or in
    the folder itself: label = digit, group = domain = speaker.
``speech_commands``
    One folder per word + ``validation_list.txt`` / ``testing_list.txt``: label = word,
    group = speaker (the hash before ``_nohash_``), fold = 0 train, 1 validation, 2 test
    (from the official lists; files in neither are training). ``_background_noise_`` and
    other folders starting with ``_`` are skipped.
``philharmonia``
    A class-per-folder tree in which every file is named
    ``{instrument}_{note}_{duration}_{dynamic}_{articulation}.mp3`` with a note such as
    ``A4`` or ``As2`` (A sharp 2): label = folder, domain = dynamic, group = ``{folder}/{dynamic}``
    (all notes of one instrument at one dynamic stay together, so a test fold holds
    dynamics unseen in training); extra columns ``note``, ``duration``, ``articulation``.
    To test generalisation to unseen notes instead, regroup:
    ``Manifest(m.frame.assign(group=m.frame["note"]))``.
``folders``
    The fallback: label = name of the immediate subfolder, audio files found recursively
    inside it (by extension, :data:`earmark.audio.SUPPORTED_EXTENSIONS`).

Detection checks every specific layout (all but ``folders``); exactly one must match, or
none, in which case a tree of class folders is ``folders``. Anything else raises
:class:`LayoutError` saying what was found.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ..audio import SUPPORTED_EXTENSIONS
from ..exceptions import ManifestError, ParameterError, LayoutError
from ..manifest import Manifest, ManifestFormatError, resolve_csv_columns

__all__ = ["LAYOUTS", "LayoutError", "detect_layout", "load_dataset"]

LAYOUTS = ("csv", "esc50", "urbansound8k", "fsdd", "speech_commands", "philharmonia", "folders")

SPEECH_COMMANDS_FOLDS = {"train": 0, "validation": 1, "test": 2}

_FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)\.wav$", re.IGNORECASE)
_PHILHARMONIA_NAME = re.compile(
    r"^(?P<instrument>[^_]+)_(?P<note>[A-G]s?\d)_(?P<duration>[^_]+)_(?P<dynamic>[^_]+)"
    r"_(?P<articulation>[^_]+)\.mp3$",
    re.IGNORECASE,
)
_SPEECH_LISTS = {"validation_list.txt": 1, "testing_list.txt": 2}
_ESC50_META = ("meta", "esc50.csv")
_URBANSOUND_META = ("metadata", "UrbanSound8K.csv")


def _visible(name: str) -> bool:
    # "._x.wav" files are macOS metadata, not audio, though they carry the extension.
    return not name.startswith(".")


def _is_audio(name: str) -> bool:
    return _visible(name) and os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS


def _audio_in(folder: Path, *, recursive: bool) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if _is_audio(p.name) and p.is_file())
    found = []
    for here, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if _visible(name)]
        found.extend(Path(here, name) for name in files if _is_audio(name))
    return sorted(found)


def _subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _visible(p.name))


def _is_manifest_csv(path: Path) -> bool:
    return _csv_fault(path) is None


#: Columns of the CSVs earmark writes (predict, detect): results, never a manifest.
_OUTPUT_COLUMNS = {"score", "top_k", "unknown", "error", "probability"}
#: Rows of a candidate CSV whose paths are checked.
_CSV_PROBE_ROWS = 200


def _csv_fault(path: Path) -> str | None:
    """Why a CSV at the top of a folder is not that folder's manifest, or None if it is."""
    try:
        header = pd.read_csv(path, nrows=0).columns
        columns = resolve_csv_columns(header)
    except (ManifestFormatError, OSError, ValueError, UnicodeDecodeError):
        return "no path and label columns"
    if {str(name).strip().lower() for name in header} & {"score"}:
        return "earmark's output (a score column), not labels"
    path_column = next(name for name, role in columns.items() if role == "path")
    try:
        listed = pd.read_csv(path, usecols=[path_column], nrows=_CSV_PROBE_ROWS, dtype=str)
    except (OSError, ValueError, UnicodeDecodeError):
        return "unreadable"
    names = [name for name in listed[path_column].dropna() if str(name).strip()]
    if not names:
        return "lists no files"
    present = sum(os.path.isfile(path.parent / str(name)) for name in names)
    if present * 2 < len(names):
        return f"its paths do not name files here ({present} of the first {len(names)} exist)"
    return None


class _Survey:
    """What a folder holds, gathered once for detection."""

    def __init__(self, root: Path):
        self.root = root
        self.top_audio = _audio_in(root, recursive=False)
        self.class_audio = {}
        for folder in _subfolders(root):
            files = _audio_in(folder, recursive=True)
            if files:
                self.class_audio[folder.name] = files
        self.csvs = sorted(p for p in root.glob("*.csv") if _visible(p.name))
        faults = {p: _csv_fault(p) for p in self.csvs}
        self.manifest_csvs = [p for p in self.csvs if faults[p] is None]
        #: CSVs at the top that are not the manifest, with the reason.
        self.ignored_csvs = {p.name: fault for p, fault in faults.items() if fault is not None}

    def evidence(self) -> dict[str, str]:
        """Each specific layout that matches, with the files that made it match."""
        root, found = self.root, {}
        if root.joinpath(*_ESC50_META).is_file() and (root / "audio").is_dir():
            found["esc50"] = "meta/esc50.csv and audio/"
        if root.joinpath(*_URBANSOUND_META).is_file() and (root / "audio").is_dir():
            found["urbansound8k"] = "metadata/UrbanSound8K.csv and audio/"
        lists = [name for name in _SPEECH_LISTS if (root / name).is_file()]
        words = [
            name
            for name, files in self.class_audio.items()
            if not name.startswith("_") and any("_nohash_" in p.name for p in files)
        ]
        if lists and words:
            found["speech_commands"] = f"{' and '.join(lists)} with {len(words)} word folders"
        in_recordings = "recordings" in self.class_audio and not self.top_audio
        digits = self.class_audio["recordings"] if in_recordings else self.top_audio
        others = set(self.class_audio) - ({"recordings"} if in_recordings else set())
        if digits and not others and all(_FSDD_NAME.match(p.name) for p in digits):
            where = "recordings/" if in_recordings else "the folder"
            found["fsdd"] = f"{len(digits)} {{digit}}_{{speaker}}_{{index}}.wav files in {where}"
        if self.class_audio and not self.top_audio:
            # The file's instrument need not match its folder (cor_anglais holds
            # english-horn_*.mp3), so the strict note field (A4, As2) does the telling.
            files = [p for files in self.class_audio.values() for p in files]
            if all(_PHILHARMONIA_NAME.match(p.name) for p in files):
                found["philharmonia"] = (
                    f"{len(self.class_audio)} instrument folders of "
                    "{instrument}_{note}_{duration}_{dynamic}_{articulation}.mp3 files"
                )
        if self.manifest_csvs:
            found["csv"] = "manifest CSV " + ", ".join(p.name for p in self.manifest_csvs)
        return found

    def found(self) -> str:
        names = list(self.class_audio)
        return (
            f"{len(self.top_audio)} audio files at the top, "
            f"{len(self.class_audio)} subfolders with audio"
            + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else "")
            + f", CSV files: {[p.name for p in self.csvs] or 'none'}"
        )


def _checked_path(path) -> Path:
    path = Path(os.path.abspath(Path(path).expanduser()))
    if not path.exists():
        raise ManifestError(f"{path}: no such file or folder")
    return path


def detect_layout(path) -> str:
    """Name the layout of a dataset folder or CSV file.

    Parameters
    ----------
    path : str or Path
        A dataset folder, or a CSV file (a manifest, ``meta/esc50.csv`` or
        ``metadata/UrbanSound8K.csv``).

    Returns
    -------
    layout : str
        One of :data:`LAYOUTS`.

    Raises
    ------
    LayoutError
        If the layout is ambiguous (several specific layouts match) or unrecognised; the
        message says what was found.

    Examples
    --------
    >>> detect_layout("../shared/datasets/fsdd")  # doctest: +SKIP
    'fsdd'
    """
    path = _checked_path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise LayoutError(f"{path}: expected a dataset folder or a .csv file, got a file")
        has_audio = (path.parents[1] / "audio").is_dir()
        if (path.parent.name, path.name) == _ESC50_META and has_audio:
            return "esc50"
        if (path.parent.name, path.name) == _URBANSOUND_META and has_audio:
            return "urbansound8k"
        try:
            resolve_csv_columns(pd.read_csv(path, nrows=0).columns)
        except (ValueError, UnicodeDecodeError) as error:
            raise LayoutError(f"{path}: not a manifest CSV: {error}") from None
        return "csv"
    survey = _Survey(path)
    evidence = survey.evidence()
    if len(evidence) > 1:
        raise LayoutError(
            f"{path}: ambiguous layout, it matches {', '.join(evidence)} ("
            + "; ".join(f"{name}: {why}" for name, why in evidence.items())
            + "); pass layout= to choose one",
            candidates=evidence,
        )
    if evidence:
        (layout,) = evidence
        if layout == "csv" and len(survey.manifest_csvs) > 1:
            raise LayoutError(
                f"{path}: found {len(survey.manifest_csvs)} manifest CSVs "
                f"({', '.join(p.name for p in survey.manifest_csvs)}); pass the one to use",
                candidates=["csv"],
            )
        return layout
    if survey.class_audio and not survey.top_audio:
        return "folders"
    if survey.class_audio:
        raise LayoutError(
            f"{path}: unrecognised layout: {survey.found()}. Class folders name the labels, "
            "so files directly in the dataset folder have none: move them into a class "
            "folder, or list every file with its label in a CSV"
        )
    raise LayoutError(
        f"{path}: unrecognised layout: {survey.found()}. Expected one folder per class, a "
        "CSV with path and label columns, or a known dataset (ESC-50, UrbanSound8K, FSDD, "
        "Speech Commands, Philharmonia)"
    )


def _require_files(frame: pd.DataFrame, origin: Path) -> pd.DataFrame:
    missing = [p for p in frame["path"] if not os.path.isfile(p)]
    if missing:
        raise ManifestError(
            f"{origin}: {len(missing)} of {len(frame)} listed audio files do not exist, "
            f"for example {missing[0]}"
        )
    return frame


def _read_meta(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str)
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise ManifestFormatError(
            f"{path}: expected columns {list(needed)}, missing {absent} "
            f"(got {list(table.columns)})"
        )
    return table


def _esc50(root: Path) -> Manifest:
    meta_path = root.joinpath(*_ESC50_META)
    meta = _read_meta(meta_path, ("filename", "fold", "category", "src_file"))
    frame = pd.DataFrame(
        {
            "path": [str(root / "audio" / name) for name in meta["filename"]],
            "labels": meta["category"],
            "fold": meta["fold"],
            "group": meta["src_file"],
        }
    )
    if "esc10" in meta.columns:
        frame["esc10"] = meta["esc10"].str.lower().eq("true").to_numpy()
    return Manifest(_require_files(frame, meta_path))


def _urbansound8k(root: Path) -> Manifest:
    meta_path = root.joinpath(*_URBANSOUND_META)
    meta = _read_meta(meta_path, ("slice_file_name", "fsID", "fold", "class"))
    # The clips are already cut: "start"/"end" locate each clip inside its original
    # Freesound recording, not inside the clip file, so they must not become start_s/end_s.
    frame = pd.DataFrame(
        {
            "path": [
                str(root / "audio" / f"fold{fold}" / name)
                for fold, name in zip(meta["fold"], meta["slice_file_name"])
            ],
            "labels": meta["class"],
            "fold": meta["fold"],
            "group": meta["fsID"],
        }
    )
    if "salience" in meta.columns:
        frame["salience"] = meta["salience"].to_numpy()
    return Manifest(_require_files(frame, meta_path))


def _fsdd(root: Path) -> Manifest:
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    rows = []
    for path in _audio_in(folder, recursive=folder != root):
        match = _FSDD_NAME.match(path.name)
        if not match:
            raise ManifestFormatError(
                f"{path}: expected an FSDD file name {{digit}}_{{speaker}}_{{index}}.wav"
            )
        rows.append((str(path), match["digit"], match["speaker"], match["speaker"]))
    if not rows:
        raise ManifestError(f"{folder}: expected FSDD .wav recordings, found none")
    return Manifest(pd.DataFrame(rows, columns=["path", "labels", "group", "domain"]))


def _speech_commands(root: Path) -> Manifest:
    official = {}
    for name, fold in _SPEECH_LISTS.items():
        if (root / name).is_file():
            for line in (root / name).read_text().split():
                official[line.strip()] = fold
    rows = []
    for folder in _subfolders(root):
        if folder.name.startswith("_"):  # _background_noise_: long noise files, no word
            continue
        for path in _audio_in(folder, recursive=False):
            speaker = path.stem.split("_nohash_")[0]
            fold = official.get(f"{folder.name}/{path.name}", SPEECH_COMMANDS_FOLDS["train"])
            rows.append((str(path), folder.name, fold, speaker))
    if not rows:
        raise ManifestError(f"{root}: expected word folders of .wav files, found none")
    return Manifest(pd.DataFrame(rows, columns=["path", "labels", "fold", "group"]))


def _philharmonia(root: Path) -> Manifest:
    rows = []
    for folder in _subfolders(root):
        for path in _audio_in(folder, recursive=True):
            match = _PHILHARMONIA_NAME.match(path.name)
            if not match:
                raise ManifestFormatError(
                    f"{path}: expected a Philharmonia file name "
                    "{instrument}_{note}_{duration}_{dynamic}_{articulation}.mp3"
                )
            dynamic = match["dynamic"]
            rows.append(
                (str(path), folder.name, f"{folder.name}/{dynamic}", dynamic)
                + (match["note"], match["duration"], match["articulation"])
            )
    columns = ["path", "labels", "group", "domain", "note", "duration", "articulation"]
    return Manifest(pd.DataFrame(rows, columns=columns))


def _folders(root: Path) -> Manifest:
    loose = _audio_in(root, recursive=False)
    if loose:
        raise ManifestError(
            f"{root}: {len(loose)} audio files (e.g. {loose[0].name}) lie outside any class "
            "folder, so they have no label: move them into one folder per class"
        )
    rows = [
        (str(path), folder.name)
        for folder in _subfolders(root)
        for path in _audio_in(folder, recursive=True)
    ]
    if not rows:
        raise ManifestError(f"{root}: expected one subfolder of audio files per class, found none")
    return Manifest(pd.DataFrame(rows, columns=["path", "labels"]))


def _csv(path: Path) -> Manifest:
    notes = []
    if path.is_dir():
        survey_csvs = sorted(p for p in path.glob("*.csv") if _visible(p.name))
        found = [p for p in survey_csvs if _csv_fault(p) is None]
        if len(found) != 1:
            raise LayoutError(
                f"{path}: expected exactly one manifest CSV in the folder, found "
                f"{[p.name for p in found] or 'none'}"
            )
        path = found[0]
        notes.append(f"manifest: {path.name}")
    manifest = Manifest.from_csv(path)
    _require_files(manifest.frame, path)
    manifest.detection_notes = notes
    return manifest


_BUILDERS = {
    "esc50": _esc50,
    "urbansound8k": _urbansound8k,
    "fsdd": _fsdd,
    "speech_commands": _speech_commands,
    "philharmonia": _philharmonia,
    "folders": _folders,
}


def load_dataset(path, *, layout: str = "auto") -> Manifest:
    """Read a dataset folder or CSV file as a manifest.

    Parameters
    ----------
    path : str or Path
        A dataset folder or a CSV file.
    layout : str
        ``"auto"`` to detect it (:func:`detect_layout`), or one of :data:`LAYOUTS` to
        force it.

    Returns
    -------
    manifest : Manifest
        One row per audio item; ``manifest.source`` names the layout used.

    Raises
    ------
    LayoutError
        If ``layout="auto"`` and the layout is ambiguous or unrecognised.
    ManifestError
        If the dataset's metadata is malformed or lists files that do not exist.

    Examples
    --------
    >>> manifest = load_dataset("../shared/datasets/fsdd")  # doctest: +SKIP
    >>> manifest.source, len(manifest), manifest.has_groups  # doctest: +SKIP
    ('fsdd', 3000, True)
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ParameterError(f"expected layout 'auto' or one of {list(LAYOUTS)}, got {layout!r}")
    path = _checked_path(path)
    ignored = {}
    if path.is_dir():
        ignored = {p.name: _csv_fault(p) for p in sorted(path.glob("*.csv")) if _visible(p.name)}
        ignored = {name: fault for name, fault in ignored.items() if fault is not None}
    if layout == "auto":
        layout = detect_layout(path)
    if layout == "csv":
        manifest = _csv(path)
    else:
        if path.is_file():
            if layout not in ("esc50", "urbansound8k"):
                raise ParameterError(f"layout {layout!r} expects a folder, got the file {path}")
            path = path.parents[1]  # meta/esc50.csv or metadata/UrbanSound8K.csv
        manifest = _BUILDERS[layout](path)
    manifest.source = layout
    #: What detection decided beyond the layout: which CSV it read, which it ignored,
    #: which files it did not read as audio.
    manifest.detection_notes = list(getattr(manifest, "detection_notes", [])) + [
        f"ignored {name}: {fault}" for name, fault in ignored.items()
    ]
    if path.is_dir() and layout != "csv":
        manifest.detection_notes += _unread_note(path)
    return manifest


#: Files a dataset folder holds beside its audio, not worth a word.
_COMPANIONS = {
    ".csv", ".tsv", ".txt", ".json", ".md", ".rst", ".yaml", ".yml", ".xml", ".html", ".htm",
    ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".npy", ".npz", ".log", ".py", ".ipynb",
    ".earmark", ".protonet", ".lock", "",
}


def _unread_note(root: Path) -> list[str]:
    """A note on the files of types earmark does not read as audio, so none go unsaid."""
    unread: dict[str, list[str]] = {}
    for here, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if _visible(name)]
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if _visible(name) and suffix not in SUPPORTED_EXTENSIONS and suffix not in _COMPANIONS:
                unread.setdefault(suffix, []).append(os.path.join(here, name))
    if not unread:
        return []
    total = sum(len(paths) for paths in unread.values())
    kinds = ", ".join(f"{len(paths)} {suffix}" for suffix, paths in sorted(unread.items()))
    example = next(iter(sorted(unread.values())))[0]
    return [
        f"not read: {total} file(s) of types earmark does not read as audio ({kinds}), "
        f"e.g. {example}"
    ]
