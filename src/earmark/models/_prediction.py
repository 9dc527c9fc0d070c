"""One prediction per file, for every kind of model, through one function.

:func:`predict_files` is what ``earmark predict``, ``earmark explain`` (to choose the
class to explain), the labelling app and the Python API call. A model only has to say
how likely each class is for each file (:meth:`Model.score_files`, returning
:class:`FileScores`); ranking, top-k, the ``unknown`` answer and error rows are decided
here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np

from ..exceptions import ParameterError
from ..files import jsonable

__all__ = ["Model", "FileScores", "Prediction", "predict_files", "UNKNOWN_LABEL"]

#: The label a model that can tell gives a clip far from every class it knows.
UNKNOWN_LABEL = "unknown"


@runtime_checkable
class Model(Protocol):
    """What every kind of earmark model offers (see ``docs/architecture.md``).

    Attributes
    ----------
    kind : str
        One of :data:`earmark.models.KINDS`.
    classes_ : np.ndarray [shape=(n_classes,)]
    training : dict
        Training summary (items, class counts, when, with which earmark).
    """

    kind: str
    classes_: np.ndarray
    training: dict

    def score_files(self, paths: list[str], *, store=None, backend=None,
                    progress: bool = False) -> "FileScores": ...

    def save(self, path): ...


@dataclass
class FileScores:
    """Class scores of a batch of files, as a model returns them.

    Attributes
    ----------
    P : np.ndarray [shape=(n_ok, n_classes)]
        Probabilities of the files that could be read, in order.
    ok : np.ndarray [shape=(n_files,), dtype=bool]
    errors : list of (str or None) [length n_files]
        What went wrong with each file that could not be read, naming it.
    unknown : np.ndarray [shape=(n_ok,), dtype=bool] or None
        "None of these", for models that say it unasked (prototypes, per-class
        thresholds).
    unknown_if_asked : np.ndarray [shape=(n_ok,), dtype=bool] or None
        "None of these" for models that can say it when asked (every calibrated
        learner: its top probability below the level that kept ``unknown_coverage`` of
        held-out training items); includes ``unknown``.
    extra : list of dict or None [length n_ok]
        Kind-specific fields added to each prediction (e.g. ``nearest_prototype``).
    has_proba : bool
        False for a learner without probabilities (``P`` is then one-hot).
    """

    P: np.ndarray
    ok: np.ndarray
    errors: list
    unknown: np.ndarray | None = None
    extra: list | None = None
    has_proba: bool = True
    unknown_if_asked: np.ndarray | None = None


@dataclass
class Prediction:
    """What a model says about one file.

    Attributes
    ----------
    path : str
        As given.
    label : str or None
        The most probable class, :data:`UNKNOWN_LABEL`, or None for an unreadable file.
    score : float or None
        Its probability (None when unknown, unreadable or the learner has none).
    top_k : list of (label, score)
        The most probable classes, best first.
    unknown : bool
        True where the model rejected the clip as none of its classes.
    error : str or None
        Why the file could not be read, naming it.
    extra : dict
        Kind-specific fields (e.g. ``nearest_prototype`` of a prototype network).
    """

    path: str
    label: Any = None
    score: float | None = None
    top_k: list = field(default_factory=list)
    unknown: bool = False
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``path, label, score, top_k ([{label, score}]), unknown, error`` + extras."""
        return {
            "path": self.path, "label": jsonable(self.label), "score": self.score,
            "top_k": [{"label": jsonable(label), "score": score} for label, score in self.top_k],
            "unknown": self.unknown, "error": self.error, **jsonable(self.extra),
        }


def predict_files(model, paths: Iterable, *, store=None, backend=None, top_k: int = 3,
                  progress: bool = False, reject_unknown: bool | None = None) -> list[Prediction]:
    """Label audio files with any earmark model; a bad file gives a prediction with an error.

    Parameters
    ----------
    model : Model
        From :func:`earmark.models.load_model` or trained in Python.
    paths : iterable of str or Path
    store : EmbeddingStore, optional
        Embedding cache for models over a backend's embeddings.
    backend : Backend, optional
        An already checked backend of the model (saves loading it again).
    top_k : int
        How many of the most probable labels each prediction lists.
    progress : bool
    reject_unknown : bool or None
        Label a clip far from every class :data:`UNKNOWN_LABEL` (its nearest classes
        stay in ``top_k``). None: where the model does so by itself (prototypes,
        per-class thresholds from ``train --target-precision``); True: with every model
        that can (any calibrated learner too); False: never.

    Returns
    -------
    list of Prediction
        In the order of ``paths``.

    Examples
    --------
    >>> import numpy as np, soundfile, tempfile, pathlib
    >>> from earmark.backends import get_backend
    >>> from earmark.models import EarmarkModel
    >>> backend = get_backend("placeholder")
    >>> X = np.r_[np.zeros((4, 16)), np.ones((4, 16))].astype(np.float32)
    >>> model = EarmarkModel.train(X, ["quiet"] * 4 + ["loud"] * 4, backend=backend)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    >>> [p.error is None for p in predict_files(model, [folder / "a.wav", folder / "gone.wav"])]
    [True, False]
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ParameterError(f"expected top_k >= 1, got {top_k!r}")
    paths = [str(path) for path in paths]
    predictions = [Prediction(path) for path in paths]
    if not paths:
        return predictions
    scores = model.score_files(paths, store=store, backend=backend, progress=progress)
    classes = list(model.classes_.tolist())
    good = [p for p, ok in zip(predictions, scores.ok) if ok]
    rejected = None
    if reject_unknown is None:
        rejected = scores.unknown
    elif reject_unknown:
        rejected = scores.unknown_if_asked if scores.unknown_if_asked is not None \
            else scores.unknown
    for prediction, error in zip(predictions, scores.errors):
        prediction.error = error
    for index, prediction in enumerate(good):
        p = scores.P[index]
        if scores.has_proba:
            order = np.argsort(-p, kind="stable")[:top_k]
            prediction.top_k = [(classes[i], float(p[i])) for i in order]
            prediction.label, prediction.score = prediction.top_k[0]
        else:
            prediction.label = classes[int(np.argmax(p))]
        if scores.extra is not None:
            prediction.extra = dict(scores.extra[index])
        if rejected is not None and rejected[index]:
            prediction.label, prediction.score, prediction.unknown = UNKNOWN_LABEL, None, True
    return predictions
