"""Local explanations of one clip's score: which time-frequency regions the model used.

Two ways to ask, both through :mod:`earmark.interpret.perturb` (regions removed from the
waveform, the result re-embedded by the model's own backend and scored), so both work for
any earmark model, those on frozen embeddings included:

- **occlusion**: each region removed on its own; its importance is how much the class
  score drops (``base_score - score without it``). Deterministic; one scoring per region.
- **LIME** (Ribeiro et al. 2016; SoundLIME, Mishra et al. 2017, for audio): random
  subsets of regions are removed, and a ridge regression on the keep masks, weighted by
  an exponential kernel on the masks' cosine distance to the whole clip, is fitted to
  the scores; its coefficients are the importances. Catches regions that only matter
  together, at the price of randomness (``seed``); see :mod:`earmark.interpret.reliability`
  for checking either kind.
- **links** (graph taggers only, :mod:`earmark.graph.links`): no perturbation; the
  importance of a region is the share of the class's label-node attention that falls on
  it (the class-to-region links of ATGNN), checked by the same deletion/insertion curves.

A positive importance is evidence for the class, a negative one evidence against it.
Both methods read the class's **log-odds**, ``log p - log(1 - p)``, not its probability:
a model sure of a clip (p = 0.9999) barely moves its probability when a region goes, and
a map of probability drops was a flat field of ``+0.0000`` there, while the log-odds
still drop by whole units (the same margin a calibrated model's probability comes from).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import ParameterError
from .perturb import BASELINES, ClassScorer, MaskedClip, RegionGrid, class_scorer, model_backend

__all__ = ["MAX_EXPLAIN_S", "METHODS", "Explanation", "explain", "explain_file", "log_odds"]

METHODS = ("occlusion", "lime", "links")
#: Longest span explained at once, in seconds. Every perturbed copy of the clip is held
#: and re-embedded together: a 30 s span peaks near 2.5 GB (MFCC model), a 25-minute
#: file would need tens of GB, so a longer one is refused before any audio is read.
MAX_EXPLAIN_S = 30.0


@dataclass
class Explanation:
    """Importance of each time-frequency region of one clip for one class.

    Attributes
    ----------
    importance : np.ndarray [shape=(n_time, n_bands)]
        Positive: the region is evidence for the class (occlusion: log-odds lost without
        it; LIME: surrogate coefficient on the log-odds).
    time_edges_s : np.ndarray [shape=(n_time + 1,)]
        Segment edges in seconds from the start of the clip.
    band_edges_hz : np.ndarray [shape=(n_bands + 1,)]
        Band edges in hertz (mel-spaced).
    label : str or int
        The explained class.
    class_index : int
        Its column in the model's :meth:`~earmark.model.EarmarkModel.predict_proba`.
    base_score : float
        The model's probability of the class for the whole clip.
    empty_score : float
        Its probability with every region removed.
    method : {"occlusion", "lime"}
    params : dict
        Everything needed to redo it (grid, baseline, STFT, samples, seed) and what it
        cost (``runtime_s``, ``n_scored``); LIME adds the surrogate's weighted R^2.
    y : np.ndarray [shape=(n,), dtype=float32]
        The explained waveform, at the backend's rate ``sr``.
    sr : int
    path : str or None
        The file explained, if any.
    """

    importance: np.ndarray
    time_edges_s: np.ndarray
    band_edges_hz: np.ndarray
    label: Any
    class_index: int
    base_score: float
    empty_score: float
    method: str
    params: dict
    y: np.ndarray = field(repr=False)
    sr: int
    path: str | None = None

    @property
    def grid(self) -> RegionGrid:
        return RegionGrid(self.time_edges_s, self.band_edges_hz)

    @property
    def baseline(self) -> str:
        return self.params.get("baseline", "floor")

    def masked_clip(self) -> MaskedClip:
        """The clip with the same grid and baseline, ready to remove regions from."""
        return MaskedClip(self.y, self.sr, self.grid, baseline=self.baseline)

    def order(self) -> np.ndarray:
        """Flat region indices (``segment * n_bands + band``), most important first.

        Returns
        -------
        np.ndarray [shape=(n_time * n_bands,)]
        """
        return np.argsort(-self.importance.ravel(), kind="stable")

    def top_mask(self, fraction: float = 0.2) -> np.ndarray:
        """The most important regions: the top ``fraction`` of them, positive ones only.

        Returns
        -------
        keep : np.ndarray [shape=(n_time, n_bands), dtype=bool]
        """
        if not 0 < fraction <= 1:
            raise ParameterError(f"expected fraction in (0, 1], got {fraction}")
        flat = self.importance.ravel()
        count = max(1, math.ceil(fraction * flat.size))
        chosen = self.order()[:count]
        keep = np.zeros(flat.size, dtype=bool)
        keep[chosen[flat[chosen] > 0]] = True
        return keep.reshape(self.importance.shape)

    def evidence(self, fraction: float = 0.2) -> np.ndarray:
        """The clip with only its most important regions kept (:meth:`top_mask`).

        Returns
        -------
        y : np.ndarray [shape=(n,), dtype=float32]
            At rate :attr:`sr`; the other regions are removed as during the explanation.
        """
        return self.masked_clip().render(self.top_mask(fraction)[None])[0]

    def top_regions(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most important regions, with their exact spans.

        Returns
        -------
        list of dict
            ``rank``, ``start_s``, ``end_s``, ``low_hz``, ``high_hz``, ``importance``,
            ``segment`` and ``band`` (grid indices).
        """
        n_bands = self.importance.shape[1]
        rows = []
        for rank, flat in enumerate(self.order()[:k], start=1):
            segment, band = divmod(int(flat), n_bands)
            rows.append({
                "rank": rank,
                "start_s": float(self.time_edges_s[segment]),
                "end_s": float(self.time_edges_s[segment + 1]),
                "low_hz": float(self.band_edges_hz[band]),
                "high_hz": float(self.band_edges_hz[band + 1]),
                "importance": float(self.importance[segment, band]),
                "segment": segment,
                "band": band,
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the waveform)."""
        label = self.label.item() if isinstance(self.label, np.generic) else self.label
        return {
            "path": self.path,
            "label": label,
            "class_index": self.class_index,
            "method": self.method,
            "base_score": self.base_score,
            "empty_score": self.empty_score,
            "importance": self.importance.tolist(),
            "time_edges_s": self.time_edges_s.tolist(),
            "band_edges_hz": self.band_edges_hz.tolist(),
            "top_regions": self.top_regions(),
            "params": self.params,
        }


def explain(
    model,
    y,
    sr: int,
    *,
    label=None,
    method: str = "occlusion",
    n_time: int = 8,
    n_bands: int = 8,
    baseline: str = "floor",
    n_samples: int = 256,
    seed: int | None = 0,
    kernel_width: float = 0.25,
    max_hz: float | None = None,
    backend=None,
    path=None,
) -> Explanation:
    """Explain a model's score of one class for a waveform.

    Parameters
    ----------
    model : EarmarkModel or PrototypeNetwork
        A model with probabilities (clip or frame model), or a prototype network fitted
        on audio files (the clip is then cut into its own patches, at its rate).
    y : np.ndarray [shape=(n,)]
        Mono waveform.
    sr : int
        Its rate; resampled to the backend's rate if different. Bands stop at ``sr / 2``.
    label : str or int, optional
        Class to explain; by default the model's prediction for the clip.
    method : {"occlusion", "lime", "links"}
        ``"links"`` for a graph tagger only.
    n_time, n_bands : int
        Grid of regions: equal time segments x mel-spaced bands.
    baseline : {"floor", "zero"}
        What removed regions are lowered to (:mod:`earmark.interpret.perturb`).
    n_samples : int
        LIME: random masks scored (besides the whole clip).
    seed : int or None
        LIME: random masks.
    kernel_width : float
        LIME: width of the kernel on the cosine distance between a mask and the whole clip.
    max_hz : float, optional
        Top of the highest band; ``sr / 2`` (capped at the backend's) by default.
    backend : Backend or PatchBackend, optional
        An already checked :func:`~earmark.interpret.perturb.model_backend` of the model.
    path : str or Path, optional
        Recorded in the explanation.

    Returns
    -------
    Explanation
        ``importance`` of shape ``(n_time, n_bands)``.
    """
    if method not in METHODS:
        raise ParameterError(f"expected method in {METHODS}, got {method!r}")
    if baseline not in BASELINES:
        raise ParameterError(f"expected baseline in {BASELINES}, got {baseline!r}")
    if method == "lime" and (not isinstance(n_samples, (int, np.integer)) or n_samples < 8):
        raise ParameterError(f"expected n_samples >= 8 for LIME, got {n_samples!r}")
    if method == "links" and getattr(model, "kind", None) != "graph-tagger":
        raise ParameterError("the links method explains a graph tagger; use occlusion or lime")
    if not kernel_width > 0:
        raise ParameterError(f"expected a positive kernel_width, got {kernel_width}")
    started = time.perf_counter()
    backend = backend if backend is not None else model_backend(model)
    y = _at_rate(y, sr, backend.sample_rate)
    rate = int(backend.sample_rate)
    nyquist_hz = min(sr, rate) / 2
    if max_hz is not None:
        if not 0 < max_hz <= rate / 2:
            raise ParameterError(f"expected max_hz in (0, {rate / 2}], got {max_hz}")
        nyquist_hz = float(max_hz)
    grid = RegionGrid.for_clip(y.size / rate, nyquist_hz, n_time=n_time, n_bands=n_bands)
    clip = MaskedClip(y, rate, grid, baseline=baseline)
    scorer = class_scorer(model, 0, backend=backend)
    whole, empty = np.ones((1, *grid.shape), bool), np.zeros((1, *grid.shape), bool)
    proba = scorer.proba(clip.render(np.concatenate([whole, empty])))
    scorer.class_index = _class_index(model, label, proba[0])
    base_score, empty_score = (float(p) for p in proba[:, scorer.class_index])
    params: dict[str, Any] = {
        "n_time": int(n_time), "n_bands": int(n_bands), "baseline": baseline,
        "n_fft": clip.n_fft, "hop_length": clip.hop_length,
        "max_hz": float(grid.band_edges_hz[-1]),
    }
    margin = _LogOdds(scorer)
    params["score"] = "log-odds"
    if method == "links":
        from ..graph.links import links_on_grid

        importance = links_on_grid(model, y, grid)[0][scorer.class_index]
    elif method == "occlusion":
        importance = _occlusion(clip, margin, log_odds(base_score))
    else:
        importance, r2 = _lime(clip, margin, log_odds(base_score), n_samples, seed, kernel_width)
        params.update(n_samples=int(n_samples), seed=seed, kernel_width=float(kernel_width),
                      surrogate_r2=r2)
    params.update(n_scored=scorer.n_calls, runtime_s=time.perf_counter() - started)
    label_value = model.classes_[scorer.class_index]
    return Explanation(
        importance=importance,
        time_edges_s=grid.time_edges_s,
        band_edges_hz=grid.band_edges_hz,
        label=label_value.item() if isinstance(label_value, np.generic) else label_value,
        class_index=scorer.class_index,
        base_score=base_score,
        empty_score=empty_score,
        method=method,
        params=params,
        y=y,
        sr=rate,
        path=None if path is None else str(path),
    )


def explain_file(
    model, path, *, start_s=None, end_s=None, backend=None, max_duration_s=MAX_EXPLAIN_S,
    **kwargs,
) -> Explanation:
    """Explain a model's score for an audio file (or a span of it).

    The file is read at its own rate, so that bands stop at its Nyquist frequency, then
    resampled to the backend's. Other keyword arguments go to :func:`explain`.

    Parameters
    ----------
    start_s, end_s : float, optional
        The span to explain, in seconds from the start of the file.
    max_duration_s : float or None
        Longest span explained (see :data:`MAX_EXPLAIN_S`); ``None`` for no limit.

    Raises
    ------
    AudioError
        If the file cannot be read; the message names it.
    ParameterError
        If the span is longer than ``max_duration_s``: checked from the header, before
        any audio is decoded.
    """
    from .. import audio

    if max_duration_s is not None:
        header = audio.info(path)
        first = 0.0 if start_s is None else float(start_s)
        last = header.duration_s if end_s is None else min(float(end_s), header.duration_s)
        if last - first > max_duration_s:
            raise ParameterError(
                f"{path}: the span to explain is {last - first:.1f} s long; an explanation "
                f"holds every perturbed copy of it in memory, so at most "
                f"{max_duration_s:g} s is explained at once. Pick a span (--start/--end, "
                f"e.g. --start {first:g} --end {first + max_duration_s:g}) or raise "
                f"--max-duration"
            )
    y, sr = audio.load(path, start_s=start_s, end_s=end_s)
    return explain(model, y, sr, backend=backend, path=path, **kwargs)


# ------------------------------------------------------------------ the methods
def _occlusion(clip: MaskedClip, scorer: ClassScorer, base_score: float) -> np.ndarray:
    n_time, n_bands = clip.grid.shape
    masks = np.ones((n_time * n_bands, n_time * n_bands), dtype=bool)
    np.fill_diagonal(masks, False)
    scores = scorer(clip.render(masks.reshape(-1, n_time, n_bands)))
    return (base_score - scores).reshape(n_time, n_bands)


def _lime(clip, scorer, base_score, n_samples, seed, kernel_width):
    from sklearn.linear_model import Ridge

    n_time, n_bands = clip.grid.shape
    n = n_time * n_bands
    rng = np.random.default_rng(seed)
    # As LIME samples images: how many regions to drop is uniform, then which ones, so
    # that masks close to the clip (which the kernel favours) are well represented.
    masks = np.ones((n_samples, n), dtype=bool)
    for row, n_off in zip(masks, rng.integers(1, n + 1, size=n_samples)):
        row[rng.choice(n, size=n_off, replace=False)] = False
    scores = scorer(clip.render(masks.reshape(-1, n_time, n_bands)))
    masks = np.vstack([np.ones((1, n), dtype=bool), masks])
    scores = np.concatenate([[base_score], scores])
    # Cosine distance between a mask and the all-ones mask of the whole clip.
    distance = 1.0 - np.sqrt(masks.sum(axis=1) / n)
    weights = np.exp(-(distance**2) / kernel_width**2)
    surrogate = Ridge(alpha=1.0).fit(masks.astype(np.float64), scores, sample_weight=weights)
    r2 = float(surrogate.score(masks.astype(np.float64), scores, sample_weight=weights))
    return surrogate.coef_.reshape(n_time, n_bands), r2


# ----------------------------------------------------------------------- helpers
#: Probabilities are held this far from 0 and 1, so a log-odds stays finite (±34.5).
_ODDS_FLOOR = 1e-15


def log_odds(p):
    """``log p - log(1 - p)``, with ``p`` held within 1e-15 of 0 and 1.

    Examples
    --------
    >>> round(float(log_odds(0.5)), 6), round(float(log_odds(0.9)), 3)
    (0.0, 2.197)
    """
    p = np.clip(np.asarray(p, dtype=np.float64), _ODDS_FLOOR, 1.0 - _ODDS_FLOOR)
    return np.log(p) - np.log1p(-p)


class _LogOdds:
    """A class scorer that answers the explained class's log-odds."""

    def __init__(self, scorer):
        self.scorer = scorer

    def __call__(self, waveforms) -> np.ndarray:
        return log_odds(self.scorer(waveforms))


def _at_rate(y, sr: int, rate: int) -> np.ndarray:
    import soxr

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"expected a non-empty mono waveform, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ParameterError("the waveform holds NaN or infinite values")
    if int(sr) <= 0:
        raise ParameterError(f"expected a positive sample rate, got {sr}")
    if int(sr) != int(rate):
        y = soxr.resample(y, int(sr), int(rate), quality="HQ").astype(np.float32)
    return y


def _class_index(model, label, proba: np.ndarray) -> int:
    """Column of ``label`` (matched as text too, as a user types it), or the prediction."""
    classes = list(model.classes_.tolist())
    if label is None:
        return int(np.argmax(proba))
    for index, name in enumerate(classes):
        if name == label or str(name) == str(label):
            return index
    raise ParameterError(
        f"the model has no class {label!r}; its classes are {', '.join(map(str, classes))}"
    )
