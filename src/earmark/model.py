"""A trained classifier, the backend it listens through, and one file to keep both.

An :class:`EarmarkModel` is a fitted learner (:mod:`earmark.learners`) plus everything
needed to use it on new audio: the identity of the embedding backend whose vectors it
learned from (name, parameters, version, weights hash), the class names and a training
summary.

The file is a zip holding ``model.json`` (metadata, readable by anyone) and
``pipeline.skops`` (the scikit-learn pipeline in :mod:`skops.io` format). Loading never
unpickles: every type named in the skops file is checked against an explicit allow-list
of the scikit-learn and numpy types earmark's learners produce, and anything else is
refused before a single object is built.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ._archive import read_members, write_members
from .exceptions import BackendError, EarmarkError, ModelFileError, ParameterError

__all__ = ["EarmarkModel", "FORMAT_VERSION", "ALLOWED_TYPES", "UNKNOWN_LABEL"]

#: The label :meth:`EarmarkModel.predict_files` gives a clip far from every class, for
#: models that can tell (prototype learners).
UNKNOWN_LABEL = "unknown"

#: Version of the file layout; a file with a higher number was written by a newer earmark.
FORMAT_VERSION = 1
_FORMAT_NAME = "earmark-model"
_METADATA = "model.json"
_PIPELINE = "pipeline.skops"

#: Types a saved pipeline may contain, by top-level package and class name. Matching the
#: class name rather than the full path keeps files loadable when scikit-learn moves a
#: class between its private modules; the package still has to be sklearn or numpy.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "builtins": frozenset({"dict", "list", "tuple", "str", "int", "float", "bool", "NoneType"}),
    "numpy": frozenset(
        {"ndarray", "dtype", "RandomState", "bool_", "str_", "object_"}
        | {f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)}
        | {f"float{bits}" for bits in (16, 32, 64)}
    ),
    "sklearn": frozenset(
        {
            "Pipeline",
            "StandardScaler",
            "LabelBinarizer",
            "LogisticRegression",
            "SVC",
            "CalibratedClassifierCV",
            "_CalibratedClassifier",
            "_TemperatureScaling",
            "KNeighborsClassifier",
            "KDTree",
            "BallTree",
            "EuclideanDistance64",
            "ManhattanDistance64",
            "ChebyshevDistance64",
            "MinkowskiDistance64",
            "MLPClassifier",
            "AdamOptimizer",
            "SGDOptimizer",
            "RandomForestClassifier",
            "DecisionTreeClassifier",
            "Tree",
        }
    ),
    # earmark's own estimators hold only numpy arrays, builtins and each other.
    "earmark": frozenset(
        {
            "PrototypeClassifier",
            "HierarchicalPrototypeClassifier",
            "MILClassifier",
            "PrototypicalAdapter",
            "MultiLabelPrototypeClassifier",
            "DomainStandardizer",
            "CoralAligner",
            "DANNClassifier",
            "SelfTrainingPrototypes",
            "LabelShiftAdapter",
            "PrototypeAdapter",
            "ConsensusAdapter",
        }
    ),
}


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
    ):
        if kind not in _KINDS:
            raise ParameterError(f"expected kind in {_KINDS}, got {kind!r}")
        self.pipeline = pipeline
        self.kind = kind
        self.backend_identity = dict(backend_identity)
        self.learner = learner
        self.learner_params = dict(learner_params or {})
        self.training = dict(training or {})

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
        **learner_params
            Passed to :func:`earmark.learners.make_learner`.
        """
        from . import __version__
        from .learners import fit_learner, make_learner

        identity = backend if isinstance(backend, dict) else backend.identity()
        X = _check_matrix(X, identity.get("dimension"))
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ParameterError(
                f"expected {X.shape[0]} labels for {X.shape[0]} rows of X, got shape {y.shape}"
            )
        pipeline, notes = fit_learner(
            make_learner(learner, random_state=random_state, **learner_params), X, y
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

        from . import __version__
        from .detection.mil import MILClassifier

        identity = backend if isinstance(backend, dict) else backend.identity()
        dimension = identity.get("dimension")
        bags = [_check_matrix(bag, dimension) for bag in bags]
        classifier = MILClassifier(pooling=pooling, random_state=random_state, **params)
        pipeline = Pipeline([("classifier", classifier)]).fit(bags, y)
        counts: dict[str, int] = {}
        for labels in y:
            for label in _label_set(labels):
                counts[str(_plain(label))] = counts.get(str(_plain(label)), 0) + 1
        training = {
            "n_items": len(bags),
            "n_frames": int(sum(len(bag) for bag in bags)),
            "class_counts": dict(sorted(counts.items())),
            "n_without_label": sum(1 for labels in y if not _label_set(labels)),
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
            See :meth:`earmark.detection.mil.MILClassifier.segment_proba`.
        """
        if self.kind != "frames":
            raise AttributeError(
                f"a {self.learner!r} clip model has no segment_proba; slide it over the "
                f"recording (earmark.detection.stream.SlidingWindows)"
            )
        dimension = self.backend_identity.get("dimension")
        classifier = self.pipeline[-1]

        def segment_proba(X) -> np.ndarray:
            return classifier.segment_proba(_check_matrix(X, dimension))

        return segment_proba

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
            return [_check_matrix(bag, dimension) for bag in X]
        return _check_matrix(X, dimension)

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
        X = _check_matrix(X, self.backend_identity.get("dimension"))
        if len(self.pipeline) > 1:
            X = self.pipeline[:-1].transform(X)
        return self.pipeline[-1].is_unknown(X)

    def backend(self, *, strict: bool = True):
        """Instantiate the backend this model was trained with, and check its weights.

        Parameters
        ----------
        strict : bool
            If True, weights that differ from the recorded ones raise
            :class:`~earmark.exceptions.BackendError`; if False, they only warn.

        Returns
        -------
        Backend
        """
        from .backends import get_backend

        identity = self.backend_identity
        backend = get_backend(identity["backend"], **identity.get("params", {}))
        recorded = identity.get("weights_sha256")
        installed = backend.weights_hash
        if recorded and installed != recorded:
            message = (
                f"this model was trained on {identity['backend']!r} embeddings from weights "
                f"with SHA-256 {recorded[:12]}..., but the installed weights hash to "
                f"{installed[:12]}... (version {backend.version}, trained with "
                f"{identity.get('version')}); its predictions would be meaningless. Install "
                f"the backend version it was trained with, or retrain the model"
            )
            if strict:
                raise BackendError(message)
            warnings.warn(message, stacklevel=2)
        elif identity.get("version") and backend.version != identity["version"]:
            warnings.warn(
                f"backend {identity['backend']!r} is version {backend.version}, the model was "
                f"trained with {identity['version']}; the weights are the same, so predictions "
                f"should hold",
                stacklevel=2,
            )
        return backend

    def predict_files(
        self,
        paths: Iterable,
        *,
        store=None,
        top_k: int = 3,
        backend=None,
        progress: bool = False,
        reject_unknown: bool = True,
    ) -> list[dict[str, Any]]:
        """Classify audio files, one row per file; a bad file gives a row with an error.

        Parameters
        ----------
        paths : iterable of str or Path
        store : EmbeddingStore, optional
            The embedding cache to read from and add to; without it, files are
            embedded in a :class:`~earmark.store.MemoryStore` that is then dropped.
        top_k : int
            How many of the most probable labels each row lists.
        backend : Backend, optional
            An already checked instance of :meth:`backend`, to avoid loading it again.
        progress : bool
            Show a progress bar while embedding.
        reject_unknown : bool
            For models that can tell (:attr:`can_reject`), label a clip far from every
            class :data:`UNKNOWN_LABEL`; its nearest classes stay in ``top_k``.

        Returns
        -------
        rows : list of dict
            In the order of ``paths``, each with ``path``, ``label``, ``score`` (its
            probability, or None for a model without probabilities), ``top_k`` (a list
            of ``{"label", "score"}``), ``unknown`` (True where the clip was rejected as
            none of the classes) and ``error`` (None, or what went wrong).
        """
        from .pipeline import clip_embeddings, frame_bags
        from .store import MemoryStore

        if top_k < 1:
            raise ParameterError(f"expected top_k >= 1, got {top_k}")
        backend = backend if backend is not None else self.backend()
        paths = [str(path) for path in paths]
        if self.kind == "frames":
            X, ok, reasons = frame_bags(paths, backend)
        else:
            X, ok, run = clip_embeddings(
                paths, backend, store if store is not None else MemoryStore(),
                progress=progress,
            )
            reasons = iter(failure.reason for failure in run.failures)
        rows = [
            {"path": path, "label": None, "score": None, "top_k": [], "unknown": False,
             "error": None if good else f"{path}: {next(reasons)}"}
            for path, good in zip(paths, ok)
        ]
        good = [row for row, keep in zip(rows, ok) if keep]
        if not good:
            return rows
        classes = [_plain(label) for label in self.classes_.tolist()]
        if hasattr(self.pipeline, "predict_proba"):
            P = self.predict_proba(X)
            for row, p in zip(good, P):
                order = np.argsort(-p, kind="stable")[:top_k]
                row["top_k"] = [{"label": classes[i], "score": float(p[i])} for i in order]
                row["label"], row["score"] = row["top_k"][0]["label"], row["top_k"][0]["score"]
        else:
            for row, label in zip(good, self.predict(X).tolist()):
                row["label"] = _plain(label)
        if reject_unknown and self.can_reject:
            for row, unknown in zip(good, self.is_unknown(X)):
                if unknown:
                    row["label"], row["score"], row["unknown"] = UNKNOWN_LABEL, None, True
        return rows

    # ------------------------------------------------------------------- saving
    def metadata(self) -> dict[str, Any]:
        """What ``model.json`` holds (JSON-serialisable)."""
        return {
            "format": _FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "classes": [_plain(label) for label in self.classes_.tolist()],
            "learner": self.learner,
            "learner_params": self.learner_params,
            "backend": self.backend_identity,
            "kind": self.kind,
            "training": self.training,
        }

    def save(self, path) -> Path:
        """Write the model to one file (a zip; see the module docstring).

        The file is written next to ``path`` and renamed into place, so an interrupted
        save never leaves a half-written model behind.

        Returns
        -------
        Path
        """
        import sklearn
        import skops.io

        path = Path(path)
        pipeline_bytes = skops.io.dumps(self.pipeline)
        metadata = self.metadata()
        metadata["pipeline_sha256"] = hashlib.sha256(pipeline_bytes).hexdigest()
        metadata["sklearn_version"] = sklearn.__version__
        metadata["numpy_version"] = np.__version__
        text = json.dumps(metadata, indent=2, default=_plain)
        return write_members(path, {_METADATA: text, _PIPELINE: pipeline_bytes})

    @classmethod
    def load(cls, path) -> "EarmarkModel":
        """Read a model file written by :meth:`save`, refusing anything unexpected.

        Raises
        ------
        ModelFileError
            If the file is missing, not a model file, damaged, written by a newer
            earmark, or holds a type outside :data:`ALLOWED_TYPES` (named in the message).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        members = read_members(path, (_METADATA, _PIPELINE), what="an earmark model file",
                               json_names=(_METADATA,))
        metadata, pipeline_bytes = members[_METADATA], members[_PIPELINE]
        _check_metadata(path, metadata)
        if hashlib.sha256(pipeline_bytes).hexdigest() != metadata.get("pipeline_sha256"):
            raise ModelFileError(
                f"{path}: the pipeline does not match its recorded hash; the file was "
                f"damaged or modified"
            )
        refused = sorted(_types_outside_allow_list(path, pipeline_bytes))
        if refused:
            raise ModelFileError(
                f"{path}: refusing to load types earmark does not produce: {', '.join(refused)}"
            )
        # Imported only now: skops imports all of scikit-learn (seconds), and a file
        # that is not a model should be told so at once.
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(data=pipeline_bytes)
            pipeline = skops.io.loads(pipeline_bytes, trusted=untrusted)
        except Exception as error:  # skops raises a variety of errors on a bad payload
            raise ModelFileError(
                f"{path}: cannot read the pipeline ({type(error).__name__}: {error})"
            ) from None
        if not hasattr(pipeline, "predict") or not hasattr(pipeline, "classes_"):
            raise ModelFileError(f"{path}: the pipeline is not a fitted classifier")
        stored = [_plain(label) for label in pipeline.classes_.tolist()]
        if stored != metadata["classes"]:
            raise ModelFileError(
                f"{path}: classes in model.json ({metadata['classes']}) do not match the "
                f"pipeline's ({stored})"
            )
        return cls(
            pipeline,
            backend_identity=metadata["backend"],
            learner=metadata["learner"],
            learner_params=metadata.get("learner_params"),
            training=metadata.get("training"),
            # Files written before frame models existed hold clip models.
            kind=metadata.get("kind", "clip"),
        )

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


def _check_matrix(X, dimension: int | None) -> np.ndarray:
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


def _plain(value):
    """Numpy scalars to Python ones, so labels survive JSON unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _check_metadata(path: Path, metadata: Any) -> None:
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT_NAME:
        raise ModelFileError(f"{path}: model.json does not describe an earmark model")
    version = metadata.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: model.json has no format_version")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in model format {version} by a newer earmark; this one reads "
            f"up to format {FORMAT_VERSION}: upgrade earmark"
        )
    for key in ("classes", "learner", "backend"):
        if key not in metadata:
            raise ModelFileError(f"{path}: model.json lacks {key!r}")
    if metadata.get("kind", "clip") not in _KINDS:
        raise ModelFileError(
            f"{path}: model.json has kind {metadata['kind']!r}; expected one of {_KINDS}"
        )


def _types_outside_allow_list(path: Path, pipeline_bytes: bytes) -> set[str]:
    """Every type the skops schema names that is not in :data:`ALLOWED_TYPES`."""
    try:
        with zipfile.ZipFile(io.BytesIO(pipeline_bytes)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except Exception as error:
        raise ModelFileError(f"{path}: the pipeline is not a skops file ({error})") from None
    refused: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        names = []
        if "__module__" in node or "__class__" in node:
            names.append((str(node.get("__module__")), str(node.get("__class__"))))
        content = node.get("content")
        # Function and type references name their target inside the content.
        if isinstance(content, dict) and ("module_path" in content or "function" in content):
            names.append((str(content.get("module_path")), str(content.get("function"))))
        for module, name in names:
            package = module.partition(".")[0]
            if name not in ALLOWED_TYPES.get(package, ()):
                refused.add(f"{module}.{name}")
        stack.extend(node.values())
    return refused
