"""Results of few-shot episodes: one value per episode, summarised as a mean with its
95 % confidence interval, ``1.96 * std / sqrt(episodes)`` as in the few-shot literature.
The interval says how well the mean is known, not how much single episodes vary.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..files import jsonable

__all__ = ["FewShotPoint", "FewShotResult", "mean_ci95", "FIGURES"]

#: Per-episode figures a point may hold, beside accuracy, in the order they are reported.
FIGURES = ("coarse_accuracy", "rejection", "auroc", "own_coverage", "own_rejection")


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval, ``1.96 * std / sqrt(n)``."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(1.96 * values.std() / math.sqrt(values.size))


@dataclass
class FewShotPoint:
    """Scores of one shot count, one value per episode.

    Attributes
    ----------
    shots : int
        Support examples per class.
    ways : int
        Known classes per episode.
    accuracy : list of float
        In-set queries classified right, per episode.
    coarse_accuracy, rejection, auroc, own_coverage, own_rejection : list of float
        Empty when not measured (see the module docstring).
    auroc_by_score : dict of str to list of float
        Open set: AUROC per episode of every known-ness score the classifier offers
        (largest decision value, energy, largest probability, nearest distance), to
        compare them on the same episodes.
    queries_per_class : float
        Mean in-set queries per class and episode.
    fewest_queries : int
        Fewest queries any class had in any episode.
    n_eligible : int
        Classes episodes could draw from.
    """

    shots: int
    ways: int
    accuracy: list[float]
    coarse_accuracy: list[float] = field(default_factory=list)
    rejection: list[float] = field(default_factory=list)
    auroc: list[float] = field(default_factory=list)
    own_coverage: list[float] = field(default_factory=list)
    own_rejection: list[float] = field(default_factory=list)
    auroc_by_score: dict[str, list[float]] = field(default_factory=dict)
    queries_per_class: float = math.nan
    fewest_queries: int = 0
    n_eligible: int = 0

    @property
    def n_episodes(self) -> int:
        return len(self.accuracy)

    @property
    def mean(self) -> float:
        return mean_ci95(self.accuracy)[0]

    @property
    def ci95(self) -> float:
        return mean_ci95(self.accuracy)[1]

    @property
    def std(self) -> float:
        return float(np.std(self.accuracy))

    @property
    def chance(self) -> float:
        return 1.0 / self.ways

    def figure(self, name: str) -> tuple[float, float] | None:
        """``(mean, ci95)`` of ``"accuracy"`` or one of :data:`FIGURES`; None if not measured."""
        values = getattr(self, name)
        return mean_ci95(values) if len(values) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "shots": self.shots,
            "ways": self.ways,
            "n_episodes": self.n_episodes,
            "mean": self.mean,
            "ci95": self.ci95,
            "std": self.std,
            "queries_per_class": self.queries_per_class,
            "fewest_queries": self.fewest_queries,
            "n_eligible": self.n_eligible,
        }
        for name in FIGURES:
            summary = self.figure(name)
            out[name] = None if summary is None else {"mean": summary[0], "ci95": summary[1]}
        out["auroc_by_score"] = {
            name: dict(zip(("mean", "ci95"), mean_ci95(values)))
            for name, values in self.auroc_by_score.items()
        }
        out["episodes"] = {name: list(getattr(self, name)) for name in ("accuracy", *FIGURES)}
        out["episodes"]["auroc_by_score"] = {
            name: list(values) for name, values in self.auroc_by_score.items()
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FewShotPoint":
        episodes = data["episodes"]
        return cls(
            shots=data["shots"],
            ways=data["ways"],
            **{name: list(episodes.get(name, [])) for name in ("accuracy", *FIGURES)},
            auroc_by_score={name: list(values) for name, values in
                            episodes.get("auroc_by_score", {}).items()},
            queries_per_class=data["queries_per_class"],
            fewest_queries=data["fewest_queries"],
            n_eligible=data["n_eligible"],
        )


@dataclass
class FewShotResult:
    """Episodic few-shot scores of one method on one set of embeddings.

    Attributes
    ----------
    method : str
    strategy : str
        How support and query were kept apart, in words.
    ways : int or "all"
        As requested (each point has the number used).
    queries, episodes, unknown_ways, seed : int
    coverage : float
        In-set coverage at which out-of-set rejection is measured.
    points : list of FewShotPoint
        In increasing shots.
    skipped : list of dict
        ``{"shots", "reason"}`` for shot counts no episode could be drawn for.
    unknown_score : str or None
        How known-ness was scored for the open-set figures.
    coarse_source : str or None
        Where coarse predictions came from.
    center : str or None
        Where the method centred the embeddings, in words (prototype methods), or None.
    warnings : list of str
    """

    method: str
    strategy: str
    ways: int | str
    queries: int
    episodes: int
    unknown_ways: int
    seed: int
    coverage: float
    points: list[FewShotPoint]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unknown_score: str | None = None
    coarse_source: str | None = None
    warnings: list[str] = field(default_factory=list)
    center: str | None = None

    def point(self, shots: int) -> FewShotPoint:
        for point in self.points:
            if point.shots == shots:
                return point
        raise KeyError(f"no point for {shots} shots; shots: {[p.shots for p in self.points]}")

    def summary(self) -> str:
        centred = f", centred on {self.center}" if self.center else ""
        rows = [f"{self.method} ({self.strategy}{centred}), {self.episodes} episodes:"]
        for p in self.points:
            text = (
                f"  {p.ways}-way {p.shots}-shot: {p.mean:.1%} ± {p.ci95:.1%} "
                f"(chance {p.chance:.0%}, {p.queries_per_class:.1f} queries per class)"
            )
            extras = []
            if p.coarse_accuracy:
                extras.append(f"coarse {_percent(p, 'coarse_accuracy')}")
            if p.rejection:
                extras.append(
                    f"unknown rejected at {self.coverage:.0%} in-set {_percent(p, 'rejection')}, "
                    f"AUROC {np.mean(p.auroc):.2f}"
                )
            if p.own_coverage:
                own = f"own threshold keeps {_percent(p, 'own_coverage')} in-set"
                if p.own_rejection:
                    own += f", rejects {_percent(p, 'own_rejection')} unknown"
                extras.append(own)
            rows.append(text + "".join(f"; {extra}" for extra in extras))
        rows += [f"  skipped {s['shots']}-shot: {s['reason']}" for s in self.skipped]
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "strategy": self.strategy,
            "ways": self.ways,
            "queries": self.queries,
            "episodes": self.episodes,
            "unknown_ways": self.unknown_ways,
            "seed": self.seed,
            "coverage": self.coverage,
            "unknown_score": self.unknown_score,
            "coarse_source": self.coarse_source,
            "center": self.center,
            "points": [p.to_dict() for p in self.points],
            "skipped": jsonable(self.skipped),
            "warnings": list(self.warnings),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FewShotResult":
        return cls(
            method=data["method"],
            strategy=data["strategy"],
            ways=data["ways"],
            queries=data["queries"],
            episodes=data["episodes"],
            unknown_ways=data["unknown_ways"],
            seed=data["seed"],
            coverage=data["coverage"],
            points=[FewShotPoint.from_dict(p) for p in data["points"]],
            skipped=list(data["skipped"]),
            unknown_score=data["unknown_score"],
            coarse_source=data["coarse_source"],
            warnings=list(data["warnings"]),
            center=data.get("center"),  # absent from files of earlier versions
        )


def _percent(point: FewShotPoint, name: str) -> str:
    mean, ci95 = point.figure(name)
    return f"{mean:.1%} ± {ci95:.1%}"
