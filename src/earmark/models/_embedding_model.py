"""Models over a backend's embeddings: clip classifiers and multiple-instance frame models.

Longer than ~500 lines: one class for both kinds (training, prediction, saving, the
file reader's last step), which share everything but what they read.

An :class:`EarmarkModel` is a fitted learner (:mod:`earmark.learners`) plus everything
needed to use it on new audio: the identity of the embedding backend whose vectors it
learned from (name, parameters, version, weights hash), the class names and a training
summary. Kind ``"clip"`` reads one clip embedding per file; kind ``"frames"`` (a
multiple-instance model) reads a file's frame embeddings and also scores each frame.

It is saved in the one model file format (:mod:`earmark.models._container`): metadata in
``model.json``, the scikit-learn pipeline in ``pipeline.skops``, read back against the
allow-list of :mod:`earmark.models._estimators`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import EarmarkError, ModelFileError, ParameterError
from ..files import jsonable
from ._prediction import FileScores

__all__ = ["EarmarkModel", "check_matrix"]

#: Marks a clip below its class's threshold (never a class name: a fresh object).
_BELOW = object()


class EarmarkModel:
    """A fitted classifier over clip embeddings of one backend.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted, e.g. from :func:`earmark.learners.fit_learner`.
    backend_identity : dict
        :meth:`earmark.backends.Backend.identity` of the backend that made the training
        embeddings.
    learner : str
        Learner name (see :data:`earmark.learners.LEARNERS`).
    learner_params : dict, optional
    training : dict, optional
        Training summary (:meth:`train` fills it in).
    kind : {"clip", "frames"}
        What the classifier reads: one clip embedding per item (``"clip"``), or a bag
        of frame embeddings per recording (``"frames"``, a multiple-instance model from
        :meth:`train_mil`, which also scores single frames: :meth:`segment_proba`).

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
        Label names, in the column order of :meth:`predict_proba`.

    Examples
    --------
    >>> import numpy as np
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("placeholder")
    >>> X = np.r_[np.zeros((4, 16)), np.ones((4, 16))].astype(np.float32)
    >>> model = EarmarkModel.train(X, ["quiet"] * 4 + ["loud"] * 4, backend=backend)
    >>> model.predict(X[:1]).tolist()
    ['quiet']
    """

    def __init__(
        self,
        pipeline,
        *,
        backend_identity: dict[str, Any],
        learner: str,
        learner_params: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        kind: str = "clip",
        postprocessing: dict[str, Any] | None = None,
    ):
        if kind not in _KINDS:
            raise ParameterError(f"expected kind in {_KINDS}, got {kind!r}")
        self.pipeline = pipeline
        self.kind = kind
        self.backend_identity = dict(backend_identity)
        self.learner = learner
        self.learner_params = dict(learner_params or {})
        self.training = dict(training or {})
        if postprocessing is not None:
            from ..detection.postprocessing import check_postprocessing

            postprocessing = check_postprocessing(postprocessing, [str(c) for c in
                                                                    jsonable(self.classes_.tolist())])
        self.postprocessing = postprocessing

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        X,
        y,
        *,
        backend,
        learner: str = "logreg",
        random_state: int | None = 0,
        groups=None,
        **learner_params: Any,
    ) -> "EarmarkModel":
        """Fit a learner on clip embeddings and wrap it with its backend's identity.

        Parameters
        ----------
        X : np.ndarray [shape=(n, dimension)]
            Clip embeddings from ``backend``.
        y : array-like [shape=(n,)]
            Labels.
        backend : Backend or dict
            The backend (or its :meth:`~earmark.backends.Backend.identity`).
        learner : str
        random_state : int or None
        groups : array-like [shape=(n,)], optional
            Speaker, recording or fold of each item: calibration and per-class thresholds
            are then fitted on scores of groups the fold model never saw.
        **learner_params
            Passed to :func:`earmark.learners.make_learner`. With a fused backend,
            ``blocks`` defaults to its parts' widths.
        """
        from .. import __version__
        from ..learners import fit_learner, make_learner

        identity = backend if isinstance(backend, dict) else backend.identity()
        X = check_matrix(X, identity.get("dimension"))
        parts = identity.get("parts")
        if isinstance(parts, list) and parts and "blocks" not in learner_params:
            # A fused backend: each part standardised and weighed as a block, in the model.
            learner_params["blocks"] = [int(part["dimension"]) for part in parts]
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ParameterError(
                f"expected {X.shape[0]} labels for {X.shape[0]} rows of X, got shape {y.shape}"
            )
        pipeline, notes = fit_learner(
            make_learner(learner, random_state=random_state, **learner_params), X, y,
            groups=None if groups is None else np.asarray(groups),
        )
        labels, counts = np.unique(y, return_counts=True)
        training = {
            "n_items": int(X.shape[0]),
            "class_counts": {str(label): int(n) for label, n in zip(labels.tolist(), counts)},
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "earmark_version": __version__,
            "random_state": random_state,
            "notes": notes,
        }
        return cls(
            pipeline,
            backend_identity=identity,
            learner=learner,
            learner_params=learner_params,
            training=training,
        )

    @classmethod
    def train_mil(
        cls,
        bags,
        y,
        *,
        backend,
        pooling: str = "attention",
        random_state: int | None = 0,
        frame_targets=None,
        **params: Any,
    ) -> "EarmarkModel":
        """Fit a multiple-instance model on frame embeddings labelled per recording.

        The model learns from recording labels alone and then scores every frame
        (:meth:`segment_proba`), so ``earmark detect`` uses it frame by frame instead
        of sliding a clip classifier.

        Parameters
        ----------
        bags : sequence of np.ndarray [shape=(n_frames_i, dimension)]
            Frame embeddings from ``backend``, one array per recording
            (e.g. ``embed_file(backend, path).X``).
        y : array-like [shape=(n_bags,)] or sequence of label sets
            One label per recording, or one tuple/list/set of labels per recording
            (multi-label; an empty set marks a recording with none of the classes).
        backend : Backend or dict
        pooling : {"max", "mean", "attention"}
            See :data:`earmark.detection.mil.POOLINGS`.
        random_state : int or None
        frame_targets : sequence of (np.ndarray or None), optional
            Strong labels per frame where known (see
            :meth:`earmark.detection.mil.MILClassifier.fit`).
        **params
            Passed to :class:`~earmark.detection.mil.MILClassifier`.

        Returns
        -------
        EarmarkModel
            With ``kind="frames"`` and learner ``"mil-<pooling>"``.

        Examples
        --------
        >>> import numpy as np
        >>> from earmark.backends import get_backend
        >>> backend = get_backend("placeholder")
        >>> rng = np.random.default_rng(0)
        >>> bags = [rng.normal(size=(5, 16)) + (i % 2) * 3 for i in range(20)]
        >>> model = EarmarkModel.train_mil(bags, ["a", "b"] * 10, backend=backend,
        ...                                epochs=20)
        >>> model.segment_proba(bags[1]).shape
        (5, 2)
        """
        from sklearn.pipeline import Pipeline

        from .. import __version__
        from ..detection.mil import MILClassifier

        identity = backend if isinstance(backend, dict) else backend.identity()
        dimension = identity.get("dimension")
        bags = [check_matrix(bag, dimension) for bag in bags]
        classifier = MILClassifier(pooling=pooling, random_state=random_state, **params)
        pipeline = Pipeline([("classifier", classifier)]).fit(
            bags, y, classifier__frame_targets=frame_targets
        )
        counts: dict[str, int] = {}
        for labels in y:
            for label in _label_set(labels):
                counts[str(jsonable(label))] = counts.get(str(jsonable(label)), 0) + 1
        training = {
            "n_items": len(bags),
            "n_frames": int(sum(len(bag) for bag in bags)),
            "class_counts": dict(sorted(counts.items())),
            "n_without_label": sum(1 for labels in y if not _label_set(labels)),
            "n_strongly_labelled": 0 if frame_targets is None
            else sum(target is not None for target in frame_targets),
            "multilabel": bool(classifier.multilabel_),
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "earmark_version": __version__,
            "random_state": random_state,
            "notes": [],
        }
        return cls(
            pipeline,
            backend_identity=identity,
            learner=f"mil-{pooling}",
            learner_params=params,
            training=training,
            kind="frames",
        )

    # ---------------------------------------------------------------- prediction
    @property
    def classes_(self) -> np.ndarray:
        return self.pipeline.classes_

    @property
    def segment_proba(self):
        """Per-frame class scores of one recording (frame models only).

        A property, so that ``hasattr(model, "segment_proba")`` tells a model that
        scores frames itself from a clip model that must slide windows.

        Parameters
        ----------
        X : np.ndarray [shape=(n_frames, dimension)]

        Returns
        -------
        np.ndarray [shape=(n_frames, n_classes)]
            See :meth:`earmark.detection.mil.MILClassifier.segment_proba`; calibrated
            where the post-processing holds a frame calibration (a detector's,
            :mod:`earmark.detection.frame_calibration`).
        """
        if self.kind != "frames":
            raise AttributeError(
                f"a {self.learner!r} clip model has no segment_proba; slide it over the "
                f"recording (earmark.detection.stream.SlidingWindows)"
            )
        from ..detection.frame_calibration import apply_frame_calibration

        dimension = self.backend_identity.get("dimension")
        classifier = self.pipeline[-1]
        calibration = (self.postprocessing or {}).get("calibration")
        classes = [str(c) for c in self.classes_]

        def segment_proba(X, *, padded: bool = False) -> np.ndarray:
            if padded:
                scores = classifier.segment_proba(check_matrix(X, dimension), padded=True)
            else:
                scores = classifier.segment_proba(check_matrix(X, dimension))
            return apply_frame_calibration(scores, calibration, classes)

        return segment_proba

    @property
    def context_frames(self) -> int:
        """Neighbouring frames on each side a frame's score depends on (frame models)."""
        if self.kind != "frames":
            return 0
        return int(getattr(self.pipeline[-1], "context_frames", 0))

    def predict(self, X) -> np.ndarray:
        """Labels of clip embeddings.

        Parameters
        ----------
        X : np.ndarray [shape=(n, dimension)]
            For a ``kind="frames"`` model, a sequence of ``n`` frame matrices instead.

        Returns
        -------
        labels : np.ndarray [shape=(n,)]
        """
        return self.pipeline.predict(self._check_input(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of clip embeddings.

        Parameters
        ----------
        X : np.ndarray [shape=(n, dimension)]
            For a ``kind="frames"`` model, a sequence of ``n`` frame matrices instead.

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
            Columns in the order of :attr:`classes_`; rows sum to 1 (except for a
            multi-label frame model: one sigmoid per class).
        """
        if not hasattr(self.pipeline, "predict_proba"):
            raise EarmarkError(
                f"this {self.learner!r} model gives no probabilities "
                f"({'; '.join(self.training.get('notes', [])) or 'learner has none'})"
            )
        return self.pipeline.predict_proba(self._check_input(X))

    def _check_input(self, X):
        """A clip model reads one matrix; a frame model a sequence of bags."""
        dimension = self.backend_identity.get("dimension")
        if self.kind == "frames":
            return [check_matrix(bag, dimension) for bag in X]
        return check_matrix(X, dimension)

    @property
    def can_reject(self) -> bool:
        """Whether the model can answer "none of these" (:meth:`is_unknown`)."""
        return hasattr(self.pipeline[-1], "is_unknown")

    def is_unknown(self, X) -> np.ndarray:
        """True where a clip is far from every class the model knows.

        The distance threshold was calibrated on the training set when the model was
        fitted (see :class:`earmark.fewshot.PrototypeClassifier`).

        Parameters
        ----------
        X : np.ndarray [shape=(n, dimension)]

        Returns
        -------
        mask : np.ndarray [shape=(n,), dtype=bool]
        """
        if not self.can_reject:
            raise EarmarkError(
                f"a {self.learner!r} model cannot say 'unknown'; train a prototype model "
                f"(earmark train --fewshot)"
            )
        return self.pipeline[-1].is_unknown(self._final_input(X))

    def _final_input(self, X) -> np.ndarray:
        """What the pipeline's last step reads: checked clip embeddings through the steps
        before it (computed once per batch by :meth:`score_files`)."""
        X = check_matrix(X, self.backend_identity.get("dimension"))
        return self.pipeline[:-1].transform(X) if len(self.pipeline) > 1 else X

    def backend(self, *, strict: bool = True, params: dict[str, Any] | None = None):
        """The backend this model was trained with, rebuilt from its identity and checked.

        Parameters
        ----------
        strict : bool
            If True, weights that differ from the recorded ones raise
            :class:`~earmark.exceptions.BackendError`; if False, they only warn.
        params : dict, optional
            Backend parameters from the user, for those never read from a file (the
            HEAR adapter's ``module`` and ``weights``).

        Returns
        -------
        Backend
        """
        from ..backends import from_identity

        source = getattr(self, "source_", None) or f"this {self.learner!r} model"
        return from_identity(self.backend_identity, params=params, strict=strict, source=source)

    def score_files(self, paths, *, store=None, backend=None, progress: bool = False) -> FileScores:
        """Class probabilities of audio files (see :func:`earmark.models.predict_files`).

        Parameters
        ----------
        paths : list of str
        store : EmbeddingStore, optional
            The embedding cache to read from and add to (clip models).
        backend : Backend, optional
            An already checked :meth:`backend`.
        progress : bool

        Returns
        -------
        FileScores
        """
        from ..pipeline import clip_embeddings, frame_bags
        from ..store import MemoryStore

        backend = backend if backend is not None else self.backend()
        if self.kind == "frames":
            X, ok, reasons = frame_bags(paths, backend)
            reasons = list(reasons)
        else:
            X, ok, run = clip_embeddings(
                paths, backend, store if store is not None else MemoryStore(), progress=progress
            )
            reasons = [failure.reason for failure in run.failures]
        ok = np.asarray(ok, dtype=bool)
        errors: list[str | None] = [None] * len(paths)
        failed = iter(reasons)
        for index in np.flatnonzero(~ok):
            errors[index] = f"{paths[index]}: {next(failed, 'could not be read')}"
        if not ok.any():
            return FileScores(np.zeros((0, len(self.classes_))), ok, errors)
        if hasattr(self.pipeline, "predict_proba"):
            P = self.predict_proba(X)
        else:  # a learner without probabilities: its label gets 1
            labels = self.predict(X)
            P = (labels[:, None] == self.classes_[None, :]).astype(np.float64)
        if self.kind != "clip":
            return FileScores(P, ok, errors, has_proba=hasattr(self.pipeline, "predict_proba"))
        Xt = self._final_input(X)
        final = self.pipeline[-1]
        unknown = final.is_unknown(Xt) if self.can_reject else None
        if getattr(final, "class_thresholds_", None) is not None and hasattr(final, "predict_thresholded"):
            # Per-class thresholds stored by train --target-precision/--target-recall: a
            # clip whose top class is below its threshold is answered "unknown".
            below = final.predict_thresholded(Xt, unknown_label=_BELOW) == _BELOW
            unknown = below if unknown is None else (unknown | below)
        if_asked = final.unknown_mask(Xt) if hasattr(final, "unknown_mask") else None
        if if_asked is not None and unknown is not None:
            if_asked = if_asked | unknown
        return FileScores(P, ok, errors, unknown=unknown, extra=self._level_answers(Xt),
                          has_proba=hasattr(self.pipeline, "predict_proba"),
                          unknown_if_asked=if_asked)

    def _level_answers(self, Xt) -> list[dict] | None:
        """For a taxonomy model: the label and probability at every level, and the finest
        label probable enough (``backoff``), per clip; None for a flat model.

        ``Xt`` is what the last step reads (:meth:`_final_input`)."""
        final = self.pipeline[-1]
        final = next((part for part in (final, getattr(final, "estimator_", None))
                      if hasattr(part, "predict_levels_proba")), None)
        if final is None:
            return None
        levels = final.predict_levels_proba(Xt)
        backoff = final.predict_backoff(Xt)
        names = list(levels)
        answers = []
        for row in range(len(backoff)):
            answer = {}
            for h, name in enumerate(names[1:], 1):
                P = levels[name][row]
                answer[name] = jsonable(final.level_classes_[h - 1][int(np.argmax(P))])
                answer[f"{name} score"] = float(np.max(P))
            answers.append({"levels": answer, "backoff": jsonable(backoff[row])})
        return answers

    # ------------------------------------------------------------------- saving
    def metadata(self) -> dict[str, Any]:
        """What ``model.json`` holds (JSON-serialisable)."""
        return {
            "classes": jsonable(self.classes_.tolist()),
            "learner": self.learner,
            "learner_params": self.learner_params,
            "backend": self.backend_identity,
            "kind": self.kind,
            "training": self.training,
            **({"postprocessing": self.postprocessing} if self.postprocessing else {}),
        }

    def save(self, path) -> Path:
        """Write the model to one file (:mod:`earmark.models._container`), atomically.

        Returns
        -------
        Path
        """
        import sklearn
        import skops.io

        from ._container import write_container

        metadata = self.metadata()
        metadata["sklearn_version"] = sklearn.__version__
        metadata["numpy_version"] = np.__version__
        return write_container(path, metadata, pipeline=skops.io.dumps(self.pipeline))

    @classmethod
    def load(cls, path) -> "EarmarkModel":
        """Read a clip or frame model file; see :func:`earmark.models.load_model`."""
        from ._files import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path}: holds a {model.kind!r} model, not a clip or frame model")
        return model

    @classmethod
    def from_file_parts(cls, metadata: dict, pipeline, *, where: str) -> "EarmarkModel":
        """Build from checked metadata and a loaded pipeline (the file reader's last step)."""
        if not hasattr(pipeline, "predict") or not hasattr(pipeline, "classes_"):
            raise ModelFileError(f"{where}: the pipeline is not a fitted classifier")
        stored = jsonable(pipeline.classes_.tolist())
        if stored != metadata["classes"]:
            raise ModelFileError(
                f"{where}: classes in model.json ({metadata['classes']}) do not match the "
                f"pipeline's ({stored})"
            )
        try:
            model = cls(
                pipeline,
                backend_identity=metadata["backend"],
                learner=str(metadata["learner"]),
                learner_params=metadata.get("learner_params") or {},
                training=metadata.get("training") or {},
                kind=metadata.get("kind", "clip"),
                postprocessing=metadata.get("postprocessing"),
            )
        except ParameterError as error:
            raise ModelFileError(f"{where}: {error}") from None
        model.source_ = where  # the file, named in messages about its backend
        return model

    def __repr__(self) -> str:
        return (
            f"EarmarkModel(learner={self.learner!r}, "
            f"backend={self.backend_identity.get('backend')!r}, "
            f"classes={len(self.classes_)}, trained_on={self.training.get('n_items')})"
        )


# ----------------------------------------------------------------------- helpers
_KINDS = ("clip", "frames")


def _label_set(labels) -> tuple:
    """One recording's labels as a tuple (a single label, or a label set)."""
    if isinstance(labels, (tuple, list, set, frozenset)):
        return tuple(labels)
    if isinstance(labels, np.ndarray) and labels.ndim == 1:
        return tuple(labels.tolist())
    return (labels,)


def check_matrix(X, dimension: int | None) -> np.ndarray:
    """``X`` as a finite float32 matrix of the model's dimension, or one clear error."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ParameterError(f"expected X of shape (n, dimension), got shape {X.shape}")
    if dimension is not None and X.shape[1] != dimension:
        raise ParameterError(
            f"expected embeddings of dimension {dimension} (the model's backend), got {X.shape[1]}"
        )
    if not np.isfinite(X).all():
        raise ParameterError("X holds NaN or infinite values")
    return X


