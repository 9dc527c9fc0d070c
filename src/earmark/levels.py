"""Answers at every level of a label taxonomy, from any model's class probabilities.

A model trained on leaf classes (``robin``, ``blackbird``) knows its groups too: a
group's probability is the sum of its leaves' probabilities. :func:`level_answers`
gives, for each clip, the most probable label at every level (leaf, parent,
grandparent, ...) with its probability, and a **backoff** label: the finest one whose
probability reaches ``min_proba`` ("a thrush" where the model cannot tell which). It
works for flat and hierarchical models alike, which is what ``earmark predict`` needs
for its per-level columns.

Summing leaves is also the rule few-shot evaluation found at least as good as the
hierarchical prototypes' own combined score (``earmark fewshot --method hierarchical``
against ``hierarchical-combined``; see :mod:`earmark.fewshot.hierarchical`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exceptions import ParameterError

__all__ = ["LevelAnswers", "level_answers"]


@dataclass
class LevelAnswers:
    """Per-level answers for a batch of clips.

    Attributes
    ----------
    levels : list of str
        ``"leaf"``, ``"level 1"``, ``"level 2"``, ...
    labels : dict of str to np.ndarray [shape=(n,), dtype=object]
        The most probable label at each level.
    scores : dict of str to np.ndarray [shape=(n,)]
        Its probability.
    backoff : np.ndarray [shape=(n,), dtype=object]
        The finest label whose probability reaches ``min_proba`` (the coarsest level's
        label where none does).
    backoff_level : np.ndarray [shape=(n,), dtype=object]
        The level it comes from.
    """

    levels: list
    labels: dict
    scores: dict
    backoff: np.ndarray
    backoff_level: np.ndarray

    def rows(self) -> list[dict]:
        """One dict per clip: ``{level: label, level + " score": p, ..., "backoff": ...}``,
        the columns ``predict`` writes."""
        out = []
        for i in range(len(self.backoff)):
            row = {}
            for level in self.levels:
                row[level] = self.labels[level][i]
                row[f"{level} score"] = float(self.scores[level][i])
            row["backoff"], row["backoff level"] = self.backoff[i], self.backoff_level[i]
            out.append(row)
        return out


def level_answers(proba, classes, taxonomy, *, min_proba: float = 0.5) -> LevelAnswers:
    """The most probable label at every taxonomy level, and a backoff label.

    Parameters
    ----------
    proba : np.ndarray [shape=(n, n_classes)]
        Leaf probabilities (calibrated ones make ``min_proba`` mean what it says).
    classes : array-like [shape=(n_classes,)]
        Leaf labels, the columns of ``proba``. A class the taxonomy does not know is its
        own group at every level.
    taxonomy : Taxonomy, mapping, or name
        See :func:`earmark.taxonomy.load_taxonomy`.
    min_proba : float in (0, 1]
        The backoff goes up a level while the answer's probability is below this.

    Returns
    -------
    LevelAnswers

    Examples
    --------
    >>> answers = level_answers([[0.4, 0.35, 0.25]], ["robin", "blackbird", "crow"],
    ...                         {"robin": "thrush", "blackbird": "thrush", "crow": "corvid"})
    >>> answers.labels["level 1"].tolist(), answers.backoff.tolist()
    (['thrush'], ['thrush'])
    """
    from .taxonomy import Taxonomy, load_taxonomy

    if not 0 < min_proba <= 1:
        raise ParameterError(f"expected min_proba in (0, 1], got {min_proba!r}")
    tree = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes, dtype=object)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ParameterError(
            f"expected proba of shape (n, {len(classes)}), got {proba.shape}"
        )
    depth = max((tree.depth(str(label)) for label in classes), default=0)
    levels, labels, scores = [], {}, {}
    for level in range(depth + 1):
        name = "leaf" if level == 0 else f"level {level}"
        if level == 0:
            groups, summed = classes, proba
        else:
            names = [tree.at_level(str(label), level) for label in classes]
            groups, index = np.unique(np.array(names, dtype=str), return_inverse=True)
            groups = groups.astype(object)
            summed = np.zeros((len(proba), len(groups)))
            np.add.at(summed.T, index, proba.T)
        best = np.argmax(summed, axis=1)
        levels.append(name)
        labels[name] = groups[best]
        scores[name] = summed[np.arange(len(proba)), best]
    backoff = np.empty(len(proba), dtype=object)
    backoff_level = np.empty(len(proba), dtype=object)
    decided = np.zeros(len(proba), dtype=bool)
    for h, name in enumerate(levels):
        take = ~decided & ((scores[name] >= min_proba) | (h == len(levels) - 1))
        backoff[take], backoff_level[take] = labels[name][take], name
        decided |= take
    return LevelAnswers(levels, labels, scores, backoff, backoff_level)
