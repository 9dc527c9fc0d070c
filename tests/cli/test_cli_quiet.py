"""What a command prints besides its results: the licence once per backend and cache,
no runtime greetings, nothing at all under -q."""

from __future__ import annotations

import pytest


def test_licence_once_per_cache_no_xnnpack_line_and_silence_under_q(
    cli_subprocess, digits_dir, tmp_path
):
    from earmark.backends import get_backend
    from earmark.exceptions import BackendUnavailableError

    try:
        get_backend("birdnet").require()
    except BackendUnavailableError as error:
        pytest.skip(f"birdnet is not installed: {error}")
    clip = sorted((digits_dir / "recordings").glob("*.wav"))[0]
    env = {"EARMARK_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}

    first = cli_subprocess("embed", clip, "-b", "birdnet", env=env)
    assert first.code == 0, first.stderr
    assert "non-commercial" in first.stderr.lower() and "credit:" in first.stderr
    assert "Kahl" in first.stderr
    assert "XNNPACK" not in first.stderr and "INFO:" not in first.stderr
    assert "1 items: 1 embedded" in first.stderr

    second = cli_subprocess("embed", clip, "-b", "birdnet", env=env)
    assert second.code == 0, second.stderr
    assert "backend birdnet" in second.stderr
    assert "licence" not in second.stderr and "credit" not in second.stderr
    assert "1 reused from the cache" in second.stderr
    assert "1 of 1 items already in the cache" in second.stderr

    other_cache = {**env, "EARMARK_CACHE_DIR": str(tmp_path / "other")}
    quiet = cli_subprocess("embed", clip, "-b", "birdnet", "-q", env=other_cache)
    assert quiet.code == 0
    assert quiet.stderr.strip().splitlines() == [
        line for line in quiet.stderr.strip().splitlines() if line.startswith("1 items")
    ], quiet.stderr
