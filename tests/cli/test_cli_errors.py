"""User mistakes end in exit code 2 and one ``error:`` line on stderr, never a traceback.

These run ``python -m earmark`` in a fresh interpreter: the exit code and the streams are
exactly what a shell sees.
"""

from __future__ import annotations

import zipfile

import pytest


@pytest.fixture
def demo_clip():
    from earmark.datasets import demo_path

    return demo_path() / "recordings" / "7_george_0.wav"


def _one_error_line(run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


def test_unknown_backend_names_the_known_ones(cli_subprocess):
    run = cli_subprocess("embed", "demo", "--backend", "no-such-model", "--json")

    assert run.code == 2
    assert run.stdout == ""
    line = _one_error_line(run)
    assert "unknown backend 'no-such-model'" in line
    assert "mfcc" in line and "birdnet" in line


def test_missing_data_folder_is_named_on_one_line_even_in_a_narrow_terminal(
    cli_subprocess, tmp_path
):
    # Brackets would be eaten as markup, and 40 columns would fold the line, if printed raw.
    missing = tmp_path / "recordings[bed]" / "not-there"
    run = cli_subprocess(
        "evaluate", missing, "--backend", "placeholder", env={"COLUMNS": "40"}
    )

    assert run.code == 2
    assert str(missing) in _one_error_line(run)


def test_a_file_that_is_not_a_model_is_refused(cli_subprocess, tmp_path, demo_clip):
    clip = demo_clip
    text = tmp_path / "notes.earmark"
    text.write_text("not a model\n")

    run = cli_subprocess("predict", text, clip, "--json")

    assert run.code == 2, run.stderr
    assert run.stdout == ""
    line = _one_error_line(run)
    assert str(text) in line and "not an earmark model" in line


def test_other_files_given_as_a_model_are_refused(cli, tmp_path, demo_clip):
    # In this process: each subprocess would pay seconds of imports for the same check.
    clip = demo_clip
    other_zip = tmp_path / "photos.earmark"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("holiday.txt", "a zip, but not of a model")

    # Arguments swapped (audio where the model goes) is the likeliest mistake of all.
    for model in (other_zip, clip, tmp_path / "never-saved.earmark"):
        run = cli("predict", model, clip, "--json")

        assert run.code == 2, run.stderr
        assert run.stdout == ""
        assert str(model) in _one_error_line(run)


def test_usage_errors_show_usage_not_a_traceback(cli_subprocess):
    for args in ([], ["embed"], ["no-such-command"], ["embed", "demo", "--no-such-option"]):
        run = cli_subprocess(*args)

        assert run.code == 2, args
        assert "Traceback" not in run.stderr, run.stderr
        # Help for no arguments at all goes to stdout; a usage error to stderr.
        assert "Usage:" in (run.stdout if not args else run.stderr), args
