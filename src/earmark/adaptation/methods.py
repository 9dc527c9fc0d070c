"""The adaptation methods by name, and adapting a saved model to a new domain.

Two kinds of method:

* **aligners** (``standardize``, ``coral``) map target embeddings into the source's
  statistics. The trained classifier is kept as it is; :func:`adapt_model` puts the
  fitted aligner in front of it, so the adapted model reads target audio and the
  original model still serves the source.
* **classifiers** (``dann``, ``selftrain``, ``prototypes``) are trained anew from the
  labelled source and the unlabelled target; they replace the model's classifier;
* **label-shift methods** (``priors``, ``standardize+priors``, ``coral+priors``) keep the
  model's classifier, estimate the target's class proportions, align with source
  statistics weighted to them and correct the decision
  (:class:`~earmark.adaptation.LabelShiftAdapter`); they replace the classifier with one
  that wraps a refitted copy of it.

``auto`` is no method of its own: each target item gets the label most of the methods
(doing nothing included) agree on, the unadapted one on ties
(:class:`~earmark.adaptation.ConsensusAdapter`).

Every method reads the target's embeddings only, never its labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import EarmarkError, ParameterError

__all__ = ["METHODS", "ALIGNERS", "CHOICES", "LABEL_SHIFT", "make_adapter", "fit_adapter",
           "adapt_model", "estimated_priors"]

#: Method names and what each one does, in one line.
METHODS: dict[str, str] = {
    "standardize": "give the target the source's per-dimension mean and scale",
    "coral": "also give the target the source's correlations (CORAL)",
    "dann": "retrain a small network whose features cannot tell the domains apart "
    "(adversarial, gradient reversal)",
    "selftrain": "standardize, then move prototypes towards confident target predictions",
    "priors": "estimate the target's class proportions (EM) and correct the decision for "
    "them; no embedding is moved",
    "standardize+priors": "standardize against source statistics weighted to the target's "
    "estimated class proportions, and correct the decision for them",
    "coral+priors": "CORAL against source statistics weighted to the target's estimated "
    "class proportions, and correct the decision for them",
    "prototypes": "prototypes moved onto the target's classes by EM, with a common shift and "
    "the target's estimated class proportions",
}
#: Methods that estimate the target's class proportions (``target_priors_``).
LABEL_SHIFT = ("priors", "standardize+priors", "coral+priors")
#: Every name ``--adapt`` accepts: the methods, and ``auto`` (the methods' consensus).
CHOICES = (*METHODS, "auto")
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
    from .labelshift import LabelShiftAdapter
    from .prototypes import PrototypeAdapter
    from .selftrain import SelfTrainingPrototypes
    from .standardize import DomainStandardizer

    if method not in METHODS:
        raise ParameterError(f"unknown adaptation method {method!r}; expected one of: {', '.join(METHODS)}")
    if method in LABEL_SHIFT:
        align = None if method == "priors" else method.split("+")[0]
        return LabelShiftAdapter(align=align, random_state=random_state, **params)
    if method == "prototypes":
        return PrototypeAdapter(**params)
    if method == "standardize":
        return DomainStandardizer(**params)
    if method == "coral":
        return CoralAligner(**params)
    if method == "dann":
        return DANNClassifier(random_state=random_state, **params)
    return SelfTrainingPrototypes(**params)


def fit_adapter(method: str, X_source, y_source, X_target, *, random_state=0, learner=None,
                **params):
    """Fit a method on labelled source and unlabelled target embeddings.

    Parameters
    ----------
    method : str
    X_source : np.ndarray [shape=(n_source, dimension)]
    y_source : array-like [shape=(n_source,)] or None
        Needed by the classifier methods only.
    X_target : np.ndarray [shape=(n_target, dimension)]
    learner : str or estimator, optional
        The classifier the label-shift methods correct (a name of
        :data:`earmark.learners.LEARNERS` or an unfitted estimator; default ``logreg``).

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
    if method in LABEL_SHIFT and learner is not None:
        from ..learners import make_learner

        base = make_learner(learner, random_state=random_state) if isinstance(learner, str) else learner
        adapter.set_params(base=base)
    if method in ("dann", "prototypes", *LABEL_SHIFT):
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
        One of :data:`METHODS`, or ``"auto"``: the consensus of the methods, or none when
        it changes no target label (the model is then returned unchanged, with the
        reason recorded).
    X_source : np.ndarray [shape=(n_source, dimension)], optional
        The training embeddings. ``standardize`` can do without them when the model's
        pipeline starts with a ``StandardScaler`` (it holds the source's mean and
        scale); every other method needs them.
    y_source : array-like [shape=(n_source,)], optional
        The training labels, for every method but ``standardize``, ``coral``.
    random_state : int or None
    **params
        Parameters of the method (see :func:`make_adapter`).

    Returns
    -------
    EarmarkModel
        Same backend and classes; ``training["adaptation"]`` records the method, the
        number of target items, the shift before and after (MMD, domain accuracy), the
        estimated target class proportions (methods that estimate them) and, for
        ``auto``, what it chose and why.

    Examples
    --------
    >>> import numpy as np
    >>> from earmark.backends import get_backend
    >>> from earmark.models import EarmarkModel
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
    if method not in CHOICES:
        raise ParameterError(f"unknown adaptation method {method!r}; expected one of: {', '.join(CHOICES)}")
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
    if method == "auto" and (X_source is None or y_source is None):
        raise EarmarkError("method 'auto' needs the training data (and its labels) as the source")
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
        if method in LABEL_SHIFT:
            # The model's own classifier, refitted on the source inside the adapter.
            from sklearn.base import clone

            params = {"base": clone(Pipeline(steps)), **params}
        if method == "auto":
            from .selection import ConsensusAdapter

            fitted = ConsensusAdapter(learner=_learner_name(model), random_state=random_state,
                                      **params).fit(X_source, y_source, X_target=X_target)
        else:
            fitted = fit_adapter(method, X_source, y_source, X_target,
                                 random_state=random_state, **params)
        if method in ALIGNERS:
            pipeline = Pipeline([("adapt", fitted), *steps])
        else:
            pipeline = fitted if isinstance(fitted, Pipeline) else Pipeline([("classifier", fitted)])
            learner, learner_params = method, _plain_params(params)
            _check_classes(model, pipeline)
    record: dict[str, Any] = {
        "method": method,
        "params": _plain_params(params),
        "n_target": int(len(X_target)),
        "source": "training data" if X_source is not None else "model's scaler statistics",
        "adapted_from_learner": model.learner,
    }
    if method == "auto":
        record["auto"] = pipeline[-1].choice_
        record["warnings"] = _hurting_warnings(record["auto"])
        # The estimates of the proportions, from the methods that make one.
        record["target_priors_by_method"] = {
            name: estimated_priors(member) for name, member in pipeline[-1].members_.items()
            if estimated_priors(member) is not None
        }
        if record["auto"]["chosen"] == "none":
            # No target item changed label: keep the model as it was.
            pipeline, learner, learner_params = Pipeline(steps), model.learner, model.learner_params
    elif y_source is not None and X_source is not None:
        record.update(_agreement(model, method, pipeline, X_source, y_source, X_target, random_state))
    priors = estimated_priors(pipeline)
    if priors is not None:
        record["target_priors"] = priors
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


def estimated_priors(fitted) -> dict[str, float] | None:
    """The target class proportions a fitted method estimated, by class; None if it made none.

    Parameters
    ----------
    fitted : estimator or Pipeline

    Returns
    -------
    dict of str to float, or None
    """
    last = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
    priors = getattr(last, "target_priors_", None)
    if priors is None:
        return None
    return {str(label): float(value) for label, value in zip(last.classes_, priors)}


def _learner_name(model) -> str:
    from ..learners import LEARNERS

    return model.learner if model.learner in LEARNERS else "logreg"


def _agreement(model, method, pipeline, X_source, y_source, X_target, random_state) -> dict:
    """The method's agreement with the consensus of all methods, and a warning if low."""
    from .selection import ConsensusAdapter, consensus

    voters = ConsensusAdapter(learner=_learner_name(model), random_state=random_state)
    voters.fit(X_source, y_source, X_target=X_target)
    votes = voters._votes(X_target)
    labels, _ = consensus(votes)
    votes[method] = np.asarray(pipeline.predict(X_target))
    agreement = {name: float(np.mean(np.asarray(value).astype(str) == labels.astype(str)))
                 for name, value in votes.items()}
    warnings = _hurting_warnings({"agreement": agreement}, only=method)
    return {"agreement": agreement, "warnings": warnings}


def _hurting_warnings(choice: dict, only: str | None = None) -> list[str]:
    """A warning per method that agrees with the consensus less than doing nothing does."""
    agreement = choice["agreement"]
    floor = agreement.get("none", 0.0)
    return [
        f"{name} may hurt: it gives {value:.0%} of the target items the label most methods "
        f"agree on, doing nothing {floor:.0%}"
        for name, value in agreement.items()
        if name != "none" and value < floor and (only is None or name == only)
    ]


def _plain_params(params: dict) -> dict:
    """JSON-ready method parameters (an estimator is recorded by its class name)."""
    return {key: value if isinstance(value, (str, int, float, bool, type(None)))
            else type(value).__name__ for key, value in params.items()}


def _check_classes(model, pipeline) -> None:
    old = [str(label) for label in model.classes_.tolist()]
    new = [str(label) for label in pipeline.classes_.tolist()]
    if old != new:
        raise EarmarkError(
            f"the source labels give classes {new}, but the model knows {old}: give the "
            f"data the model was trained on as the source"
        )
