"""The demo dataset shipped inside the package, as scikit-learn ships its toy datasets.

``fsdd-mini``: 300 recordings of spoken digits (6 speakers x 10 digits x 5 takes) from
the Free Spoken Digit Dataset, CC BY-SA 4.0; see ``data/fsdd-mini/README.md``. It lets the
demo and the tests run with no download and no other data.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import ManifestError
from ..manifest import Manifest
from .layouts import load_dataset

__all__ = ["DEMO_ATTRIBUTION", "demo_path", "load_demo"]

DEMO_ATTRIBUTION = (
    "Demo recordings: 300 files from the Free Spoken Digit Dataset (FSDD) by Zohar Jackson, "
    "César Souza, Jason Flaks, Yuxin Pan, Hereman Nicolas, Adhish Thite and contributors, "
    "https://github.com/Jakobovski/free-spoken-digit-dataset (commit 26eb9aa), licensed "
    "under CC BY-SA 4.0, https://creativecommons.org/licenses/by-sa/4.0/"
)

_DEMO_FILES = 300


def demo_path() -> Path:
    """Folder of the bundled demo dataset (``fsdd-mini``, with ``recordings/`` inside).

    Returns
    -------
    path : Path

    Raises
    ------
    ManifestError
        If the installation lacks the data files.

    Examples
    --------
    >>> sorted(p.name for p in demo_path().iterdir())[:2]
    ['LICENSE', 'README.md']
    """
    path = Path(__file__).resolve().parent / "data" / "fsdd-mini"
    if not (path / "recordings").is_dir():
        raise ManifestError(
            f"the bundled demo dataset is missing from {path}: reinstall earmark "
            "(its package data was not installed)"
        )
    return path


def load_demo() -> Manifest:
    """The bundled demo dataset as a manifest: spoken digits, grouped by speaker.

    Returns
    -------
    manifest : Manifest
        300 items: labels ``'0'``-``'9'`` (30 each), group = domain = speaker (6 speakers,
        50 each), no folds. Evaluate leave-one-speaker-out: one speaker's takes are
        near-duplicates of each other.

    Examples
    --------
    >>> manifest = load_demo()
    >>> len(manifest), len(manifest.classes), len(set(manifest.groups))
    (300, 10, 6)
    """
    manifest = load_dataset(demo_path(), layout="fsdd")
    if len(manifest) != _DEMO_FILES:
        raise ManifestError(
            f"{demo_path()}: expected {_DEMO_FILES} demo recordings, found {len(manifest)}: "
            "reinstall earmark"
        )
    return manifest
