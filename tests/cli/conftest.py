"""Fixtures for the command-line tests: two ways to run ``earmark``, and small real datasets.

``cli`` runs the console entry point (:func:`earmark.cli.main`) in this process, so
the slow imports (scikit-learn, LanceDB) are paid once per session; ``cli_subprocess``
runs ``python -m earmark`` in a fresh interpreter, for exit codes and error output exactly
as a user sees them. Both take the cache folder from ``EARMARK_CACHE_DIR``, which every test
points into its own temporary folder, so no test touches the user's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _cli_data import CLIPS_PER_WORD, DIGITS, SPEAKERS, TAKES, WORDS, Run


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every command in a test uses this cache unless told otherwise; plain output (wide
    output for every test: ``tests/conftest.py``)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EARMARK_CACHE_DIR", str(cache))
    monkeypatch.setenv("NO_COLOR", "1")
    return cache


@pytest.fixture
def cache_dir(_private_cache) -> Path:
    return _private_cache


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``earmark ARGS...`` in this process through the real entry point."""
    from earmark.cli import main

    def run(*args) -> Run:
        monkeypatch.setattr(sys, "argv", ["earmark", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def cli_subprocess():
    """Run ``python -m earmark ARGS...`` in a fresh interpreter."""

    def run(*args, env: dict | None = None, timeout: float = 120) -> Run:
        completed = subprocess.run(
            [sys.executable, "-m", "earmark", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        return Run(completed.returncode, completed.stdout, completed.stderr)

    return run


def _copy_words(speech_commands_dir: Path, target: Path) -> Path:
    """A class-per-folder tree of real Speech Commands clips (no official lists)."""
    for word in WORDS:
        clips = sorted((speech_commands_dir / word).glob("*.wav"))[:CLIPS_PER_WORD]
        assert len(clips) == CLIPS_PER_WORD, f"expected {CLIPS_PER_WORD} clips of {word!r}"
        (target / word).mkdir(parents=True)
        for clip in clips:
            shutil.copy(clip, target / word / clip.name)
    return target


@pytest.fixture
def words_dir(speech_commands_dir, tmp_path) -> Path:
    """A fresh copy per test, so a test may add bad files to it."""
    return _copy_words(speech_commands_dir, tmp_path / "words")


@pytest.fixture(scope="session")
def digits_dir(fsdd_dir, tmp_path_factory) -> Path:
    """FSDD subset in FSDD's own layout (``recordings/{digit}_{speaker}_{take}.wav``)."""
    root = tmp_path_factory.mktemp("digits")
    (root / "recordings").mkdir()
    for digit in DIGITS:
        for speaker in SPEAKERS:
            for take in TAKES:
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy(fsdd_dir / "recordings" / name, root / "recordings" / name)
    return root


@pytest.fixture
def write_bad_files():
    """``write_bad_files(folder, good_wav)``: three files a user's data really holds."""
    return _write_bad_files


def _write_bad_files(folder: Path, good_wav: Path) -> dict[str, Path]:
    """An empty file, text named .wav, and a real wav cut short, all in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "empty": folder / "empty.wav",
        "text": folder / "text-as-audio.wav",
        "truncated": folder / "truncated.wav",
    }
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("this is not audio, only text with a .wav name\n")
    data = good_wav.read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    return bad
