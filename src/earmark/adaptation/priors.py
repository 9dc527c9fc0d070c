"""The target's class proportions, estimated without its labels, and decisions corrected for them.

A classifier trained on a balanced source and applied to a target whose classes are
imbalanced (label shift) leans towards the source's proportions. When only the
proportions change (``p(x | y)`` is the same in both domains) Bayes' rule gives the
corrected posterior, ``p_t(y | x) ∝ p_s(y | x) * pi_t(y) / pi_s(y)``, and the target
proportions ``pi_t`` are the fixed point of the EM iteration of Saerens, Latinne and
Decaestecker (2002): correct the posteriors with the current ``pi_t``, take their mean as
the new ``pi_t``, repeat. EM needs calibrated posteriors: Alexandari, Kundaje and
Shrikumar (2020) found EM on temperature-scaled posteriors hard to beat, so the source
classifier's log-probabilities are scaled by one temperature fitted on out-of-fold
source predictions (:func:`fit_temperature`).

The estimate reads the classifier's outputs on target items, never the target's labels.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

from ..exceptions import ParameterError

__all__ = ["estimate_target_priors", "correct_posteriors", "fit_temperature"]


def estimate_target_priors(
    P_target,
    source_priors,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    min_prior: float = 1e-4,
) -> tuple[np.ndarray, int]:
    """Class proportions of a target set from source posteriors on it (EM, Saerens et al.).

    Parameters
    ----------
    P_target : np.ndarray [shape=(n_target, n_classes)]
        Calibrated posteriors of a classifier trained on the source, on target items.
    source_priors : np.ndarray [shape=(n_classes,)]
        Class proportions the classifier was trained with.
    max_iter : int
    tol : float
        Stop when no proportion moves by more than this.
    min_prior : float
        Floor of every proportion, so no class is ruled out for good.

    Returns
    -------
    priors : np.ndarray [shape=(n_classes,)]
        Sums to 1.
    n_iter : int

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8]] * 2)
    >>> priors, _ = estimate_target_priors(P, np.array([0.5, 0.5]))
    >>> bool(priors[0] > 0.8)
    True
    """
    P = np.asarray(P_target, dtype=np.float64)
    source = np.asarray(source_priors, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != source.shape[0] or len(P) == 0:
        raise ParameterError(
            f"expected posteriors of shape (n >= 1, {source.shape[0]}), got {P.shape}"
        )
    source = source / source.sum()
    priors = source.copy()
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        corrected = correct_posteriors(P, source, priors)
        new = np.maximum(corrected.mean(axis=0), min_prior)
        new /= new.sum()
        moved = float(np.abs(new - priors).max())
        priors = new
        if moved < tol:
            break
    return priors, n_iter


def correct_posteriors(P, source_priors, target_priors) -> np.ndarray:
    """Posteriors for the target's class proportions (Bayes' rule under label shift).

    Parameters
    ----------
    P : np.ndarray [shape=(n, n_classes)]
    source_priors, target_priors : np.ndarray [shape=(n_classes,)]

    Returns
    -------
    np.ndarray [shape=(n, n_classes)]
        Rows sum to 1.
    """
    P = np.asarray(P, dtype=np.float64)
    ratio = np.asarray(target_priors, float) / np.maximum(np.asarray(source_priors, float), 1e-12)
    weighted = P * ratio[None, :]
    total = weighted.sum(axis=1, keepdims=True)
    return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), 1.0 / P.shape[1])


def fit_temperature(log_P, codes, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature that makes ``softmax(log_P / T)`` most likely for the true classes.

    Parameters
    ----------
    log_P : np.ndarray [shape=(n, n_classes)]
        Out-of-fold log-posteriors (or logits) of labelled items.
    codes : np.ndarray [shape=(n,)]
        Their class indices.

    Returns
    -------
    float
        1.0 leaves the posteriors as they are; above 1 softens over-confident ones.
    """
    from scipy.optimize import minimize_scalar

    log_P = np.asarray(log_P, dtype=np.float64)
    codes = np.asarray(codes)

    def nll(log_t: float) -> float:
        scaled = log_softmax(log_P / np.exp(log_t), axis=1)
        return float(-scaled[np.arange(len(codes)), codes].mean())

    found = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded")
    return float(np.exp(found.x))


def scaled_posteriors(log_P, temperature: float) -> np.ndarray:
    """``softmax(log_P / temperature)`` [shape=(n, n_classes)]."""
    return softmax(np.asarray(log_P, dtype=np.float64) / temperature, axis=1)


def log_posteriors(classifier, X) -> np.ndarray:
    """Log-probabilities of a fitted classifier, floored so none is minus infinity."""
    return np.log(np.clip(classifier.predict_proba(X), 1e-12, 1.0))
