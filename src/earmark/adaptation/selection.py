"""``auto``: adapt only as far as the methods agree, without target labels.

No label-free score tells how accurate an adapted model is on the target. What can be
seen without labels is where the methods agree. Each method fails in its own way: plain
standardisation under label shift, the proportion estimate under over-confident
posteriors, prototype EM when one class swallows the target, self-training when its
first pseudo-labels are wrong. They rarely fail on the same item in the same way.
:class:`ConsensusAdapter` therefore labels each target item with the label most of the
candidates give it, doing nothing included, and keeps the unadapted label on ties: an
item changes only when more methods agree on a new label than on any other.

How it was chosen, stated plainly: three label-free rules were compared on 15
development cases with BirdNET embeddings (FSDD speakers, balanced and imbalanced;
Speech Commands to FSDD; Philharmonia dynamics), the target labels used only to score
the rules. Choosing one method by reverse validation (Zhong et al. 2010: adapt, pseudo-
label, adapt back, score the source) failed: it favoured the labellings closest to the
source classifier's, right or wrong, and ranked the best method on FSDD speakers
(prototype EM, +25 points) below doing nothing. Choosing the single method that agrees
most with the others fell 1.5 points below doing nothing once. The per-item consensus
never fell below doing nothing and gained most. Those BirdNET cases are therefore not an
independent test of the rule; the MFCC rows of ``benchmarks/adaptation_label_shift.py``
were measured after it was fixed.

Each method's agreement with the consensus is its warning sign: a method that agrees
with it less than doing nothing does is reported as one that may hurt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import ParameterError

__all__ = ["AUTO_CANDIDATES", "AutoChoice", "ConsensusAdapter", "adapt_and_predict", "consensus"]

#: Methods ``auto`` lets vote, besides doing nothing (``"none"``, which wins ties). DANN
#: is left out: it trains a network, and helped on no benchmark.
AUTO_CANDIDATES = ("standardize", "standardize+priors", "coral+priors", "prototypes",
                   "selftrain", "priors")


@dataclass
class AutoChoice:
    """What ``auto`` did, and why.

    Attributes
    ----------
    method : str
        ``"consensus"`` when some target item changed label, else ``"none"``.
    agreement : dict
        Per candidate (``"none"`` included), the share of target items where it gives
        the consensus label.
    changed : float
        Share of target items whose label differs from the unadapted model's.
    closest : str
        The single method that agrees most with the consensus.
    reason : str
        One sentence for people.
    """

    method: str
    agreement: dict[str, float] = field(default_factory=dict)
    changed: float = 0.0
    closest: str = "none"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.method, "criterion": "agreement between methods",
                "agreement": dict(self.agreement), "changed": self.changed,
                "closest": self.closest, "reason": self.reason}

    def hurting(self) -> list[str]:
        """Methods that agree with the consensus less than doing nothing does."""
        floor = self.agreement.get("none", 0.0)
        return [name for name, value in self.agreement.items() if name != "none" and value < floor]


def consensus(predictions: dict[str, np.ndarray]) -> tuple[np.ndarray, AutoChoice]:
    """Per item, the label most methods give; ``"none"``'s label wins ties.

    Parameters
    ----------
    predictions : dict of str to np.ndarray [shape=(n_target,)]
        Target labels per method; must hold ``"none"``.

    Returns
    -------
    labels : np.ndarray [shape=(n_target,)]
    choice : AutoChoice

    Examples
    --------
    >>> import numpy as np
    >>> labels, choice = consensus({"none": np.array(["a", "a"]), "x": np.array(["b", "a"]),
    ...                             "y": np.array(["b", "b"])})
    >>> labels.tolist(), choice.method
    (['b', 'a'], 'consensus')
    """
    if "none" not in predictions:
        raise ParameterError("expected the unadapted labels under 'none'")
    names = list(predictions)
    stack = np.array([np.asarray(predictions[name]).astype(str) for name in names])
    unadapted = stack[names.index("none")]
    labels = unadapted.copy()
    for item in range(stack.shape[1]):
        values, counts = np.unique(stack[:, item], return_counts=True)
        top = values[counts == counts.max()]
        if unadapted[item] not in top:
            labels[item] = top[0] if len(top) == 1 else unadapted[item]
    agreement = {name: float(np.mean(stack[i] == labels)) for i, name in enumerate(names)}
    changed = float(np.mean(labels != unadapted))
    closest = max(names, key=lambda name: (agreement[name], name == "none"))
    n_methods = len(names) - 1
    if changed == 0:
        reason = (f"no adaptation: no target item got a new label from more of the "
                  f"{n_methods} methods than kept the unadapted one")
        method = "none"
    else:
        reason = (f"consensus of {n_methods} methods and no adaptation: {changed:.0%} of the "
                  f"target items changed label where most methods agreed on the new one; "
                  f"closest single method: {closest} ({agreement[closest]:.0%} agreement)")
        method = "consensus"
    # Back to the labels' own type (the vote compared them as text).
    originals = {str(value): value for name in names for value in np.asarray(predictions[name]).tolist()}
    out = np.asarray([originals[label] for label in labels.tolist()],
                     dtype=np.asarray(predictions["none"]).dtype)
    return out, AutoChoice(method, agreement, changed, closest, reason)


def adapt_and_predict(method: str, X_source, y_source, X_target, *, learner: str = "logreg",
                      random_state: int | None = 0) -> tuple[np.ndarray, Any]:
    """Adapt with ``method`` (or ``"none"``) and label the target items.

    Parameters
    ----------
    method : str
        ``"none"`` or one of :data:`~earmark.adaptation.METHODS` (not ``auto``).
    X_source : np.ndarray [shape=(n_source, dimension)]
    y_source : array-like [shape=(n_source,)]
    X_target : np.ndarray [shape=(n_target, dimension)]
    learner : str
        The classifier the aligners feed (``none``, ``standardize``, ``coral``) and the
        label-shift methods correct.

    Returns
    -------
    predicted : np.ndarray [shape=(n_target,)]
    fitted : estimator
        A classifier of target embeddings: the source classifier (``none``), a pipeline of
        aligner and source classifier (``standardize``, ``coral``), or the adapted
        classifier.
    """
    fitted = _fit_member(method, X_source, y_source, X_target, learner, random_state)
    return np.asarray(fitted.predict(X_target)), fitted


def _fit_member(method, X_source, y_source, X_target, learner, random_state):
    from sklearn.pipeline import Pipeline

    from ..learners import fit_learner, make_learner
    from .methods import ALIGNERS, fit_adapter

    if method == "none" or method in ALIGNERS:
        base, _ = fit_learner(make_learner(learner, random_state=random_state), X_source, y_source)
        if method == "none":
            return base
        aligner = fit_adapter(method, X_source, y_source, X_target, random_state=random_state)
        return Pipeline([("adapt", aligner), ("classifier", base)])
    return fit_adapter(method, X_source, y_source, X_target, random_state=random_state,
                       learner=learner)


class ConsensusAdapter(ClassifierMixin, BaseEstimator):
    """``auto``: each target item gets the label most adaptation methods agree on.

    Parameters
    ----------
    candidates : tuple of str
        Methods that vote besides doing nothing (see :data:`AUTO_CANDIDATES`).
    learner : str
        The source classifier (:data:`earmark.learners.LEARNERS`) that the aligners and
        the label-shift methods use.
    random_state : int or None

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    members_ : dict of str to estimator
        Each method fitted, ``"none"`` first; each predicts target embeddings.
    choice_ : dict
        :meth:`AutoChoice.to_dict` on the fitted target items: each method's agreement
        with the consensus, the share of items changed, and why.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 30)
    >>> source = rng.normal(size=(60, 4)) + (y == "b")[:, None] * 2
    >>> target = rng.normal(size=(60, 4)) + (y == "b")[:, None] * 2 + 1
    >>> model = ConsensusAdapter(candidates=("standardize", "priors")).fit(source, y, X_target=target)
    >>> sorted(model.choice_["agreement"])
    ['none', 'priors', 'standardize']
    """

    def __init__(self, *, candidates: tuple = AUTO_CANDIDATES, learner: str = "logreg",
                 random_state: int | None = 0):
        self.candidates = candidates
        self.learner = learner
        self.random_state = random_state

    def fit(self, X, y, *, X_target=None):
        """Fit every candidate on the source and the unlabelled target.

        Parameters
        ----------
        X : np.ndarray [shape=(n_source, n_features)]
        y : array-like [shape=(n_source,)]
        X_target : np.ndarray [shape=(n_target, n_features)], optional
            Without it, only the unadapted classifier is fitted.

        Returns
        -------
        self
        """
        from .methods import METHODS

        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        unknown = [name for name in self.candidates if name not in METHODS or name == "dann"]
        if unknown:
            raise ParameterError(
                f"auto cannot let {unknown} vote; expected some of: {', '.join(AUTO_CANDIDATES)}"
            )
        names = ("none", *self.candidates) if X_target is not None else ("none",)
        Xt = None if X_target is None else validate_data(self, X_target, dtype=np.float64, reset=False)
        self.members_ = {
            name: _fit_member(name, X, y, Xt, self.learner, self.random_state) for name in names
        }
        self.classes_ = np.asarray(self.members_["none"].classes_)
        if Xt is None:
            choice = AutoChoice("none", {"none": 1.0}, 0.0, "none",
                                "no adaptation: no target items were given")
        else:
            _, choice = consensus(self._votes(Xt))
        # A plain dict, so that the model file holds builtins only.
        self.choice_ = choice.to_dict()
        return self

    def _votes(self, X) -> dict[str, np.ndarray]:
        return {name: np.asarray(member.predict(X)) for name, member in self.members_.items()}

    def predict(self, X) -> np.ndarray:
        """The consensus label of target items (ties: the unadapted model's).

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]
            Target-domain embeddings.

        Returns
        -------
        labels : np.ndarray [shape=(n,)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        labels, _ = consensus(self._votes(X))
        return labels

    def predict_proba(self, X) -> np.ndarray:
        """Half on the consensus label, half the methods' vote shares [shape=(n, n_classes)].

        Not a calibrated probability: a vote count, with the consensus label always on top.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        votes = self._votes(X)
        labels, _ = consensus(votes)
        counts = np.zeros((len(X), len(self.classes_)))
        column = {str(label): index for index, label in enumerate(self.classes_.tolist())}
        rows = np.arange(len(X))
        for predicted in votes.values():
            counts[rows, [column[str(label)] for label in predicted.tolist()]] += 1
        # Half the mass on the consensus label (ties went to the unadapted one), so the
        # argmax is always the prediction; the other half is the vote.
        counts[rows, [column[str(label)] for label in np.asarray(labels).tolist()]] += len(votes)
        return counts / counts.sum(axis=1, keepdims=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = False
        return tags
