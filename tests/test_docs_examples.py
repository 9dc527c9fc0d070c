"""Every Python example in the README and docs/ runs, so the documentation cannot drift.

A block that needs what a test machine lacks (a SLURM cluster) says so on its first line
with ``# not run in the tests: <reason>``; every other block is executed as written, in
a fresh namespace, from a temporary working folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = "# not run in the tests:"


def _examples():
    for document in DOCUMENTS:
        text = document.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            yield pytest.param(match.group(1), id=f"{document.name}:{line}")


EXAMPLES = list(_examples())


def test_the_readme_has_python_examples():
    assert sum(1 for e in EXAMPLES if e.id.startswith("README.md")) >= 3


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code, tmp_path, monkeypatch):
    first = code.splitlines()[0]
    if first.startswith(SKIP):
        reason = first.removeprefix(SKIP).strip()
        assert reason, "say why the example cannot run in the tests"
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EARMARK_CACHE_DIR", str(tmp_path / "cache"))
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
