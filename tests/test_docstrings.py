"""Every runnable example in a public docstring runs and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import earmark

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(earmark.__path__, prefix="earmark.")
    # Commands (and `python -m earmark`) run in tests/cli instead.
    if not info.name.startswith(("earmark.cli", "earmark.__main__"))
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    if result.attempted == 0:
        pytest.skip(f"{name} has no runnable examples")
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
