"""Pons and Favory's few-data study in earmark's terms: families of classifiers, each
turned into a matrix and a learner, so evaluation and learning curves treat them alike.

A *family* is either a backend's clip embeddings with a learner (``mfcc-knn``: MFCC
statistics and nearest neighbours, the study's baseline; ``birdnet``: BirdNET's
embedding and logistic regression, frozen transfer; any ``BACKEND`` or
``BACKEND-LEARNER``), or a network trained on the clips (``cnn-timbre``, ``cnn-small``
(the VGG-like one), ``cnn-sbcnn``, ``aisfx-finetune``, ``aisfx-head``). For a network the
"matrix" holds each clip's front-end input, flattened (:func:`network_inputs`); for the
aiSFX ones that is the frozen lower blocks' output, computed once for every split and
draw, since it depends on no label.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ParameterError
from .architectures import ARCHITECTURES, check_architecture

__all__ = ["FAMILIES", "Family", "family", "network_inputs"]

#: Network families by the name the study command takes.
FAMILIES = {"cnn-timbre": "timbre", "cnn-small": "vgg-small", "cnn-sbcnn": "sbcnn",
            "aisfx-finetune": "aisfx-finetune", "aisfx-head": "aisfx-head"}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One curve of the study: a network architecture, or a backend and a learner."""

    name: str
    architecture: str | None = None
    backend: str | None = None
    learner: str | None = None


def family(name: str, *, default_learner: str = "logreg") -> Family:
    """What a family name means.

    Examples
    --------
    >>> family("mfcc-knn")
    Family(name='mfcc-knn', architecture=None, backend='mfcc', learner='knn')
    >>> family("cnn-small").architecture
    'vgg-small'
    """
    from ..learners import LEARNERS

    name = name.strip()
    if name in FAMILIES:
        return Family(name, architecture=FAMILIES[name])
    if name in ARCHITECTURES:
        return Family(name, architecture=name)
    if not name:
        raise ParameterError("expected a family name, got an empty one")
    # A backend (checked when it is opened), with a learner after its name or not.
    for learner in sorted(LEARNERS, key=len, reverse=True):
        if name.endswith(f"-{learner}") and len(name) > len(learner) + 1:
            return Family(name, backend=name[: -len(learner) - 1], learner=learner)
    return Family(name, backend=name, learner=default_learner)


def network_inputs(manifest, architecture: str, *, max_seconds: float = 5.0, progress: bool = False,
                   **params):  # fmt: skip
    """Front-end inputs of a manifest, flattened, and an unfitted network to learn from them.

    Parameters
    ----------
    manifest : Manifest
    architecture : str
    max_seconds : float
    progress : bool
    **params
        Passed to :class:`~earmark.networks.NetworkClassifier`.

    Returns
    -------
    X : np.ndarray [shape=(n_ok, channels * time * frequency), dtype=float32]
    kept : Manifest
        The items that could be read, in order.
    learner : NetworkClassifier
        Unfitted, with ``input_shape`` set: give it to
        :func:`~earmark.evaluation.cross_validate` or
        :func:`~earmark.curve.learning_curve` as ``learner``.
    failures : list of (str, str)
    """
    from .classifier import NetworkClassifier
    from .frontends import clip_inputs, durations, frontend_for

    spec = check_architecture(architecture)
    frontend = frontend_for(spec.frontend, durations(manifest), max_seconds=max_seconds)
    X, ok, failures = clip_inputs(manifest, frontend, progress=progress)
    learner = NetworkClassifier(architecture, input_shape=frontend.shape, **params)
    return X.reshape(len(X), -1), manifest.subset(ok), learner, failures
