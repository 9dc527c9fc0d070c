"""How far apart two sets of embeddings are, without any labels.

A model trained under one set of recording conditions (speakers, microphones, playing
dynamics) loses accuracy under another, and users rarely have labels for the new
conditions to measure by how much. :func:`domain_shift` answers the question that can be
answered without labels: do the two sets of embeddings come from the same distribution?
It reports two scores:

* **MMD** (maximum mean discrepancy, Gretton et al. 2012): the distance between the two
  mean embeddings in a Gaussian-kernel feature space, estimated without bias (so it is
  about 0, possibly negative, for one distribution), with a permutation p-value;
* **domain accuracy**: the balanced cross-validated accuracy of a logistic regression
  that tries to tell source from target items. 0.5 means it cannot; 1.0 means every item
  gives its domain away (the proxy A-distance of Ben-David et al. 2007 is ``4 * acc - 2``).

Both read standardised embeddings (pooled mean and scale), so no single loud dimension
decides them. A shift is no proof of lost accuracy (a shift along directions the
classifier ignores costs nothing), but no shift is good evidence that the model will
behave as it did on the source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..exceptions import ParameterError

__all__ = ["DomainShift", "domain_shift", "mmd2"]

#: Domain accuracy (balanced) at or above which a shift is called strong / noticeable.
STRONG_SHIFT = 0.85
NOTICEABLE_SHIFT = 0.65


@dataclass(frozen=True)
class DomainShift:
    """Distance between a source and a target set of embeddings.

    Attributes
    ----------
    mmd2 : float
        Unbiased squared MMD with a Gaussian kernel (bandwidth: median pairwise distance).
    mmd_p_value : float
        Fraction of label permutations whose MMD is at least as large (with the observed
        one counted), so never below ``1 / (n_permutations + 1)``.
    domain_accuracy : float
        Balanced cross-validated accuracy of a source-vs-target classifier; 0.5 = no shift.
        Values well below 0.5 are chance too: after an alignment fitted on these very
        items the domains' means coincide, so each held-out fold sits on the opposite
        side of its training folds' mean and the classifier guesses the wrong domain.
    n_source, n_target : int
        Items compared (after subsampling to ``max_items`` each).
    """

    mmd2: float
    mmd_p_value: float
    domain_accuracy: float
    n_source: int
    n_target: int

    @property
    def distinguishability(self) -> float:
        """How well the two sets can be told apart: ``max(domain_accuracy - 0.5, 0) * 2``.

        0 when a classifier cannot tell source from target, 1 when it always can. A
        domain accuracy below chance reads 0: after an alignment fitted on these very
        items it is an artefact of the folds (see ``domain_accuracy``), not a sign that
        the domains differ.
        """
        return max(self.domain_accuracy - 0.5, 0.0) * 2

    @property
    def verdict(self) -> str:
        """The shift in a few words, from the domain accuracy and the p-value."""
        if self.mmd_p_value > 0.05 and self.domain_accuracy < NOTICEABLE_SHIFT:
            return "no detectable shift"
        if self.domain_accuracy >= STRONG_SHIFT:
            return "strong shift: expect lower accuracy on the target"
        if self.domain_accuracy >= NOTICEABLE_SHIFT:
            return "noticeable shift: check accuracy on some labelled target items"
        return "slight shift"

    def to_dict(self) -> dict:
        """JSON-ready: NaN (a score that could not be computed) becomes None."""
        values = {key: None if value != value else value for key, value in asdict(self).items()}
        distinguishable = self.distinguishability
        return {**values, "distinguishability": None if distinguishable != distinguishable
                else distinguishable, "verdict": self.verdict}


def domain_shift(
    X_source,
    X_target,
    *,
    n_permutations: int = 200,
    max_items: int = 500,
    n_splits: int = 5,
    random_state: int | None = 0,
) -> DomainShift:
    """Measure the shift between two embedding sets without labels.

    Parameters
    ----------
    X_source : np.ndarray [shape=(n_source, dimension)]
    X_target : np.ndarray [shape=(n_target, dimension)]
    n_permutations : int
        Permutations for the MMD p-value (0 skips it: p-value NaN).
    max_items : int
        At most this many items of each set are compared, drawn at random: the kernel
        matrix grows with the square of the count.
    n_splits : int
        Cross-validation folds of the domain classifier (lowered to the smaller set's size).
    random_state : int or None

    Returns
    -------
    DomainShift

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = domain_shift(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)))
    >>> moved = domain_shift(rng.normal(size=(60, 4)), rng.normal(2, 1, size=(60, 4)))
    >>> bool(same.domain_accuracy < 0.7), bool(moved.domain_accuracy > 0.9)
    (True, True)
    >>> moved.verdict
    'strong shift: expect lower accuracy on the target'
    """
    Xs, Xt = _check_pair(X_source, X_target)
    rng = np.random.default_rng(random_state)
    Xs = _subsample(Xs, max_items, rng)
    Xt = _subsample(Xt, max_items, rng)
    Z = _standardise(np.concatenate([Xs, Xt]))
    is_target = np.r_[np.zeros(len(Xs), bool), np.ones(len(Xt), bool)]
    K = _gaussian_kernel(Z)
    observed = _mmd2_from_kernel(K, is_target)
    if n_permutations > 0:
        exceed = sum(
            _mmd2_from_kernel(K, rng.permutation(is_target)) >= observed
            for _ in range(n_permutations)
        )
        p_value = (exceed + 1) / (n_permutations + 1)
    else:
        p_value = float("nan")
    accuracy = _domain_accuracy(Z, is_target, n_splits, random_state)
    return DomainShift(
        mmd2=float(observed),
        mmd_p_value=float(p_value),
        domain_accuracy=accuracy,
        n_source=len(Xs),
        n_target=len(Xt),
    )


def mmd2(X_source, X_target) -> float:
    """Unbiased squared MMD between two sets (Gaussian kernel, median bandwidth).

    Parameters
    ----------
    X_source : np.ndarray [shape=(n_source, dimension)]
    X_target : np.ndarray [shape=(n_target, dimension)]

    Returns
    -------
    float
        About 0 when both come from one distribution; larger the further apart.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3))
    >>> mmd2(X, X + 3) > mmd2(X, rng.normal(size=(50, 3)))
    True
    """
    Xs, Xt = _check_pair(X_source, X_target)
    Z = _standardise(np.concatenate([Xs, Xt]))
    is_target = np.r_[np.zeros(len(Xs), bool), np.ones(len(Xt), bool)]
    return float(_mmd2_from_kernel(_gaussian_kernel(Z), is_target))


# ----------------------------------------------------------------------- helpers
def _check_pair(X_source, X_target) -> tuple[np.ndarray, np.ndarray]:
    Xs = np.asarray(X_source, dtype=np.float64)
    Xt = np.asarray(X_target, dtype=np.float64)
    for name, X in (("X_source", Xs), ("X_target", Xt)):
        if X.ndim != 2 or X.shape[0] < 2:
            raise ParameterError(
                f"expected {name} of shape (n >= 2, dimension), got shape {X.shape}"
            )
        if not np.isfinite(X).all():
            raise ParameterError(f"{name} holds NaN or infinite values")
    if Xs.shape[1] != Xt.shape[1]:
        raise ParameterError(
            f"expected X_target of dimension {Xs.shape[1]} like X_source, got {Xt.shape[1]}"
        )
    return Xs, Xt


def _subsample(X: np.ndarray, max_items: int, rng: np.random.Generator) -> np.ndarray:
    if max_items < 2:
        raise ParameterError(f"expected max_items >= 2, got {max_items}")
    if len(X) <= max_items:
        return X
    return X[np.sort(rng.choice(len(X), max_items, replace=False))]


def _standardise(Z: np.ndarray) -> np.ndarray:
    scale = Z.std(axis=0)
    return (Z - Z.mean(axis=0)) / np.where(scale > 1e-12, scale, 1.0)


def _gaussian_kernel(Z: np.ndarray) -> np.ndarray:
    sq = (Z * Z).sum(1)
    D2 = np.maximum(sq[:, None] - 2 * Z @ Z.T + sq[None, :], 0.0)
    off = D2[~np.eye(len(Z), dtype=bool)]
    bandwidth = float(np.median(off)) or 1.0
    return np.exp(-D2 / bandwidth)


def _mmd2_from_kernel(K: np.ndarray, is_target: np.ndarray) -> float:
    s, t = ~is_target, is_target
    m, n = int(s.sum()), int(t.sum())
    Kss, Ktt, Kst = K[np.ix_(s, s)], K[np.ix_(t, t)], K[np.ix_(s, t)]
    within_s = (Kss.sum() - np.trace(Kss)) / (m * (m - 1))
    within_t = (Ktt.sum() - np.trace(Ktt)) / (n * (n - 1))
    return float(within_s + within_t - 2 * Kst.mean())


def _domain_accuracy(Z, is_target, n_splits, random_state) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import balanced_accuracy_score

    folds = int(min(n_splits, is_target.sum(), (~is_target).sum()))
    if folds < 2:
        return float("nan")
    # Penalised: with more dimensions than items an unpenalised fit chases noise, and
    # its held-out guesses would hide a real but modest shift.
    classifier = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
    cv = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    predicted = cross_val_predict(classifier, Z, is_target, cv=cv)
    return float(balanced_accuracy_score(is_target, predicted))
