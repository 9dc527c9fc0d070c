"""Whitening by a Ledoit-Wolf-shrunk covariance, for support sets far smaller than the
embedding: what :class:`~earmark.fewshot.prototypes.PrototypeClassifier` measures its
distances with (as Simple CNAPS does), in factored form.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(10, 64))
>>> W = shrunk_whitening(X, np.repeat([0, 1], 5))
>>> apply_whitening(W, X).shape
(10, 64)
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_whitening", "ledoit_wolf_shrinkage", "shrunk_whitening"]


def shrunk_whitening(X: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse square root of a Ledoit-Wolf-shrunk covariance, in factored form.

    With n support items in d dimensions (n << d), the covariance is a * I + b * Z'Z for
    the centred items Z (n x d), so its inverse square root is
    a^-1/2 (I - V V') + V diag((a + b s^2)^-1/2) V' with Z = U diag(s) V'. Applying it
    costs O(d * n) instead of inverting a d x d matrix per episode: why it is written
    out here rather than taken from sklearn.covariance, which forms the full matrix.
    """
    n_classes = codes.max() + 1
    means = np.zeros((n_classes, X.shape[1]))
    np.add.at(means, codes, X)
    counts = np.bincount(codes, minlength=n_classes)
    means /= np.maximum(counts, 1)[:, None]  # a class left out of a calibration fold
    Z = X - means[codes]
    dof = len(X) - int((counts > 0).sum())
    # No within-class scatter (one item per class): the identity, not the whole set's
    # covariance, which shrinks the directions that separate the classes (see
    # earmark.fewshot.prototypes, which does not whiten then).
    if dof < 1 or not np.any(Z):
        return {"a": np.array(1.0), "V": np.zeros((X.shape[1], 0)), "f": np.zeros(0)}
    shrinkage = ledoit_wolf_shrinkage(Z)
    mu = float((Z**2).sum() / dof / Z.shape[1])
    a = max(shrinkage * mu, 1e-12 * max(mu, 1e-300))
    b = (1 - shrinkage) / dof
    # Z = U diag(s) V' from the eigenvectors of the small Gram matrix Z Z'.
    eigenvalues, U = np.linalg.eigh(Z @ Z.T)
    keep = eigenvalues > eigenvalues.max() * 1e-12
    s = np.sqrt(eigenvalues[keep])
    V = (Z.T @ U[:, keep]) / s
    f = (a + b * s**2) ** -0.5 - a**-0.5
    return {"a": np.array(a), "V": V, "f": f}


def ledoit_wolf_shrinkage(Z: np.ndarray) -> float:
    """sklearn.covariance.ledoit_wolf_shrinkage(Z, assume_centered=True), from the Gram matrix.

    The same formula, written with G = Z Z' (n x n) instead of Z'Z (d x d): with 25
    support items of 1024-d embeddings it is much faster, and a few-shot evaluation
    fits thousands of episodes.
    """
    n, d = Z.shape
    G = Z @ Z.T
    trace = np.trace(G) / n
    mu = trace / d
    beta_sum = float((np.diag(G) ** 2).sum())
    delta_sum = float((G**2).sum()) / n**2
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def apply_whitening(whitening: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """``X`` times the inverse square root that :func:`shrunk_whitening` factored."""
    V, f = whitening["V"], whitening["f"]
    return X * float(whitening["a"]) ** -0.5 + ((X @ V) * f) @ V.T
