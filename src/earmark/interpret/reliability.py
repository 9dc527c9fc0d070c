"""Is an explanation worth believing? Deletion and insertion curves, and stability.

Perturbation explanations can look convincing and still say little about the model
(Mishra, Benetos, Sturm and Dixon, on SoundLIME), so each one is checked on the model
itself:

- **deletion**: regions are removed most important first and the class score is
  followed from the whole clip down to nothing; a faithful explanation makes it fall
  faster than removing regions in random order (a lower area under the curve).
- **insertion**: the reverse, from nothing up to the whole clip; a faithful explanation
  makes the score rise faster than random (a higher area). Both as in RISE (Petsiuk,
  Das and Saenko 2018).
- **stability**: the explanation is redone on the clip with a little white noise added
  (and, for LIME, with other random seeds); the Spearman correlation of the importances
  says whether the ranking of regions survives.

:class:`Reliability` gathers the figures and one summary score in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import ParameterError
from .perturb import class_scorer, model_backend

__all__ = ["Curve", "Reliability", "assess", "deletion_insertion", "stability", "is_flat"]


@dataclass
class Curve:
    """Class score as regions are removed (deletion) or put back (insertion).

    Attributes
    ----------
    kind : {"deletion", "insertion"}
    fraction : np.ndarray [shape=(n_steps + 1,)]
        Fraction of the regions removed (deletion) or inserted (insertion) so far.
    explained : np.ndarray [shape=(n_steps + 1,)]
        Score with regions taken in the explanation's order.
    random : np.ndarray [shape=(n_steps + 1,)]
        Mean score over random orders; ``random_std`` their spread.
    random_std : np.ndarray [shape=(n_steps + 1,)]
    auc, random_auc : float
        Areas under ``explained`` and ``random`` (trapezoids over ``fraction``).
    """

    kind: str
    fraction: np.ndarray
    explained: np.ndarray
    random: np.ndarray
    random_std: np.ndarray
    auc: float
    random_auc: float

    @property
    def beats_random(self) -> bool:
        """True if the explanation's order does better than random: a lower area for
        deletion, a higher one for insertion."""
        if self.kind == "deletion":
            return self.auc < self.random_auc
        return self.auc > self.random_auc

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fraction": self.fraction.tolist(),
            "explained": self.explained.tolist(),
            "random": self.random.tolist(),
            "random_std": self.random_std.tolist(),
            "auc": self.auc,
            "random_auc": self.random_auc,
            "beats_random": self.beats_random,
        }


@dataclass
class Reliability:
    """How far one explanation can be trusted.

    Attributes
    ----------
    deletion, insertion : Curve
    noise_stability : float
        Mean Spearman correlation between the importances and those found on the clip
        with white noise added (``noise_snr_db`` in ``params``); NaN if not measured.
    seed_stability : float or None
        Same across LIME seeds; None for a deterministic method (occlusion).
    evidence_score : float
        The class score of the evidence alone: the clip with only its most important
        regions kept (``evidence_fraction`` of them, :meth:`Explanation.evidence`).
    faithfulness : float
        The share of the possible gain over random order that the explanation's order
        realises, in [-1, 1], averaged over the two curves: for deletion
        ``(random_auc - auc) / (random_auc - lowest)``, for insertion
        ``(auc - random_auc) / (highest - random_auc)``, where ``lowest`` and ``highest``
        are the extreme scores any curve reached (what an order that found them at
        once would hold throughout). 1: nothing better possible; 0: no better than
        random; negative: worse than random.
    score : float
        Summary in [0, 1]: the geometric mean of faithfulness and stability (the mean of
        the stabilities measured), 0 if either is not positive.
    verdict : {"reliable", "weak", "unreliable"}
        ``"unreliable"`` if the map is flat (:func:`is_flat`) or deletion does no better
        than random; ``"reliable"`` if both
        curves beat random and stability is at least 0.5; ``"weak"`` otherwise.
    params : dict
    """

    deletion: Curve
    insertion: Curve
    noise_stability: float
    seed_stability: float | None
    evidence_score: float
    faithfulness: float
    score: float
    verdict: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "faithfulness": self.faithfulness,
            "noise_stability": _plain_float(self.noise_stability),
            "seed_stability": _plain_float(self.seed_stability),
            "evidence_score": self.evidence_score,
            "deletion": self.deletion.to_dict(),
            "insertion": self.insertion.to_dict(),
            "params": self.params,
        }

    def summary(self) -> str:
        """A few lines for people."""
        seed = "" if self.seed_stability is None else f", across seeds {self.seed_stability:.2f}"
        return (
            f"{self.verdict} (score {self.score:.2f}): deletion AUC {self.deletion.auc:.3f} "
            f"vs {self.deletion.random_auc:.3f} random, insertion AUC {self.insertion.auc:.3f} "
            f"vs {self.insertion.random_auc:.3f} random; stability under noise "
            f"{self.noise_stability:.2f}{seed}; the evidence alone scores "
            f"{self.evidence_score:.3f}"
        )


def deletion_insertion(
    explanation, model, *, backend=None, n_steps: int = 16, n_random: int = 5, seed: int = 0
) -> tuple[Curve, Curve]:
    """Deletion and insertion curves of an explanation, against random orders.

    Parameters
    ----------
    explanation : Explanation
    model : EarmarkModel
        The model explained.
    backend : Backend, optional
    n_steps : int
        Points between the whole clip and nothing (regions are taken ``n_regions /
        n_steps`` at a time; at most one per step).
    n_random : int
        Random orders averaged for the reference.
    seed : int
        Random orders.

    Returns
    -------
    deletion, insertion : Curve
        Each with ``n_steps + 1`` points.
    """
    if not isinstance(n_random, (int, np.integer)) or n_random < 1:
        raise ParameterError(f"expected n_random >= 1, got {n_random!r}")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ParameterError(f"expected n_steps >= 1, got {n_steps!r}")
    shape = explanation.importance.shape
    n = shape[0] * shape[1]
    n_steps = min(int(n_steps), n)
    counts = np.round(np.linspace(0, n, n_steps + 1)).astype(int)
    rng = np.random.default_rng(seed)
    orders = [explanation.order()] + [rng.permutation(n) for _ in range(n_random)]
    # Interior points only: every order starts and ends at the same two clips.
    masks = []
    for kind in ("deletion", "insertion"):
        for order in orders:
            for count in counts[1:-1]:
                keep = np.ones(n, dtype=bool) if kind == "deletion" else np.zeros(n, dtype=bool)
                keep[order[:count]] = kind != "deletion"
                masks.append(keep.reshape(shape))
    scorer = class_scorer(model, explanation.class_index, backend=backend)
    clip = explanation.masked_clip()
    scores = scorer(clip.render(np.array(masks))) if masks else np.zeros(0)
    scores = scores.reshape(2, len(orders), n_steps - 1)
    whole, empty = explanation.base_score, explanation.empty_score
    fraction = counts / n
    curves = []
    for kind, inner in zip(("deletion", "insertion"), scores):
        first, last = (whole, empty) if kind == "deletion" else (empty, whole)
        full = np.column_stack([np.full(len(orders), first), inner, np.full(len(orders), last)])
        random = full[1:]
        curves.append(Curve(
            kind=kind,
            fraction=fraction,
            explained=full[0],
            random=random.mean(axis=0),
            random_std=random.std(axis=0),
            auc=float(np.trapezoid(full[0], fraction)),
            random_auc=float(np.mean([np.trapezoid(row, fraction) for row in random])),
        ))
    return curves[0], curves[1]


def stability(
    explanation,
    model,
    *,
    backend=None,
    n_noise: int = 2,
    noise_snr_db: float = 30.0,
    n_seeds: int = 2,
    seed: int = 0,
) -> tuple[float, float | None]:
    """Rank correlation of an explanation with explanations of slightly changed runs.

    Parameters
    ----------
    explanation : Explanation
    model : EarmarkModel
    backend : Backend, optional
    n_noise : int
        Noisy copies of the clip explained again (0 to skip: NaN).
    noise_snr_db : float
        Signal-to-noise ratio of the added white noise, relative to the clip's RMS.
    n_seeds : int
        LIME only: other seeds tried.
    seed : int
        Noise.

    Returns
    -------
    noise_stability : float
        Mean Spearman correlation over the noisy copies.
    seed_stability : float or None
        Mean Spearman correlation over the other seeds; None for occlusion.
    """
    from .explain import explain

    backend = backend if backend is not None else model_backend(model)
    params = explanation.params
    same = {
        "label": explanation.label, "method": explanation.method,
        "n_time": params["n_time"], "n_bands": params["n_bands"],
        "baseline": params["baseline"], "max_hz": params["max_hz"], "backend": backend,
    }
    if explanation.method == "lime":
        same.update(n_samples=params["n_samples"], kernel_width=params["kernel_width"])
    y, sr = explanation.y, explanation.sr
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    noise_sigma = rms * 10 ** (-noise_snr_db / 20)
    noisy = []
    for _ in range(n_noise):
        y_noisy = y + rng.normal(0.0, noise_sigma, size=y.shape).astype(np.float32)
        other = explain(model, y_noisy, sr, seed=params.get("seed"), **same)
        noisy.append(_spearman(explanation.importance, other.importance))
    seeds = None
    if explanation.method == "lime":
        base_seed = params.get("seed") or 0
        seeds = [
            _spearman(explanation.importance,
                      explain(model, y, sr, seed=base_seed + 1 + k, **same).importance)
            for k in range(n_seeds)
        ]
    noise_stability = _mean(noisy)
    seed_stability = None if seeds is None else _mean(seeds)
    return noise_stability, seed_stability


def assess(
    explanation,
    model,
    *,
    backend=None,
    n_steps: int = 16,
    n_random: int = 5,
    n_noise: int = 2,
    noise_snr_db: float = 30.0,
    n_seeds: int = 2,
    evidence_fraction: float = 0.2,
    seed: int = 0,
) -> Reliability:
    """Deletion and insertion curves, stability and a summary score for an explanation.

    Parameters are those of :func:`deletion_insertion` and :func:`stability`, and
    ``evidence_fraction`` (of the regions, most important first) kept for the
    evidence score.

    Returns
    -------
    Reliability
    """
    backend = backend if backend is not None else model_backend(model)
    deletion, insertion = deletion_insertion(
        explanation, model, backend=backend, n_steps=n_steps, n_random=n_random, seed=seed
    )
    noise_stability, seed_stability = stability(
        explanation, model, backend=backend, n_noise=n_noise, noise_snr_db=noise_snr_db,
        n_seeds=n_seeds, seed=seed,
    )
    evidence = explanation.evidence(evidence_fraction)
    evidence_score = float(
        class_scorer(model, explanation.class_index, backend=backend)(evidence[None])[0]
    )
    faithfulness = float(np.mean([_gain(deletion), _gain(insertion)]))
    measured = [s for s in (noise_stability, seed_stability) if s is not None and np.isfinite(s)]
    stable = float(np.mean(measured)) if measured else 0.0
    score = float(np.sqrt(faithfulness * stable)) if faithfulness > 0 and stable > 0 else 0.0
    if is_flat(explanation.importance) or not deletion.beats_random:
        verdict = "unreliable"
    elif insertion.beats_random and stable >= 0.5:
        verdict = "reliable"
    else:
        verdict = "weak"
    return Reliability(
        deletion=deletion,
        insertion=insertion,
        noise_stability=noise_stability,
        seed_stability=seed_stability,
        evidence_score=evidence_score,
        faithfulness=faithfulness,
        score=score,
        verdict=verdict,
        params={"n_steps": n_steps, "n_random": n_random, "n_noise": n_noise,
                "noise_snr_db": noise_snr_db, "n_seeds": n_seeds,
                "evidence_fraction": evidence_fraction, "seed": seed},
    )


#: A map whose importances all lie within this of each other says nothing (log-odds).
FLAT_SPREAD = 1e-3


def is_flat(importance) -> bool:
    """True where a map's importances span less than :data:`FLAT_SPREAD`: nothing to read.

    Examples
    --------
    >>> is_flat(np.zeros((8, 8))), is_flat(np.eye(8))
    (True, False)
    """
    values = np.asarray(importance, dtype=float)
    return bool(values.size == 0 or np.ptp(values) < FLAT_SPREAD)


def _gain(curve: Curve) -> float:
    """Share of the possible improvement over random order realised (see Reliability)."""
    values = np.concatenate([curve.explained, curve.random])
    if curve.kind == "deletion":
        gain, room = curve.random_auc - curve.auc, curve.random_auc - values.min()
    else:
        gain, room = curve.auc - curve.random_auc, values.max() - curve.random_auc
    if room <= 1e-9:
        return 0.0
    return float(np.clip(gain / room, -1.0, 1.0))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two importance maps; NaN if either is constant."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _mean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _plain_float(value):
    if value is None:
        return None
    return None if not np.isfinite(value) else float(value)
