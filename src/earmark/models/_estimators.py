"""Which estimators a model file may hold, and how they are read and checked.

The scikit-learn parts of a model are stored with :mod:`skops.io`, which never unpickles
but builds whatever types its schema names once they are trusted. earmark trusts only
the types in :data:`ESTIMATORS` and :data:`SKLEARN_TYPES`, matched by **full module
path and class name** (taken from the live classes, so a file naming an allowed class
under another module is refused), plus NumPy arrays and builtins. The schema is checked
before skops builds a single object.

After loading, the object graph is checked for what would crash or hang compiled code
(a decision tree's node arrays out of range or cyclic, an SVM's support counts that do
not add up, a neighbour tree's index arrays) or make predictions meaningless (NaN or
infinite weights), and neighbour search trees are rebuilt from their own data rather
than trusted.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from functools import lru_cache
from typing import Any

import numpy as np

from ..exceptions import ModelFileError
from ._container import Limits, check_zip_bytes

__all__ = ["ESTIMATORS", "NOT_SAVED", "SKLEARN_TYPES", "allowed_types", "load_pipeline",
           "check_fitted_graph"]

#: Every estimator earmark defines that a model file may hold ("module:Class").
ESTIMATORS = (
    "earmark.calibration:CalibratedLearner",
    "earmark.learners:BlockScaler",
    "earmark.learners:PartsClassifier",
    "earmark.fewshot.prototypes:PrototypeClassifier",
    "earmark.fewshot.hierarchical:HierarchicalPrototypeClassifier",
    "earmark.fewshot.multilabel:MultiLabelPrototypeClassifier",
    "earmark.fewshot.adapter:PrototypicalAdapter",
    "earmark.detection.mil:MILClassifier",
    "earmark.adaptation.standardize:DomainStandardizer",
    "earmark.adaptation.coral:CoralAligner",
    "earmark.adaptation.dann:DANNClassifier",
    "earmark.adaptation.selftrain:SelfTrainingPrototypes",
    "earmark.adaptation.labelshift:LabelShiftAdapter",
    "earmark.adaptation.prototypes:PrototypeAdapter",
    "earmark.adaptation.selection:ConsensusAdapter",
)

#: Estimators earmark defines that never go into a skops payload, and why.
NOT_SAVED = {
    "earmark.interpret.protonet:PrototypeNetwork": "saved as plain arrays (kind 'prototype-network')",
    "earmark.graph.tagger:GraphTagger": "saved as plain arrays (kind 'graph-tagger')",
    "earmark.networks.classifier:NetworkClassifier": "saved as plain arrays (kind 'network')",
    "earmark.explore.cluster:EmbeddingClusterer": "clusterings are results, not models",
    "earmark.anomaly.detectors:KNNDetector": "saved as plain arrays (kind 'anomaly')",
    "earmark.anomaly.detectors:GaussianDetector": "saved as plain arrays (kind 'anomaly')",
    "earmark.anomaly.detectors:MixtureDetector": "saved as plain arrays (kind 'anomaly')",
    "earmark.anomaly.detectors:PCADetector": "saved as plain arrays (kind 'anomaly')",
    "earmark.anomaly.baseline:HighPassBaseline": "a reference detector, not a model kind",
}

#: scikit-learn types earmark's learners are made of.
SKLEARN_TYPES = (
    "sklearn.pipeline:Pipeline",
    "sklearn.preprocessing:StandardScaler",
    "sklearn.preprocessing:LabelBinarizer",
    "sklearn.preprocessing:LabelEncoder",
    "sklearn.linear_model:LogisticRegression",
    "sklearn.svm:SVC",
    "sklearn.calibration:CalibratedClassifierCV",
    "sklearn.calibration:_CalibratedClassifier",
    "sklearn.calibration:_TemperatureScaling",
    "sklearn.calibration:_SigmoidCalibration",
    "sklearn.isotonic:IsotonicRegression",
    "sklearn.neighbors:KNeighborsClassifier",
    "sklearn.neighbors:KDTree",
    "sklearn.neighbors:BallTree",
    "sklearn.neural_network:MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers:AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers:SGDOptimizer",
    "sklearn.ensemble:RandomForestClassifier",
    "sklearn.tree:DecisionTreeClassifier",
    "sklearn.tree._tree:Tree",
    "sklearn.metrics._dist_metrics:EuclideanDistance64",
    "sklearn.metrics._dist_metrics:ManhattanDistance64",
    "sklearn.metrics._dist_metrics:ChebyshevDistance64",
    "sklearn.metrics._dist_metrics:MinkowskiDistance64",
)

_BUILTINS = {f"builtins.{name}" for name in
             ("dict", "list", "tuple", "str", "int", "float", "bool", "NoneType", "slice")}
_NUMPY = (
    {"numpy.ndarray", "numpy.dtype", "numpy.random.mtrand.RandomState", "numpy.random.RandomState"}
    | {f"numpy.{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)}
    | {f"numpy.float{bits}" for bits in (16, 32, 64)}
    | {"numpy.bool_", "numpy.bool", "numpy.str_"}
)


def _resolve(target: str):
    module, _, name = target.partition(":")
    value = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value


@lru_cache(maxsize=1)
def allowed_types() -> frozenset[str]:
    """Full ``module.Class`` names a skops payload may name (from the live classes)."""
    names = set(_BUILTINS) | _NUMPY
    for target in SKLEARN_TYPES + ESTIMATORS:
        try:
            cls = _resolve(target)
        except (ImportError, AttributeError):  # a class this scikit-learn does not have
            continue
        names.add(f"{cls.__module__}.{cls.__qualname__}")
    # numpy names its dtype classes numpy.dtypes.Float64DType and the like.
    for dtype in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                  "uint16", "uint32", "uint64", "bool", "str_"):
        cls = type(np.dtype(dtype))
        names.add(f"{cls.__module__}.{cls.__qualname__}")
    return frozenset(names)


def _schema_types(schema: Any) -> set[str]:
    """Every ``module.name`` a skops schema refers to (types and functions alike)."""
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "__module__" in node or "__class__" in node:
            found.add(f"{node.get('__module__')}.{node.get('__class__')}")
        content = node.get("content")
        if isinstance(content, dict) and ("module_path" in content or "function" in content):
            found.add(f"{content.get('module_path')}.{content.get('function')}")
        stack.extend(node.values())
    return found


def load_pipeline(data: bytes, *, where: str, limits: Limits = Limits()):
    """Build the fitted pipeline of a skops payload, refusing anything not allowed.

    Raises
    ------
    ModelFileError
        Types outside :func:`allowed_types` (named), a bomb, or a damaged payload.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip_bytes(archive, limits, f"{where} (pipeline)")
            schema = json.loads(archive.read("schema.json"))
    except ModelFileError:
        raise
    except (Exception, RecursionError) as error:
        raise ModelFileError(f"{where}: the pipeline is not a skops file ({type(error).__name__}: {error})") from None
    refused = sorted(_schema_types(schema) - allowed_types())
    if refused:
        raise ModelFileError(f"{where}: refusing to load types earmark does not produce: {', '.join(refused)}")
    # Imported only now: skops imports all of scikit-learn (seconds), and a file that is
    # not a model should be told so at once.
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        pipeline = skops.io.loads(data, trusted=untrusted)
    except (Exception, RecursionError) as error:  # skops raises many kinds on a bad payload
        raise ModelFileError(f"{where}: cannot read the pipeline ({type(error).__name__}: {error})") from None
    check_fitted_graph(pipeline, where=where)
    return pipeline


# ------------------------------------------------------------------ graph checks
def _walk(root: Any):
    """Every object reachable from ``root`` through attributes, lists, tuples and dicts."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or node is None or isinstance(node, (str, bytes, int, float, bool)):
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, np.ndarray):
            continue
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
        elif hasattr(node, "__dict__"):
            stack.extend(vars(node).values())
        if _is_tree(node):
            stack.append(node.__getstate__())


def _is_tree(node) -> bool:
    return type(node).__name__ == "Tree" and type(node).__module__.startswith("sklearn.tree")


def check_fitted_graph(root: Any, *, where: str) -> None:
    """Refuse a loaded object graph that would crash, hang or answer NaN.

    Raises
    ------
    ModelFileError
    """
    for node in _walk(root):
        if isinstance(node, np.ndarray):
            if node.dtype.kind == "f" and not np.isfinite(node).all():
                raise ModelFileError(f"{where}: the model holds NaN or infinite weights")
            if node.dtype.hasobject:
                for value in node.ravel():
                    if not isinstance(value, (str, int, float, bool, np.generic)):
                        raise ModelFileError(f"{where}: an array holds a {type(value).__name__}")
        elif _is_tree(node):
            _check_tree(node, where)
        else:
            name = type(node).__name__
            # Unfitted templates (a calibrator's ``estimator`` parameter) hold no state.
            if name == "SVC" and hasattr(node, "support_vectors_"):
                _check_svc(node, where)
            elif name == "KNeighborsClassifier" and hasattr(node, "_fit_X"):
                _rebuild_neighbours(node, where)


def _check_tree(tree, where: str) -> None:
    """Node indices in range and every child after its parent (so no cycle)."""
    state = tree.__getstate__()
    nodes, values = state.get("nodes"), state.get("values")
    count = int(state.get("node_count", -1))
    if not isinstance(nodes, np.ndarray) or nodes.shape != (count,) or count < 1:
        raise ModelFileError(f"{where}: a decision tree's node table does not match its node count")
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    index = np.arange(count)
    leaf = left == -1
    if not (np.array_equal(leaf, right == -1)
            and (left[~leaf] > index[~leaf]).all() and (right[~leaf] > index[~leaf]).all()
            and (left < count).all() and (right < count).all()):
        raise ModelFileError(f"{where}: a decision tree's child indices are out of range or cyclic")
    n_features = int(tree.n_features)
    if ((feature[~leaf] < 0) | (feature[~leaf] >= n_features)).any():
        raise ModelFileError(f"{where}: a decision tree splits on features it does not have")
    if not np.isfinite(nodes["threshold"]).all():
        raise ModelFileError(f"{where}: a decision tree has non-finite thresholds")
    if not isinstance(values, np.ndarray) or values.shape[0] != count or not np.isfinite(values).all():
        raise ModelFileError(f"{where}: a decision tree's values do not match its nodes")


def _check_svc(svc, where: str) -> None:
    """libsvm indexes support vectors by these counts without checking them."""
    try:
        n_support = np.asarray(svc._n_support)  # noqa: SLF001 - the array libsvm reads
        vectors = np.asarray(svc.support_vectors_)
        classes = len(svc.classes_)
        ok = (
            n_support.shape == (classes,) and (n_support >= 0).all()
            and int(n_support.sum()) == vectors.shape[0]
            and np.asarray(svc.dual_coef_).shape == (classes - 1, vectors.shape[0])
            and np.asarray(svc._intercept_).shape == (classes * (classes - 1) // 2,)  # noqa: SLF001
            and vectors.ndim == 2 and vectors.shape[1] == svc.n_features_in_
        )
    except (AttributeError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFileError(f"{where}: an SVM's support vectors do not match its counts")


def _rebuild_neighbours(knn, where: str) -> None:
    """A neighbour search tree is rebuilt from the training points, never trusted."""
    from sklearn.neighbors import BallTree, KDTree

    X = np.asarray(getattr(knn, "_fit_X", None))
    y = np.asarray(getattr(knn, "_y", None))
    if X.ndim != 2 or y.shape != (X.shape[0],) or y.dtype.kind not in "iu" \
            or (y.size and (y.min() < 0 or y.max() >= len(knn.classes_))):
        raise ModelFileError(f"{where}: a nearest-neighbour model's training points do not match its labels")
    method = getattr(knn, "_fit_method", "brute")
    if method in ("kd_tree", "ball_tree"):
        tree = KDTree if method == "kd_tree" else BallTree
        knn._tree = tree(X, leaf_size=knn.leaf_size, metric=knn.effective_metric_,  # noqa: SLF001
                         **(knn.effective_metric_params_ or {}))
    elif method == "brute":
        knn._tree = None  # noqa: SLF001
    else:
        raise ModelFileError(f"{where}: unknown neighbour search {method!r}")
