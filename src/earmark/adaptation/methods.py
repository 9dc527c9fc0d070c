"""The adaptation methods by name, and adapting a saved model to a new domain.

Two kinds of method:

* **aligners** (``standardize``, ``coral``) map target embeddings into the source's
  statistics. The trained classifier is kept as it is; :func:`adapt_model` puts the
  fitted aligner in front of it, so the adapted model reads target audio and the
  original model still serves the source.
* **classifiers** (``dann``, ``selftrain``) are trained anew from the labelled source
  and the unlabelled target; they replace the model's classifier.

Every method reads the target's embeddings only, never its labels.
"""

from __future__ import annotations

from typing import Any


from ..exceptions import EarmarkError, ParameterError

__all__ = ["METHODS", "ALIGNERS", "make_adapter", "fit_adapter", "adapt_model"]

#: Method names and what each one does, in one line.
METHODS: dict[str, str] = {
    "standardize": "give the target the source's per-dimension mean and scale",
    "coral": "also give the target the source's correlations (CORAL)",
    "dann": "retrain a small network whose features cannot tell the domains apart "
    "(adversarial, gradient reversal)",
    "selftrain": "standardize, then move prototypes towards confident target predictions",
}
#: Methods that map embeddings and keep the model's classifier.
ALIGNERS = ("standardize", "coral")


def make_adapter(method: str, *, random_state: int | None = 0, **params: Any):
    """An unfitted adapter by name.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    random_state : int or None
        For ``dann`` (initial weights, batches).
    **params
        Parameters of the adapter (for ``selftrain``, of
        :class:`~earmark.adaptation.SelfTrainingPrototypes`).

    Returns
    -------
    estimator
        An aligner (a transformer) for :data:`ALIGNERS`; for ``selftrain`` a pipeline
        of :class:`~earmark.adaptation.DomainStandardizer` and
        :class:`~earmark.adaptation.SelfTrainingPrototypes`; for ``dann`` a
        :class:`~earmark.adaptation.DANNClassifier`. Each is fitted with
        ``fit(X_source, y_source, X_target=...)`` (:func:`fit_adapter`).

    Examples
    --------
    >>> make_adapter("coral", regularization=2.0)
    CoralAligner(regularization=2.0)
    """
    from .coral import CoralAligner
    from .dann import DANNClassifier
    from .selftrain import SelfTrainingPrototypes
    from .standardize import DomainStandardizer

    if method not in METHODS:
        raise ParameterError(f"unknown adaptation method {method!r}; expected one of: {', '.join(METHODS)}")
    if method == "standardize":
        return DomainStandardizer(**params)
    if method == "coral":
        return CoralAligner(**params)
    if method == "dann":
        return DANNClassifier(random_state=random_state, **params)
    return SelfTrainingPrototypes(**params)


def fit_adapter(method: str, X_source, y_source, X_target, *, random_state=0, **params):
    """Fit a method on labelled source and unlabelled target embeddings.

    Parameters
    ----------
    method : str
    X_source : np.ndarray [shape=(n_source, dimension)]
    y_source : array-like [shape=(n_source,)] or None
        Needed by the classifier methods only.
    X_target : np.ndarray [shape=(n_target, dimension)]

    Returns
    -------
    fitted : estimator
        An aligner (``transform`` maps target embeddings) or a classifier. For
        ``selftrain``, a :class:`~sklearn.pipeline.Pipeline` whose first step
        standardises the target.
    """
    from sklearn.pipeline import Pipeline

    from .standardize import DomainStandardizer

    adapter = make_adapter(method, random_state=random_state, **params)
    if method in ALIGNERS:
        return adapter.fit(X_source, X_target=X_target)
    if y_source is None:
        raise ParameterError(f"method {method!r} trains a classifier: it needs the source labels")
    if method == "dann":
        return adapter.fit(X_source, y_source, X_target=X_target)
    # Self-training works best on a target already standardised into the source's
    # statistics: the first pseudo-labels are then right more often.
    standardizer = DomainStandardizer().fit(X_source, X_target=X_target)
    adapter.fit(X_source, y_source, X_target=standardizer.transform(X_target))
    return Pipeline([("adapt", standardizer), ("classifier", adapter)])


def adapt_model(
    model,
    X_target,
    *,
    method: str = "standardize",
    X_source=None,
    y_source=None,
    random_state: int | None = 0,
    **params: Any,
):
    """A copy of a trained model adapted to a new domain from its unlabelled embeddings.

    Parameters
    ----------
    model : EarmarkModel
        A clip model trained on the source domain.
    X_target : np.ndarray [shape=(n_target, dimension)]
        Embeddings of target-domain audio, from the model's backend.
    method : str
        One of :data:`METHODS`.
    X_source : np.ndarray [shape=(n_source, dimension)], optional
        The training embeddings. ``standardize`` can do without them when the model's
        pipeline starts with a ``StandardScaler`` (it holds the source's mean and
        scale); every other method needs them.
    y_source : array-like [shape=(n_source,)], optional
        The training labels, for ``dann`` and ``selftrain``.
    random_state : int or None
    **params
        Parameters of the method (see :func:`make_adapter`).

    Returns
    -------
    EarmarkModel
        Same backend and classes; ``training["adaptation"]`` records the method, the
        number of target items and the shift before and after (MMD, domain accuracy).

    Examples
    --------
    >>> import numpy as np
    >>> from earmark.backends import get_backend
    >>> from earmark.model import EarmarkModel
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = (rng.normal(size=(40, 16)) + (y == "b")[:, None]).astype(np.float32)
    >>> model = EarmarkModel.train(X, y, backend=get_backend("placeholder"))
    >>> adapted = adapt_model(model, X[:10] * 2 + 1)
    >>> adapted.pipeline.steps[0][0], adapted.training["adaptation"]["method"]
    ('adapt', 'standardize')
    """
    import copy

    from sklearn.pipeline import Pipeline

    from ..models import EarmarkModel, check_matrix
    from .shift import domain_shift
    from .standardize import DomainStandardizer

    if model.kind != "clip":
        raise EarmarkError(f"only clip models can be adapted; this one reads {model.kind}")
    if method not in METHODS:
        raise ParameterError(f"unknown adaptation method {method!r}; expected one of: {', '.join(METHODS)}")
    dimension = model.backend_identity.get("dimension")
    X_target = check_matrix(X_target, dimension)
    if len(X_target) < 2:
        raise ParameterError(f"expected at least 2 target items to adapt to, got {len(X_target)}")
    if X_source is not None:
        X_source = check_matrix(X_source, dimension)
    steps = copy.deepcopy(model.pipeline.steps)
    if steps and steps[0][0] == "adapt":
        raise EarmarkError("this model is already adapted; adapt the original model instead")
    learner, learner_params = model.learner, model.learner_params
    if method == "standardize" and X_source is None:
        from sklearn.preprocessing import StandardScaler

        scaler = steps[0][1] if steps else None
        if not isinstance(scaler, StandardScaler) or getattr(scaler, "mean_", None) is None:
            raise EarmarkError(
                f"a {model.learner!r} model does not record its training statistics; "
                f"give the training data as the source"
            )
        adapter = DomainStandardizer.from_source_statistics(scaler.mean_, scaler.scale_, X_target)
        pipeline = Pipeline([("adapt", adapter), *steps])
    elif X_source is None:
        raise EarmarkError(f"method {method!r} needs the training data as the source")
    else:
        fitted = fit_adapter(method, X_source, y_source, X_target, random_state=random_state, **params)
        if method in ALIGNERS:
            pipeline = Pipeline([("adapt", fitted), *steps])
        else:
            pipeline = fitted if isinstance(fitted, Pipeline) else Pipeline([("classifier", fitted)])
            learner, learner_params = method, dict(params)
            _check_classes(model, pipeline)
    record: dict[str, Any] = {
        "method": method,
        "params": {key: value for key, value in params.items()},
        "n_target": int(len(X_target)),
        "source": "training data" if X_source is not None else "model's scaler statistics",
        "adapted_from_learner": model.learner,
    }
    if X_source is not None:
        before = domain_shift(X_source, X_target, n_permutations=0, random_state=random_state)
        record["shift_before"] = before.to_dict()
        if "adapt" in dict(pipeline.steps):
            moved = pipeline.named_steps["adapt"].transform(X_target)
            after = domain_shift(X_source, moved, n_permutations=0, random_state=random_state)
            record["shift_after"] = after.to_dict()
    training = {**model.training, "adaptation": record}
    return EarmarkModel(
        pipeline,
        backend_identity=model.backend_identity,
        learner=learner,
        learner_params=learner_params,
        training=training,
    )


def _check_classes(model, pipeline) -> None:
    old = [str(label) for label in model.classes_.tolist()]
    new = [str(label) for label in pipeline.classes_.tolist()]
    if old != new:
        raise EarmarkError(
            f"the source labels give classes {new}, but the model knows {old}: give the "
            f"data the model was trained on as the source"
        )
