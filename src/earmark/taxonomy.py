"""Label taxonomies: which class belongs to which coarser group.

A taxonomy is a forest of labels: every label has at most one parent, and the classes a
dataset uses are its leaves. Hierarchical prototypes (:mod:`earmark.fewshot.hierarchical`)
average leaf prototypes into their parents', and multi-label few-shot
(:mod:`earmark.fewshot.multilabel`) uses it as a consistency rule (a child implies its
parent).

A taxonomy file is YAML or JSON in one of two shapes:

* a parent map, ``child: parent`` (a parent may itself have a parent)::

      dog: animals
      rain: natural soundscapes

* a tree, nested mappings or lists of children::

      animals: [dog, rooster, pig]
      strings:
        bowed strings: [violin, cello]

Shipped taxonomies (:func:`load_taxonomy` by name): ``esc50`` (the five ESC-50 groups),
``philharmonia`` (instrument families), ``speech-commands`` (digits, command words and
auxiliary words, as in the dataset's own description).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from .exceptions import ParameterError

__all__ = ["Taxonomy", "load_taxonomy", "SHIPPED_TAXONOMIES"]

#: Names :func:`load_taxonomy` accepts instead of a path.
SHIPPED_TAXONOMIES = ("esc50", "philharmonia", "speech-commands")


class Taxonomy:
    """An immutable forest of labels (child -> parent).

    Parameters
    ----------
    parents : mapping of str to str
        Each label's parent. Roots need not be listed.

    Examples
    --------
    >>> t = Taxonomy.from_mapping({"violin": "strings", "cello": "strings", "oboe": "winds"})
    >>> t.parent("violin"), t.ancestors("violin"), t.children("strings")
    ('strings', ('strings',), ('cello', 'violin'))
    >>> sorted(t.closure(["oboe"]))
    ['oboe', 'winds']
    """

    def __init__(self, parents: Mapping[str, str]):
        parents = {str(child): str(parent) for child, parent in parents.items()}
        for child, parent in parents.items():
            if child == parent:
                raise ParameterError(f"taxonomy: {child!r} is its own parent")
        for label in parents:
            seen = [label]
            while seen[-1] in parents:
                seen.append(parents[seen[-1]])
                if seen[-1] in seen[:-1]:
                    raise ParameterError(f"taxonomy has a cycle: {' -> '.join(seen)}")
        self._parents = dict(sorted(parents.items()))
        children: dict[str, list[str]] = {}
        for child, parent in self._parents.items():
            children.setdefault(parent, []).append(child)
        self._children = {parent: tuple(sorted(kids)) for parent, kids in children.items()}

    # ------------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Taxonomy":
        """A taxonomy from a parent map or a tree (see the module docstring)."""
        if not isinstance(data, Mapping) or not data:
            raise ParameterError(
                f"expected a taxonomy as a non-empty mapping, got {type(data).__name__}"
            )
        if all(value is None or isinstance(value, str) for value in data.values()):
            return cls({child: parent for child, parent in data.items() if parent is not None})
        parents: dict[str, str] = {}
        _walk_tree(data, None, parents)
        return cls(parents)

    @classmethod
    def from_file(cls, path) -> "Taxonomy":
        """Read a YAML (``.yaml``/``.yml``) or JSON taxonomy file."""
        path = Path(path)
        if not path.is_file():
            raise ParameterError(f"{path}: no such taxonomy file")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as error:
            raise ParameterError(f"{path}: cannot parse the taxonomy ({error})") from None
        try:
            return cls.from_mapping(data)
        except ParameterError as error:
            raise ParameterError(f"{path}: {error}") from None

    # ----------------------------------------------------------------- questions
    def parent(self, label: str) -> str | None:
        """The label's parent, or None for a root or an unknown label."""
        return self._parents.get(str(label))

    def ancestors(self, label: str) -> tuple[str, ...]:
        """All ancestors, nearest first."""
        chain = []
        label = self._parents.get(str(label))
        while label is not None:
            chain.append(label)
            label = self._parents.get(label)
        return tuple(chain)

    def children(self, label: str) -> tuple[str, ...]:
        return self._children.get(str(label), ())

    def depth(self, label: str) -> int:
        """Number of ancestors (0 for a root)."""
        return len(self.ancestors(label))

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label that appears, as child or parent."""
        return tuple(sorted(set(self._parents) | set(self._children)))

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label not in self._children)

    @property
    def parents(self) -> dict[str, str]:
        """A copy of the child -> parent map."""
        return dict(self._parents)

    def closure(self, labels: Iterable[str]) -> set[str]:
        """The labels plus all their ancestors."""
        out: set[str] = set()
        for label in labels:
            out.add(str(label))
            out.update(self.ancestors(label))
        return out

    def at_level(self, label: str, level: int) -> str:
        """The ancestor ``level`` steps above ``label`` (0 is the label itself).

        Where the chain is shorter, its root is returned, so a shallow branch keeps its
        top label at every coarser level.
        """
        chain = (str(label), *self.ancestors(label))
        return chain[min(level, len(chain) - 1)]

    def check_covers(self, classes: Iterable[str]) -> None:
        """Raise if any class is not a leaf with a parent in this taxonomy."""
        classes = [str(c) for c in classes]
        missing = [c for c in classes if c not in self._parents]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:8])
            raise ParameterError(
                f"the taxonomy gives no parent for {len(missing)} of {len(classes)} classes: "
                f"{shown}{' ...' if len(missing) > 8 else ''}"
            )
        inner = [c for c in classes if c in self._children]
        if inner:
            raise ParameterError(
                f"classes must be leaves of the taxonomy; these have children: {inner[:8]}"
            )

    def to_dict(self) -> dict[str, str]:
        return self.parents

    def __eq__(self, other) -> bool:
        return isinstance(other, Taxonomy) and other._parents == self._parents

    def __repr__(self) -> str:
        return f"Taxonomy({len(self.leaves)} leaves, {len(self.labels) - len(self.leaves)} groups)"


def load_taxonomy(name_or_path) -> Taxonomy:
    """A taxonomy from whatever names one: a Taxonomy (returned as is), a child -> parent
    mapping or tree (:meth:`Taxonomy.from_mapping`), a shipped taxonomy's name
    (:data:`SHIPPED_TAXONOMIES`) or a file.

    Examples
    --------
    >>> load_taxonomy("esc50").parent("dog")
    'animals'
    >>> load_taxonomy({"violin": "strings"}).parent("violin")
    'strings'
    """
    if isinstance(name_or_path, Taxonomy):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return Taxonomy.from_mapping(name_or_path)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ParameterError(
            f"expected taxonomy as a Taxonomy, a child -> parent mapping, a shipped name "
            f"or a file, got {type(name_or_path).__name__}"
        )
    name = str(name_or_path)
    if name in SHIPPED_TAXONOMIES:
        folder = resources.files("earmark.datasets") / "taxonomies"
        with resources.as_file(folder / f"{name}.yaml") as path:
            return Taxonomy.from_file(path)
    path = Path(name)
    if not path.exists():
        raise ParameterError(
            f"{name!r} is neither a taxonomy file nor a shipped taxonomy "
            f"({', '.join(SHIPPED_TAXONOMIES)})"
        )
    return Taxonomy.from_file(path)


def _walk_tree(node: Any, parent: str | None, parents: dict[str, str]) -> None:
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = [(child, None) for child in node]
    else:
        raise ParameterError(f"expected a mapping or a list in the taxonomy tree, got {node!r}")
    for label, subtree in items:
        if not isinstance(label, (str, int)):
            raise ParameterError(f"expected label names in the taxonomy tree, got {label!r}")
        label = str(label)
        if label in parents and parents[label] != parent:
            raise ParameterError(
                f"taxonomy: {label!r} has two parents ({parents[label]!r}, {parent!r})"
            )
        if parent is not None:
            parents[label] = parent
        if subtree is not None:
            _walk_tree(subtree, label, parents)
