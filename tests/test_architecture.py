"""The layout rules of docs/architecture.md, checked on the source rather than hoped for."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "earmark"
#: A module longer than this says at its top why (docs/architecture.md).
MAX_LINES = 500


def _modules():
    for path in sorted(SOURCE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _package_of(path: Path) -> tuple[str, ...]:
    """The earmark package a module belongs to: ('models',), ('cli',), () for the top level."""
    return path.relative_to(SOURCE).parent.parts


def _absolute(path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        return (node.module or "").split(".")
    base = ["earmark", *path.relative_to(SOURCE).parent.parts]
    base = base[: len(base) - (node.level - 1)]
    return base + ([*node.module.split(".")] if node.module else [])


def _allowed(mine: tuple, owner: tuple) -> bool:
    """Within the owner's package; the top level's private names only at the top level."""
    return tuple(mine[: len(owner)]) == owner and (len(owner) > 1 or len(mine) == 1)


def test_no_private_name_is_imported_across_packages():
    """``from earmark.x import _name`` or ``earmark.x._module`` only within package ``x``."""
    offences = []
    for path, tree in _modules():
        mine = ("earmark", *_package_of(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _absolute(path, node)
            if not target or target[0] != "earmark":
                continue
            names = [alias.name for alias in node.names]
            private_module = next((i for i, part in enumerate(target) if part.startswith("_")), None)
            if private_module is not None:
                owner = tuple(target[:private_module])
                if not _allowed(mine, owner):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {'.'.join(target)}")
                continue
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    owner = tuple(target) if (SOURCE.joinpath(*target[1:]).is_dir()) else tuple(target[:-1])
                    if not _allowed(mine, owner):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name} from {'.'.join(target)}")
    assert not offences, "\n".join(offences)


def test_long_modules_say_why():
    long = []
    for path, _ in _modules():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any("Longer than" in line for line in lines[:40]):
            long.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not long, "modules over ~500 lines without a reason at the top:\n" + "\n".join(long)


def test_benchmarks_import_nothing_from_tests():
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tests":
                raise AssertionError(f"{path.name} imports {node.module}")
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tests" for a in node.names):
                raise AssertionError(f"{path.name} imports tests")
        assert "sys.path.insert" not in path.read_text() or "tests" not in path.read_text().split("sys.path.insert")[1][:80], path.name


def test_every_exception_class_lives_in_exceptions_py():
    for path, tree in _modules():
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not (bases & {"Exception", "EarmarkError", "ValueError", "RuntimeError"} or
                            any(b.endswith("Error") for b in bases)), \
                    f"{path.relative_to(ROOT)} defines exception {node.name}; put it in exceptions.py"


def test_every_saved_estimator_class_is_registered():
    """Estimators earmark defines are either in the skops allow-list or say why not."""
    from earmark.models import ESTIMATORS, NOT_SAVED

    found = set()
    for path, tree in _modules():
        module = ".".join(("earmark", *path.relative_to(SOURCE).with_suffix("").parts))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if "BaseEstimator" in bases:
                    found.add(f"{module}:{node.name}")
    registered = set(ESTIMATORS) | set(NOT_SAVED)
    assert found <= registered, f"estimators missing from earmark.models.ESTIMATORS: {sorted(found - registered)}"
    assert registered <= found, f"registered but not defined: {sorted(registered - found)}"
