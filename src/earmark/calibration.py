"""Probabilities a user can act on: calibration fitted on held-out scores, and its measures.

Longer than ~500 lines: the calibrated learner, its cross-fitting and its four maps
are one estimator. Its measures (ECE, Brier score, reliability table) live in
:mod:`earmark.calibration_metrics` and are re-exported here.

A learner fitted on a few hundred embeddings is sure of its own training items; its
probabilities on new clips are not what they say (logistic regression on BirdNET
embeddings answers 1.000 on noise; an RBF SVM, temperature-scaled on its vote counts,
answered 0.50 on average at 80 % accuracy). :class:`CalibratedLearner` wraps any
scikit-learn classifier and maps its scores to probabilities learned from
**cross-fitted held-out scores of the training data only**: each training item is
scored by a copy of the learner fitted without its fold (without its group when groups
are given, so the scores look like those of new recordings), and one of three maps is
fitted on those scores:

* ``"temperature"``: one number dividing every logit (keeps the learner's labels);
* ``"sigmoid"``: Platt scaling, one slope and bias per class (one-vs-rest), renormalised;
* ``"isotonic"``: a monotone step function per class (one-vs-rest), renormalised;
* ``"smoothed-temperature"``: for learners that only give probabilities (neighbour or
  tree votes), a temperature over log-probabilities smoothed by ``alpha``,
  ``softmax(log(p + alpha) / T)``, the two fitted together. A vote of 0 is then a weak
  "no" whose weight is learned, where a plain temperature can only stretch the gap
  between 5 of 5 and 4 of 5 neighbours and the gap to 0 of 5 by the same factor, and
  one-vs-rest maps, renormalised, pulled every sure answer down: on FSDD (BirdNET,
  5 neighbours, each speaker held out) mean confidence was 13 points below accuracy
  with isotonic maps (ECE 0.134), 3 points below with this map (ECE 0.045);
* ``"matrix"``: a regularised multinomial logistic regression on the score vector
  (matrix scaling, Guo et al. 2017), for scores a single temperature cannot fix: an
  SVM's one-vs-rest votes, whose held-out temperature left it at 0.49 mean confidence
  for 68 % accuracy (Philharmonia, BirdNET).

``method="auto"`` picks, simplest first, the first whose log-loss on held-out scores is
within one standard error of the lowest (the held-out scores split again, by group, so a
map is never judged on the scores it was fitted on).
The same held-out scores set the ``unknown`` threshold that keeps ``unknown_coverage``
of in-set items (:meth:`CalibratedLearner.unknown_mask`), so every learner can say "none
of these".

:func:`~earmark.calibration_metrics.expected_calibration_error`,
:func:`~earmark.calibration_metrics.brier_score` and
:func:`~earmark.calibration_metrics.reliability_table` measure the result.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .calibration_metrics import brier_score, expected_calibration_error, reliability_table
from .exceptions import ParameterError
from .learners import fit_with_groups

__all__ = [
    "CalibratedLearner",
    "CALIBRATION_METHODS",
    "expected_calibration_error",
    "brier_score",
    "reliability_table",
]

#: Maps from held-out scores to probabilities, as ``method=`` accepts them.
CALIBRATION_METHODS = ("temperature", "smoothed-temperature", "sigmoid", "isotonic", "matrix")

#: The maps ``method="auto"`` chooses from. Matrix scaling is left out: chosen by
#: held-out log-loss for an RBF SVM (Philharmonia, BirdNET) it cost 12 points of
#: accuracy on the test groups.
AUTO_METHODS = ("temperature", "sigmoid", "isotonic")

#: Maps with the same parameters for every class (the others fit a map per class).
SHARED_MAPS = ("temperature", "smoothed-temperature")

#: What ``method="auto"`` chooses from when the learner only gives probabilities.
AUTO_METHODS_FOR_VOTES = ("temperature", "smoothed-temperature", "sigmoid", "isotonic")

#: The fitted attributes of each map (what ``_fit_map`` sets); a fitted model keeps only
#: its ``method_``'s.
_MAP_ATTRIBUTES = {
    "temperature": "temperature_",
    "smoothed-temperature": "smoothed_",
    "sigmoid": "sigmoid_",
    "isotonic": "isotonic_",
    "matrix": "matrix_",
}

# One-vs-rest probabilities are kept above this so a row never sums to zero and a
# log-loss stays finite.
_FLOOR = 1e-6


class CalibratedLearner(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities are calibrated on its own held-out scores.

    Parameters
    ----------
    estimator : sklearn classifier
        With ``decision_function`` or ``predict_proba``; cloned, never modified.
    method : {"auto", "temperature", "sigmoid", "isotonic", "none"}
        The map from scores to probabilities; ``"auto"`` chooses by held-out log-loss.
    cv : int
        Folds for the held-out scores, lowered to the smallest count of a class with two
        items or more; when ``fit`` gets groups, to the number of groups and the largest
        class's count instead (scikit-learn's limit). Classes with a single item are
        calibrated with the others by one temperature; with fewer than two classes of
        two items or more the scores stay uncalibrated (``method_ == "none"``).
    ensemble : bool
        False: one copy fitted on every training item answers, through the map fitted on
        the held-out copies' scores (keeps the learner's full accuracy). True: the
        held-out copies answer together (the map then reads exactly the kind of score it
        was fitted on; cost up to 9 points of accuracy on Philharmonia, where some
        held-out copies miss a class).
    unknown_coverage : float in (0, 1]
        Share of held-out in-set items that :meth:`is_unknown` keeps.
    target_precision, target_recall : float in (0, 1], optional
        At most one: per-class thresholds chosen on the held-out probabilities
        (:func:`earmark.thresholds.choose_thresholds`), applied by
        :meth:`predict_thresholded`.
    random_state : int or None
        Seed of the fold assignment.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    estimators_ : list of sklearn classifier
        What answers: one copy fitted on every training item, or with ``ensemble=True``
        the copies fitted without each fold (a new item's probability is then the mean
        of the map over their scores).
    method_ : str
        The map used (``"none"`` when there were too few items to calibrate). Of the
        map attributes below, only this map's is set.
    method_scores_ : dict
        Held-out log-loss of every map tried (``"raw"``: the learner's own softmax).
    temperature_ : float
    sigmoid_ : np.ndarray [shape=(n_classes, 2)]
        Slope and bias per class.
    isotonic_ : list of (np.ndarray, np.ndarray)
        Breakpoints and values per class.
    smoothed_ : np.ndarray [shape=(2,)]
        ``alpha`` and temperature of ``"smoothed-temperature"``.
    matrix_ : dict of np.ndarray
        ``center``, ``scale``, ``coef`` [shape=(n_classes, n_classes)], ``intercept``.
    threshold_ : float
        Known-ness (:meth:`known_score`) below which an item is unknown.
    threshold_source_ : str
    known_score_method_ : {"own", "energy", "probability"}
        What :meth:`known_score` measures: the wrapped learner's own score, the energy
        of the logits (learners with a decision function over 3 or more classes), or
        the top calibrated probability.
    heldout_known_ : np.ndarray [shape=(n_train,)] or None
        Known-ness of each training item from a model that did not see it; ``threshold_``
        keeps ``unknown_coverage`` of it.
    class_thresholds_ : np.ndarray [shape=(n_classes,)] or None
        Per-class probability thresholds for the target; None without a target. Always
        finite, so that a model file holds no NaN: 0 where too few items promise
        anything (answered whenever on top), see ``threshold_notes_``.
    class_withheld_ : np.ndarray [shape=(n_classes,)] of bool or None
        Classes whose precision target no threshold reaches: never answered.
    threshold_notes_ : dict
        Class label -> why it has no threshold.
    folds_note_ : str or None
        Why the held-out scores came from fewer folds than ``cv``, in words.
    heldout_proba_ : np.ndarray [shape=(n_train, n_classes)]
        Calibrated probabilities of the training items from models that did not see them
        (what per-class thresholds are chosen on, :mod:`earmark.thresholds`).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 30)
    >>> X = rng.normal(size=(60, 4)) + (y == "b")[:, None]
    >>> model = CalibratedLearner(LogisticRegression()).fit(X, y)
    >>> model.method_ in ("temperature", "sigmoid", "isotonic"), model.predict_proba(X).shape
    (True, (60, 2))
    """

    def __init__(
        self,
        estimator=None,
        *,
        method: str = "auto",
        cv: int = 5,
        ensemble: bool = False,
        unknown_coverage: float = 0.9,
        target_precision: float | None = None,
        target_recall: float | None = None,
        random_state: int | None = 0,
    ):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.ensemble = ensemble
        self.target_precision = target_precision
        self.target_recall = target_recall
        self.unknown_coverage = unknown_coverage
        self.random_state = random_state

    # ------------------------------------------------------------------- fitting
    def fit(self, X, y, groups=None):
        """Score held-out folds, fit the map on those scores, then the learner on all.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_features)]
        y : array-like [shape=(n,)]
        groups : array-like [shape=(n,)], optional
            Recording, speaker or site of each item: held-out folds then never share a
            group with their training part, as new recordings will not.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(self, X, y, ensure_min_samples=2, dtype=None)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ParameterError(
                f"expected at least 2 classes, got 1 ({self.classes_[0]!r})"
            )
        estimator = self._base()
        groups = None if groups is None else np.asarray(groups)
        self.method_scores_ = {}
        self._drop_maps()  # a previous fit's
        self._fold_models = []
        splits, fewer = self._splits(X, codes, groups)
        self.folds_note_ = (
            f"calibration folds lowered from {self.cv} to {len(splits)} ({fewer})"
            if fewer and self.method != "none" else None
        )
        if self.method == "none" or splits is None:
            self.method_ = "none"
            self.heldout_proba_ = self.heldout_known_ = None
            self.threshold_, self.threshold_source_ = -np.inf, "none (too few items)"
        else:
            S, known = self._heldout_scores(estimator, X, y, splits, groups)
            # A class's only item, held out, was scored by a copy that never heard of
            # the class: it says nothing about how sure the learner's answers are.
            mapped = np.bincount(codes)[codes] >= 2
            self.method_ = self._choose(S[mapped], codes[mapped],
                                        None if groups is None else groups[mapped],
                                        per_class=bool(mapped.all()))
            if not mapped.all() and self.method_ not in SHARED_MAPS:
                import warnings

                single = self.classes_[np.bincount(codes) < 2].tolist()
                warnings.warn(
                    f"method={self.method_!r} fits a map per class, and {single} have a "
                    "single training item (no held-out score of their own): their "
                    "probabilities stay near 0; method='auto' or 'temperature' calibrates "
                    "them with the other classes",
                    UserWarning, stacklevel=2,
                )
            # Every map tried on the inner folds left its attributes; keep only the
            # chosen map's, fitted on all the held-out scores.
            self._drop_maps()
            self._fit_map(self.method_, S[mapped], codes[mapped])
            self.heldout_proba_ = self._apply_map(self.method_, S)
            self.known_score_method_ = (
                "own" if known is not None
                else "energy" if hasattr(estimator, "decision_function") and len(self.classes_) > 2
                else "probability"
            )
            if known is None:
                known = self._known_from(S, self.heldout_proba_)
            self.heldout_known_ = known
            self.threshold_ = float(np.quantile(known, 1.0 - self.unknown_coverage))
            self.threshold_source_ = (
                f"held-out {'groups' if groups is not None else 'folds'} of the training items"
            )
            self.estimators_ = self._fold_models
        if self.method_ == "none" or not self.ensemble:
            self.estimators_ = [fit_with_groups(clone(estimator), X, y, groups)]
        del self._fold_models
        self._fit_class_thresholds(y, groups)
        return self

    def _fit_class_thresholds(self, y, groups=None) -> None:
        self.class_thresholds_, self.class_withheld_, self.threshold_notes_ = None, None, {}
        if self.target_precision is None and self.target_recall is None:
            return
        from .thresholds import choose_thresholds

        if self.heldout_proba_ is None:
            self.class_thresholds_ = np.zeros(len(self.classes_))
            self.class_withheld_ = np.zeros(len(self.classes_), dtype=bool)
            self.threshold_notes_ = {
                str(label): "a class has 1 training item: no held-out scores to choose on"
                for label in self.classes_.tolist()
            }
            return
        chosen = choose_thresholds(
            y, self.heldout_proba_, self.classes_,
            target_precision=self.target_precision, target_recall=self.target_recall,
            groups=groups,
        )
        # A model file refuses NaN and infinite numbers (they would make predictions
        # meaningless if a stranger's file held them), so "no promise" is stored as 0
        # (every probability clears it) and "never" as a flag.
        self.class_withheld_ = np.isposinf(chosen.thresholds)
        self.class_thresholds_ = np.where(np.isfinite(chosen.thresholds), chosen.thresholds, 0.0)
        self.threshold_notes_ = {str(label): note for label, note in chosen.notes.items()}

    def _check_params(self) -> None:
        if self.target_precision is not None and self.target_recall is not None:
            raise ParameterError("expected at most one of target_precision and target_recall")
        if self.method not in ("auto", "none", *CALIBRATION_METHODS):
            raise ParameterError(
                f"expected method in auto, none, {', '.join(CALIBRATION_METHODS)}; "
                f"got {self.method!r}"
            )
        if not (isinstance(self.cv, (int, np.integer)) and self.cv >= 2):
            raise ParameterError(f"expected cv to be an integer >= 2, got {self.cv!r}")
        if not (0 < self.unknown_coverage <= 1):
            raise ParameterError(
                f"expected unknown_coverage in (0, 1], got {self.unknown_coverage!r}"
            )

    def _base(self):
        if self.estimator is None:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(max_iter=5000)
        if not (hasattr(self.estimator, "decision_function")
                or hasattr(self.estimator, "predict_proba")):
            raise ParameterError(
                f"{type(self.estimator).__name__} has neither decision_function nor "
                "predict_proba: nothing to calibrate"
            )
        return self.estimator

    def _splits(self, X, codes, groups):
        """Held-out folds (None when fewer than two classes have two items or more), and
        what lowered their number below ``cv`` (None if nothing did).

        A class with a single item lands in one fold, whose training part then lacks it
        (its column is that fold's floor, :meth:`_heldout_scores`); the other classes'
        held-out scores still calibrate the learner (:meth:`_choose` then keeps to one
        temperature). Leaving the whole model uncalibrated for one rare class made it
        overconfident everywhere (Speech Commands, 30 words, official folds: a training
        part with one word held once gave ECE 0.21, confidence 0.42 at accuracy 0.21).
        """
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        counts = np.bincount(codes)
        if (counts >= 2).sum() < 2:
            return None, None
        smallest = int(counts[counts >= 2].min())
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != codes.shape:
                raise ParameterError(
                    f"expected one group per item ({codes.shape[0]}), got shape {groups.shape}"
                )
            n_groups = np.unique(groups).size
            # scikit-learn refuses more folds than the largest class has items.
            n_splits = min(int(self.cv), n_groups, int(counts.max()))
            if n_splits >= 2:
                splitter = StratifiedGroupKFold(
                    n_splits=n_splits, shuffle=True, random_state=self.random_state,
                )
                fewer = (None if n_splits == self.cv
                         else "groups" if n_splits == n_groups else "largest class")
                return _quietly_split(splitter, X, codes, groups), fewer
        folds = min(int(self.cv), smallest)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        return _quietly_split(splitter, X, codes), (None if folds == self.cv else "smallest class")

    def _heldout_scores(self, estimator, X, y, splits, groups=None):
        """Scores of every item from a copy fitted without its fold, [shape=(n, n_classes)],
        and the copy's own ``known_score`` of it where the learner has one (else None).

        An item in a fold whose training part lacks its class still gets a score row:
        the missing class's column is the row's floor, as if the learner had never
        heard of it (which it had not).
        """
        S = np.zeros((len(y), len(self.classes_)))
        own = hasattr(estimator, "known_score")
        known = np.zeros(len(y)) if own else None
        self._fold_models = []
        for train, test in splits:
            fitted = fit_with_groups(_fewer_neighbours(clone(estimator), len(train)),
                                     X[train], y[train], None if groups is None else groups[train])
            self._fold_models.append(fitted)
            self.estimators_ = [fitted]
            if own:
                known[test] = fitted.known_score(X[test])
            S[test] = self._raw(X[test])[0]
        return S, known

    def _choose(self, S, codes, groups=None, per_class=True) -> str:
        """The simplest map whose held-out log-loss is within one standard error of the
        best (the scores split once more, by group when groups are known).

        Simplest first: temperature (one number, keeps the learner's ranking), then
        Platt (two per class), then isotonic. Picking the lowest mean alone chose
        per-class maps that left logistic regression underconfident on a new speaker
        (FSDD, BirdNET: ECE 0.117, against 0.032 for temperature).
        """
        rows = np.arange(len(codes))
        self.method_scores_["raw"] = float(-log_softmax(S, axis=1)[rows, codes].mean())
        if self.method != "auto":
            return self.method
        inner = _inner_folds(codes, groups, self.random_state)
        losses = {}
        votes_only = not hasattr(self._base(), "decision_function")
        candidates = AUTO_METHODS_FOR_VOTES if votes_only else AUTO_METHODS
        if not per_class:
            # A class whose only item is its own has no held-out scores to fit a map of
            # its own on: the maps shared by every class only.
            candidates = tuple(m for m in candidates if m in SHARED_MAPS)
        for method in candidates:
            per_item = np.zeros(len(codes))
            for train, test in inner:
                self._fit_map(method, S[train], codes[train])
                P = self._apply_map(method, S[test])
                per_item[test] = -np.log(np.maximum(P[np.arange(len(test)), codes[test]], 1e-300))
            losses[method] = per_item
            self.method_scores_[method] = float(per_item.mean())
        best = min(candidates, key=self.method_scores_.get)
        for method in candidates:
            gap = losses[method] - losses[best]
            if gap.mean() <= gap.std() / np.sqrt(len(gap)):
                return method
        return best  # pragma: no cover - best itself is always within its own error

    def _drop_maps(self) -> None:
        for name in _MAP_ATTRIBUTES.values():
            self.__dict__.pop(name, None)

    def _fit_map(self, method, S, codes) -> None:
        if method == "temperature":
            self.temperature_ = _fit_temperature(S, codes)
        elif method == "smoothed-temperature":
            self.smoothed_ = _fit_smoothed_temperature(S, codes)
        elif method == "sigmoid":
            self.sigmoid_ = np.array(
                [_fit_platt(S[:, k], codes == k) for k in range(S.shape[1])]
            )
        elif method == "isotonic":
            self.isotonic_ = [_fit_isotonic(S[:, k], codes == k) for k in range(S.shape[1])]
        elif method == "matrix":
            self.matrix_ = _fit_matrix(S, codes, S.shape[1])

    def _apply_map(self, method, S) -> np.ndarray:
        if method == "temperature":
            P = softmax(S / self.temperature_, axis=1)
        elif method == "smoothed-temperature":
            alpha, temperature = self.smoothed_
            P = softmax(_smoothed_log_votes(S, alpha) / temperature, axis=1)
        elif method == "sigmoid":
            P = expit(S * self.sigmoid_[:, 0] + self.sigmoid_[:, 1])
        elif method == "isotonic":
            P = np.column_stack(
                [np.interp(S[:, k], x, p) for k, (x, p) in enumerate(self.isotonic_)]
            )
        elif method == "matrix":
            m = self.matrix_
            P = softmax(((S - m["center"]) / m["scale"]) @ m["coef"].T + m["intercept"], axis=1)
        else:
            P = softmax(S, axis=1)
        if method in ("sigmoid", "isotonic"):
            # One-vs-rest maps can give a whole row of zeros (isotonic steps); softmax
            # maps are left exact, so a sure answer keeps its margin (explanations read
            # the log-odds: a floor flattened every region of a confident clip to 0).
            P = np.maximum(P, _FLOOR)
        return P / P.sum(axis=1, keepdims=True)

    # ---------------------------------------------------------------- predicting
    def decision_function(self, X) -> np.ndarray:
        """Calibrated log-probabilities: the margin explanations and detectors read.

        Returns
        -------
        np.ndarray [shape=(n, n_classes)]
        """
        return np.log(self.predict_proba(X))

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities.

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
            Rows sum to 1; columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=None)
        return np.mean([self._apply_map(self.method_, S) for S in self._raw(X)], axis=0)

    def predict(self, X) -> np.ndarray:
        """The learner's own labels: calibration changes what a score means, never the
        answer (its top class can differ from the label where the map is not monotone
        in the label's score: isotonic ties, an SVM's votes against its margins).

        Returns
        -------
        labels : np.ndarray [shape=(n,)]
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=None)
        if len(self.estimators_) == 1:
            return self.estimators_[0].predict(X)
        P = np.mean([self._apply_map(self.method_, S) for S in self._raw(X)], axis=0)
        return self.classes_[np.argmax(P, axis=1)]

    def predict_thresholded(self, X, *, unknown_label="unknown") -> np.ndarray:
        """Labels under the per-class thresholds: the top calibrated class where its
        probability clears that class's threshold, else ``unknown_label``. Classes
        with too few items for a threshold (see ``threshold_notes_``) answer whenever
        they are on top; classes whose precision target is out of reach
        (``class_withheld_``) never answer.

        Returns
        -------
        labels : np.ndarray [shape=(n,), dtype=object]
        """
        from .thresholds import apply_thresholds

        check_is_fitted(self)
        if self.class_thresholds_ is None:
            raise ParameterError(
                "this model has no per-class thresholds; fit it with target_precision= "
                "or target_recall= (earmark train --target-precision P)"
            )
        thresholds = self.class_thresholds_
        withheld = getattr(self, "class_withheld_", None)  # absent from older model files
        if withheld is not None:
            thresholds = np.where(withheld, np.inf, thresholds)
        return apply_thresholds(self.predict_proba(X), self.classes_, thresholds,
                                unknown_label=unknown_label)

    def known_score(self, X) -> np.ndarray:
        """How sure the model is that each item is one of its classes (higher: surer).

        The wrapped learner's own ``known_score`` where it has one (prototypes: minus
        the distance to the nearest prototype relative to that class's spread), else
        the calibrated top probability. :meth:`is_unknown` compares it with
        ``threshold_``.

        Returns
        -------
        np.ndarray [shape=(n,)]
        """
        check_is_fitted(self)
        if hasattr(self.estimators_[0], "known_score"):
            X = validate_data(self, X, reset=False, dtype=None)
            return np.mean([model.known_score(X) for model in self.estimators_], axis=0)
        if getattr(self, "known_score_method_", "probability") == "energy":
            X = validate_data(self, X, reset=False, dtype=None)
            return np.mean([self._known_from(S, None) for S in self._raw(X)], axis=0)
        return self.predict_proba(X).max(axis=1)

    def _known_from(self, S, proba) -> np.ndarray:
        """Known-ness from raw scores: the energy ``logsumexp`` of the logits (Liu et
        al. 2020) for learners with several logits, else the top probability.

        Energy keeps how large the logits are, which the softmax throws away: on
        FSDD (a held-out speaker, half the digits unknown, logistic regression) its
        AUROC was 0.677 (MFCC) and 0.684 (BirdNET) against 0.652 and 0.651 for the top
        probability."""
        if getattr(self, "known_score_method_", "probability") == "energy":
            from scipy.special import logsumexp

            return logsumexp(S, axis=1)
        return proba.max(axis=1)

    def unknown_mask(self, X) -> np.ndarray:
        """True where an item is less sure (:meth:`known_score`) than the
        ``1 - unknown_coverage`` least sure of the held-out in-set training items:
        "none of these", for every learner.

        Returns
        -------
        mask : np.ndarray [shape=(n,), dtype=bool]
        """
        return self.known_score(X) < self.threshold_

    @available_if(lambda self: hasattr(self.estimator, "is_unknown"))
    def is_unknown(self, X) -> np.ndarray:
        """:meth:`unknown_mask`, offered under this name only where the wrapped learner
        answers "unknown" by itself (prototypes), so models whose users never asked for
        rejection keep every answer. The threshold is the held-out one set here.

        Returns
        -------
        mask : np.ndarray [shape=(n,), dtype=bool]
        """
        return self.unknown_mask(X)

    def _raw(self, X) -> list[np.ndarray]:
        """Each fold model's scores, columns aligned to ``classes_``."""
        out = []
        for model in self.estimators_:
            block = np.full((X.shape[0], len(self.classes_)), np.nan)
            block[:, np.searchsorted(self.classes_, model.classes_)] = _scores(model, X)
            floor = np.nanmin(block, axis=1, keepdims=True) - 10.0
            out.append(np.where(np.isnan(block), floor, block))
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


# ------------------------------------------------------------------ score maps
def _scores(fitted, X) -> np.ndarray:
    """Logit-like scores of a fitted classifier, [shape=(n, n_classes)].

    ``decision_function`` where there is one (two classes: split the margin in two
    columns), else log-probabilities floored at 1e-4: a neighbour or tree vote of 0 is
    a weak "no", not an impossibility. A one-vs-one SVM's pairwise margins are summed
    per class: its one-vs-rest values are mostly vote counts, which no monotone map
    turns into probabilities (a temperature left it at 0.49 mean confidence for 68 %
    accuracy).
    """
    if hasattr(fitted, "decision_function"):
        scores = np.asarray(fitted.decision_function(X), dtype=float)
        n_classes = len(fitted.classes_)
        if scores.ndim == 2 and scores.shape[1] != n_classes:
            return _pairwise_sums(scores, n_classes)
        if scores.ndim == 1:
            scores = np.column_stack([-scores / 2, scores / 2])
        return scores
    return np.log(np.maximum(np.asarray(fitted.predict_proba(X), dtype=float), 1e-4))


def _fewer_neighbours(estimator, n: int):
    """A fold has fewer items than the whole: neighbours are capped at its size."""
    for key, value in estimator.get_params(deep=True).items():
        if key.endswith("n_neighbors") and isinstance(value, int) and value > n:
            estimator.set_params(**{key: n})
    return estimator


def _pairwise_sums(pairwise: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class mean of one-vs-one margins (scikit-learn's pair order: (0, 1), (0, 2),
    ..., (1, 2), ...; positive favours the first class of the pair)."""
    first, second = np.triu_indices(n_classes, k=1)
    sums = np.zeros((pairwise.shape[0], n_classes))
    np.add.at(sums.T, first, pairwise.T)
    np.add.at(sums.T, second, -pairwise.T)
    return sums / (n_classes - 1)


def _quietly_split(splitter, X, codes, groups=None) -> list:
    """``splitter``'s folds, without its warning that a class has fewer items than folds
    (classes with a single item are expected here: :meth:`CalibratedLearner._splits`)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(X, codes, groups))


def _inner_folds(codes, groups, random_state) -> list:
    """Folds over the held-out scores to judge the maps on; by group when there are
    at least two (scores of one speaker resemble each other)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(codes)
    counts = counts[counts > 0]  # the classes present (single items are left out)
    n_splits = 0 if groups is None else min(3, np.unique(groups).size, int(counts.max()))
    if n_splits >= 2:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                                        random_state=random_state)
        return _quietly_split(splitter, codes, codes, groups)
    folds = int(min(3, counts.min()))
    if folds < 2:
        everything = np.arange(len(codes))
        return [(everything, everything)]
    return list(
        StratifiedKFold(folds, shuffle=True, random_state=random_state).split(codes, codes)
    )


def _platt_targets(codes, n_classes: int) -> np.ndarray:
    """One-hot targets with Platt's smoothing: the true class gets ``(n + 1) / (n + 2)``
    of the weight, the rest shared out, [shape=(n, n_classes)]."""
    n = len(codes)
    smoothing = 1.0 / (n + 2)
    targets = np.full((n, n_classes), smoothing / n_classes)
    targets[np.arange(n), codes] += 1.0 - smoothing
    return targets


def _fit_temperature(S, codes) -> float:
    """The temperature minimising held-out cross-entropy against Platt-style targets:
    the true class gets ``(n + 1) / (n + 2)`` of the weight rather than all of it, so
    scores that separate every held-out item (a clean training set) do not drive the
    temperature to zero and every answer to exactly 1.0."""
    from scipy.optimize import minimize_scalar

    targets = _platt_targets(codes, S.shape[1])
    spread = float(np.std(S)) or 1.0

    def loss(log_t):
        return float(-(targets * log_softmax(S / (spread * np.exp(log_t)), axis=1)).sum(1).mean())

    best = minimize_scalar(loss, bounds=(-12.0, 8.0), method="bounded")
    return float(spread * np.exp(best.x))


def _smoothed_log_votes(S, alpha: float) -> np.ndarray:
    """``log(p + alpha)`` from the floored log-probabilities ``_scores`` gives."""
    return np.log(np.exp(S) + alpha)


def _fit_smoothed_temperature(S, codes) -> np.ndarray:
    """``alpha`` and temperature minimising held-out cross-entropy (Platt-style targets,
    as :func:`_fit_temperature`), searched in log space from a light smoothing."""
    from scipy.optimize import minimize

    targets = _platt_targets(codes, S.shape[1])

    def loss(params):
        alpha, temperature = np.exp(np.clip(params, -12.0, 8.0))
        return float(-(targets * log_softmax(_smoothed_log_votes(S, alpha) / temperature, axis=1))
                     .sum(1).mean())

    best = minimize(loss, x0=[np.log(0.01), 0.0], method="Nelder-Mead")
    return np.exp(np.clip(best.x, -12.0, 8.0))


def _fit_platt(s, positive) -> tuple[float, float]:
    """Slope and bias of a one-vs-rest logistic map on one class's score (Platt's
    targets, which keep a class with few items from reaching 0 or 1)."""
    from scipy.optimize import minimize

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    scale = float(np.std(s)) or 1.0
    z = (s - np.mean(s)) / scale

    def loss(params):
        a, b = params
        logits = a * z + b
        return float(np.mean(np.logaddexp(0, logits) - target * logits))

    a, b = minimize(loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B").x
    return a / scale, b - a * np.mean(s) / scale


def _fit_matrix(S, codes, n_classes) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    center, scale = S.mean(axis=0), S.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Z = (S - center) / scale
    present = np.unique(codes)
    coef, intercept = np.zeros((n_classes, n_classes)), np.full(n_classes, -30.0)
    if present.size < 2:
        intercept[present] = 0.0
    else:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(Z, codes)
        if present.size == 2:
            # One margin for two classes: written as two logits, the first at zero.
            coef[present[1]], intercept[present] = model.coef_[0], [0.0, model.intercept_[0]]
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
    return {"center": center, "scale": scale, "coef": coef, "intercept": intercept}


def _fit_isotonic(s, positive) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    # Platt's targets here too: a step function fitted to 0/1 answers exactly 0 or 1
    # wherever the held-out items happened to be separated.
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(s, target)
    return np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float)
