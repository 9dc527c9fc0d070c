"""Shared fixtures: real audio from ../shared/datasets, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Rich fixes a console's width from COLUMNS when the console is made, and earmark's
# command line makes its consoles at import, in whichever test comes first; without a
# terminal they fold at 80 columns, splitting the long temporary paths (longer still in
# pytest-xdist's workers) that tests look for in the output.
os.environ["COLUMNS"] = "200"

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EARMARK_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def _dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} not found at {path} (set EARMARK_SHARED_DATASETS)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """Free Spoken Digit Dataset: recordings/{digit}_{speaker}_{index}.wav, 8 kHz."""
    return _dataset("fsdd")


@pytest.fixture(scope="session")
def speech_commands_dir() -> Path:
    return _dataset("speech-commands-mini")


@pytest.fixture(scope="session")
def philharmonia_dir() -> Path:
    return _dataset("philharmonia-mini")


@pytest.fixture(scope="session")
def fsdd(fsdd_dir):
    """MFCC clip embeddings of a 240-clip FSDD subset, speakers as groups (tests/_embeddings.py)."""
    from _embeddings import fsdd_mfcc

    return fsdd_mfcc(fsdd_dir)


@pytest.fixture(scope="module")
def one_blas_thread():
    """Many tiny fits: a second BLAS thread costs more than it gives on 2 shared cores."""
    from _embeddings import one_blas_thread as limit

    with limit():
        yield


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    """No test may reach a model hub (earmark must work offline), and none may touch
    the user's own embedding cache: the default cache is the test's own folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("EARMARK_CACHE_DIR", str(tmp_path / "earmark-cache"))


# Property tests: no example database in the work tree, no deadline on a shared machine.
settings.register_profile("earmark", database=None, deadline=None)
settings.load_profile("earmark")
