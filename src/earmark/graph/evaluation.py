"""Cross-validating a graph tagger on a manifest, under the splits ``earmark evaluate`` uses.

A graph tagger reads its own patches, not a backend's clip embeddings, so it cannot go
through :func:`earmark.evaluation.cross_validate`; this runs the same
:func:`~earmark.splits.make_splits` plan (official folds, else groups, else random with
a warning) and returns the same :class:`~earmark.evaluation.EvaluationResult`, so the
command prints, plots and writes JSON as for any learner. Each item's patches are cut and
its frozen maps computed once, whatever the number of splits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cross_validate_manifest"]


def cross_validate_manifest(manifest, *, folds=None, groups=None, n_splits: int = 5,
                            random_state: int | None = 0, max_patches: int | None = 4,
                            progress: bool = False, **params: Any):
    """Cross-validate a :class:`~earmark.graph.GraphTagger` on a single-label manifest.

    Parameters
    ----------
    manifest : Manifest
    folds, groups : array-like [shape=(n_items,)], optional
        As for :func:`earmark.splits.make_splits`.
    n_splits, random_state
        As for :func:`earmark.splits.make_splits`.
    max_patches : int or None
        Patches per item, from its start (aiSFX patches are 2.35 s).
    progress : bool
    **params
        Passed to :class:`~earmark.graph.GraphTagger`.

    Returns
    -------
    result : EvaluationResult
        Over the items that could be read (``result.y_true`` has one row per item of
        ``manifest`` that gave patches).
    used : np.ndarray [shape=(n_used,), dtype=int64]
        Index in ``manifest`` of each item of the result.
    tagger_parameters : int
        Learned numbers of the tagger of the first split.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    from ..evaluation import EvaluationResult
    from ..interpret.encoders import patch_config
    from ..interpret.features import manifest_patches
    from ..splits import make_splits
    from .tagger import GraphTagger, clip_logits, node_maps

    tagger = GraphTagger(random_state=random_state, **params)
    tagger._check_params()  # noqa: SLF001 - refuse bad parameters before hours of patches
    config = patch_config(tagger.encoder, max_patches=max_patches)
    patches = manifest_patches(manifest, config, progress=progress)
    used = np.flatnonzero(patches.ok)
    # Patch rows renumbered to the used items, so the result has one row per used item.
    item = np.searchsorted(used, patches.item)
    y = np.asarray(manifest.y)[used]
    folds = None if folds is None else np.asarray(folds)[used]
    groups = None if groups is None else np.asarray(groups)[used]
    maps = node_maps(tagger.encoder, patches.X, tuple(tagger.pool))
    plan = make_splits(y, folds=folds, groups=groups, n_splits=n_splits, random_state=random_state)
    classes = np.unique(y)
    proba = np.full((len(y), len(classes)), np.nan)
    y_pred = np.full(len(y), None, dtype=object)
    fold_accuracy, fold_f1, n_parameters = [], [], None
    for split in plan.splits:
        train = np.isin(item, split.train)
        fitted = GraphTagger(random_state=random_state, **params).fit(
            None, y[item[train]], maps=maps[train],
            groups=(groups[item[train]] if groups is not None else item[train]),
        )
        n_parameters = n_parameters or fitted.n_parameters_
        test = np.isin(item, split.test)
        logits, ok = clip_logits(fitted.decision_function(maps=maps[test]), item[test], len(y))
        block = np.zeros((len(y), len(classes)))
        shifted = logits[ok] - logits[ok].max(axis=1, keepdims=True)
        block[np.ix_(ok, np.searchsorted(classes, fitted.classes_))] = (
            np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))
        proba[ok] = block[ok]
        predicted = classes[block[split.test].argmax(axis=1)]
        y_pred[split.test] = list(predicted)
        fold_accuracy.append(float(np.mean(predicted == y[split.test])))
        fold_f1.append(float(f1_score(y[split.test], predicted, average="macro", zero_division=0)))
    tested = np.array([p is not None for p in y_pred], dtype=bool)
    truth, predicted = y[tested], np.asarray(y_pred[tested].tolist(), dtype=y.dtype)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0)
    per_class = [{"label": _plain(c), "precision": float(p), "recall": float(r), "f1": float(f),
                  "support": int(s)} for c, p, r, f, s in zip(classes, precision, recall, f1, support)]  # fmt: skip
    result = EvaluationResult(
        learner="graph", learner_params=dict(params), strategy=plan.strategy,
        classes=[_plain(c) for c in classes], splits=plan.splits, fold_accuracy=fold_accuracy,
        fold_macro_f1=fold_f1, y_true=y, y_pred=y_pred,
        confusion=confusion_matrix(truth, predicted, labels=classes).astype(np.int64),
        per_class=per_class, warnings=list(plan.warnings), proba=proba,
    )  # fmt: skip
    return result, used, int(n_parameters)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
