"""Trained models of every kind: one protocol, one file format, one way to predict.

* :class:`Model`: what every kind offers (``kind``, ``classes_``, ``training``,
  ``score_files``, ``save``); :data:`KINDS` lists the kinds.
* :class:`EarmarkModel`: a learner over a backend's clip embeddings (``"clip"``) or a
  multiple-instance model over its frame embeddings (``"frames"``).
* :class:`~earmark.interpret.PrototypeNetwork` (``"prototype-network"``).
* :class:`~earmark.graph.GraphTagger` (``"graph-tagger"``);
* :class:`~earmark.networks.NetworkClassifier` (``"network"``): a network trained on the
  clips themselves (small CNNs from scratch, aiSFX fine-tuned).
* :class:`AnomalyModel` (``"anomaly"``): one-class detectors per section over frame
  embeddings, fitted on normal recordings alone.
* :func:`predict_files` -> :class:`Prediction` per file, for any kind.
* :func:`load_model` reads any model file; :class:`Limits` bounds what it accepts.

See ``docs/architecture.md`` for the file format and what the reader checks.
"""

from ._anomaly_model import AnomalyModel, anomaly_defaults
from ._container import FORMAT_VERSION, Limits
from ._embedding_model import EarmarkModel, check_matrix
from ._estimators import ESTIMATORS, NOT_SAVED, SKLEARN_TYPES, allowed_types
from ._files import KINDS, load_model
from ._graph_file import save_graph_tagger
from ._network import save_network
from ._trained_network import save_trained_network
from ._prediction import UNKNOWN_LABEL, FileScores, Model, Prediction, predict_files

__all__ = [
    "AnomalyModel", "EarmarkModel", "ESTIMATORS", "FORMAT_VERSION", "FileScores", "KINDS", "Limits", "Model",
    "NOT_SAVED", "Prediction", "SKLEARN_TYPES", "UNKNOWN_LABEL", "allowed_types", "anomaly_defaults", "check_matrix",
    "load_model", "predict_files", "save_graph_tagger", "save_network", "save_trained_network",
]
