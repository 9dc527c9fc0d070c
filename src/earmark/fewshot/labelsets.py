"""Multi-label targets: label sets, indicator matrices, and closure under a taxonomy.

What :class:`~earmark.fewshot.multilabel.MultiLabelPrototypeClassifier` accepts as ``Y``
and how it becomes one 0/1 column per label:

* label collections, one per item (``[("dog",), ("dog", "rain"), ()]``);
* one label per item (``["dog", "rain"]``);
* a 0/1 indicator matrix (``np.ndarray``, scipy sparse, or rows of 0/1 numbers of equal
  length), whose columns ``classes`` names.

With a taxonomy every item's set is closed under ancestors (a dog is an animal).

Examples
--------
>>> classes, indicator = binarize([("dog",), ("dog", "rain"), ()], None, None, n_items=3)
>>> classes.tolist(), indicator.tolist()
(['dog', 'rain'], [[1, 0], [1, 1], [0, 0]])
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError

__all__ = ["binarize", "hierarchy", "resolve_taxonomy"]


def resolve_taxonomy(taxonomy):
    """A taxonomy object from a Taxonomy, a mapping, a shipped name or a file (or None)."""
    if taxonomy is None or hasattr(taxonomy, "ancestors"):
        return taxonomy
    from ..taxonomy import load_taxonomy

    return load_taxonomy(taxonomy)


def binarize(Y, classes, taxonomy, *, n_items: int, fixed: bool = False):
    """Labels of every item as an indicator matrix, and the label order.

    Parameters
    ----------
    Y : label collections, labels, or an indicator matrix [shape=(n_items, n_labels)]
    classes : sequence of str or None
        Label order (and the indicator's column names); None: sorted labels, or column
        numbers as str. Ancestors a taxonomy adds come after it, sorted.
    taxonomy : Taxonomy or None
    n_items : int
        Items expected (the rows of ``X``).
    fixed : bool
        ``classes`` is the complete order (a fitted model's ``classes_``): nothing may
        be added.

    Returns
    -------
    classes : np.ndarray [shape=(n_labels,)]
    indicator : np.ndarray [shape=(n_items, n_labels), dtype=int8]

    Raises
    ------
    ParameterError
        If ``Y`` cannot be read, has the wrong length or width, or names a label
        outside ``classes``.
    """
    given = None if classes is None else [str(label) for label in classes]
    if given is not None and len(set(given)) != len(given):
        raise ParameterError(f"classes has duplicates: {given}")
    kind, Y = _kind_of_target(Y)
    if kind == "indicator":
        matrix = np.asarray(Y.toarray() if hasattr(Y, "toarray") else Y)
        if matrix.shape[0] != n_items:
            raise ParameterError(f"expected {n_items} rows in Y like X, got {matrix.shape[0]}")
        if given is None:
            given = [str(column) for column in range(matrix.shape[1])]
        if matrix.shape[1] != len(given):
            raise ParameterError(
                f"expected Y with {len(given)} columns (one per class), got {matrix.shape[1]}"
            )
        if not np.isin(matrix, (0, 1)).all():
            raise ParameterError("expected a 0/1 indicator matrix Y; found other values")
        names = np.array(given, dtype=object)
        sets = [set(names[row.astype(bool)].tolist()) for row in matrix]
    elif kind == "single":
        labels = np.asarray(Y).ravel()
        if len(labels) != n_items:
            raise ParameterError(f"expected {n_items} labels in Y like X, got {len(labels)}")
        sets = [{str(label)} for label in labels.tolist()]
    else:
        if len(Y) != n_items:
            raise ParameterError(f"expected {n_items} label sets in Y like X, got {len(Y)}")
        sets = [_label_set(labels, i) for i, labels in enumerate(Y)]
    seen = set().union(*sets) if sets else set()
    if given is not None and not seen <= set(given):
        raise ParameterError(
            f"labels not among classes: {sorted(seen - set(given))[:8]}; "
            f"expected some of {given[:8]}"
        )
    if taxonomy is not None:
        sets = [taxonomy.closure(labels) for labels in sets]
    closed = set().union(*sets) if sets else set()
    if given is None:
        order = sorted(closed)
    elif fixed:
        order = given
        if not closed <= set(given):
            raise ParameterError(
                f"the taxonomy adds labels the model does not know: {sorted(closed - set(given))}"
            )
    else:
        # Ancestors the taxonomy adds come after the given order.
        order = given + sorted(closed - set(given))
    if not order:
        raise ParameterError("Y carries no label at all; expected at least one")
    position = {label: k for k, label in enumerate(order)}
    indicator = np.zeros((n_items, len(order)), dtype=np.int8)
    for i, labels in enumerate(sets):
        indicator[i, [position[label] for label in labels]] = 1
    return np.array(order), indicator


def _kind_of_target(Y) -> tuple[str, object]:
    """``"indicator"`` (a 0/1 matrix), ``"single"`` (one label per item) or ``"sets"``,
    and ``Y`` as a list or an array."""
    from sklearn.utils.multiclass import type_of_target

    if Y is None:
        raise ParameterError(
            "MultiLabelPrototypeClassifier requires y to be passed, but the target y is None"
        )
    if hasattr(Y, "toarray"):
        return "indicator", Y
    if isinstance(Y, (str, bytes)) or not (hasattr(Y, "__len__") or hasattr(Y, "__array__")):
        raise ParameterError(
            f"expected Y as a sequence of label collections or an indicator matrix, "
            f"got {type(Y).__name__}"
        )
    if not isinstance(Y, (list, tuple)):
        Y = np.asarray(Y)
    if isinstance(Y, np.ndarray) and Y.dtype.kind == "f" and not np.isfinite(Y).all():
        raise ParameterError("Input y contains NaN or infinity; expected labels")
    try:
        kind = type_of_target(Y)
    except ValueError:  # label sets of different sizes: "a legacy multi-label format"
        return "sets", Y
    if kind.startswith("continuous"):
        raise ParameterError(
            f"Unknown label type: {kind}; expected label names, label sets or a 0/1 "
            "indicator matrix"
        )
    if kind == "multilabel-indicator":
        return "indicator", Y
    if kind in ("binary", "multiclass"):
        return "single", Y
    if isinstance(Y, np.ndarray) and Y.ndim == 2 and Y.dtype.kind in "iuf":
        raise ParameterError("expected a 0/1 indicator matrix Y; found other values")
    return "sets", Y


def _label_set(labels, row: int) -> set[str]:
    if isinstance(labels, str):
        return {labels}
    if isinstance(labels, (tuple, list, set, frozenset, np.ndarray)):
        return {str(label) for label in labels}
    raise ParameterError(
        f"expected the labels of item {row} as a tuple, list or set of str, "
        f"got {type(labels).__name__} {labels!r}"
    )


def hierarchy(classes: np.ndarray, taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """Parent column of each label (-1 for none) and the labels with a parent, deepest
    first."""
    parent_index = np.full(len(classes), -1, dtype=np.int64)
    if taxonomy is None:
        return parent_index, np.zeros(0, dtype=np.int64)
    position = {label: k for k, label in enumerate(classes.tolist())}
    depth = np.zeros(len(classes), dtype=np.int64)
    for k, label in enumerate(classes.tolist()):
        # The nearest ancestor that is a label (after closure, the parent itself).
        for ancestor in taxonomy.ancestors(label):
            if ancestor in position:
                parent_index[k] = position[ancestor]
                break
        depth[k] = len(taxonomy.ancestors(label))
    with_parent = np.flatnonzero(parent_index >= 0)
    order = with_parent[np.argsort(-depth[with_parent], kind="stable")]
    return parent_index, order
