"""Few-shot methods by name: what ``earmark fewshot --method`` and
:func:`earmark.fewshot.evaluation.evaluate_episodes` accept as a string.

Each entry builds a fresh, unfitted scikit-learn classifier; the episodes clone it and
fit it on each support set. Adding a method is one line::

    METHODS["name"] = Method("what it is", lambda **context: SomeClassifier())

``context`` holds ``taxonomy`` (a :class:`~earmark.taxonomy.Taxonomy` or None) and
``random_state``. Every other learner of :mod:`earmark.learners` is also a method, as a
reference that does not use prototypes (its ``prototype`` learners have entries here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..exceptions import ParameterError
from ..learners import LEARNERS

__all__ = ["Method", "METHODS", "make_method"]


@dataclass(frozen=True)
class Method:
    """A named few-shot method.

    Attributes
    ----------
    description : str
        One line for listings.
    build : callable
        ``build(taxonomy=..., random_state=...)`` returns an unfitted classifier.
    needs_taxonomy : bool
        True if it cannot work without a taxonomy.
    learner : bool
        Built by :func:`earmark.learners.make_learner`, so fitted through
        :func:`earmark.learners.fit_learner`, which adapts it to tiny support sets
        (fewer neighbours, no calibration with one shot) and says so.
    """

    description: str
    build: Callable[..., Any]
    needs_taxonomy: bool = False
    learner: bool = False


def _prototypes(**params):
    from .prototypes import PrototypeClassifier

    return PrototypeClassifier(**params)


def _hierarchical_combined(*, taxonomy=None, **_context):
    from .hierarchical import HierarchicalPrototypeClassifier

    return HierarchicalPrototypeClassifier(taxonomy=taxonomy, group_rule="combined")


def _hierarchical(*, taxonomy=None, **_context):
    from .hierarchical import HierarchicalPrototypeClassifier

    return HierarchicalPrototypeClassifier(taxonomy=taxonomy)


def _learner(name: str, *, random_state: int | None = 0, **_context):
    from ..learners import make_learner

    # Thousands of episodes read labels and raw scores only: no calibration folds.
    return make_learner(name, random_state=random_state, calibrate=False)


METHODS: dict[str, Method] = {
    "prototype": Method(
        "class means in a whitened cosine space, with an 'unknown' threshold "
        "(PrototypeClassifier defaults)",
        lambda **_: _prototypes(),
    ),
    "prototype-euclidean": Method(
        "class means of standardised embeddings, nearest by Euclidean distance "
        "(Snell et al. 2017)",
        lambda **_: _prototypes(
            metric="euclidean", normalize=False, standardize=True, whiten=False
        ),
    ),
    "prototype-cosine": Method(
        "class means of L2-normalised, centred embeddings, nearest by cosine distance",
        lambda **_: _prototypes(metric="cosine", normalize=True, standardize="center",
                                whiten=False),
    ),
    "hierarchical": Method(
        "prototypes of a label taxonomy's leaves; a group's probability is the sum of "
        "its leaves'",
        _hierarchical,
        needs_taxonomy=True,
    ),
    "hierarchical-combined": Method(
        "prototypes at every level of a label taxonomy, scores summed over the levels "
        "(the group answer of earlier versions)",
        _hierarchical_combined,
        needs_taxonomy=True,
    ),
}
# The other learners, as references that do not use prototypes.
METHODS.update(
    {
        name: Method(
            f"reference learner: {text}",
            lambda name=name, **context: _learner(name, **context),
            learner=True,
        )
        for name, text in LEARNERS.items()
        if not name.startswith("prototype")
    }
)


def make_method(name: str, *, taxonomy=None, random_state: int | None = 0):
    """An unfitted classifier for a method name.

    Examples
    --------
    >>> make_method("logreg").steps[-1][0]
    'classifier'
    """
    if name not in METHODS:
        raise ParameterError(
            f"unknown few-shot method {name!r}; expected one of: {', '.join(METHODS)}"
        )
    method = METHODS[name]
    if method.needs_taxonomy and taxonomy is None:
        raise ParameterError(f"method {name!r} needs a taxonomy (--taxonomy FILE_OR_NAME)")
    return method.build(taxonomy=taxonomy, random_state=random_state)
