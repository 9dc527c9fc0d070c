"""Explanations of an anomaly score, and where across a test set they point.

An anomaly model is explained like any other (:func:`earmark.interpret.explain`): its
score (class ``"anomalous"``) is the explained quantity, regions of time x mel bands are
occluded, and :func:`earmark.interpret.assess` checks the explanation against random
order (deletion and insertion) and noise. :func:`frequency_profile` sums, over many
explanations, where the evidence lies in frequency: the check that showed Mai et al.
that their detectors listened above a cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = ["explain_anomaly", "FrequencyProfile", "frequency_profile", "REGION_EDGES_HZ"]

#: Frequency regions explanations are summarised over, in Hz (octaves from 250 Hz).
REGION_EDGES_HZ = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 24000.0)


def explain_anomaly(model, y, sr: int, **kwargs):
    """Explain an anomaly model's score of a waveform (occlusion over time x mel bands).

    Parameters
    ----------
    model : AnomalyModel
    y : np.ndarray [shape=(n,)]
    sr : int
    **kwargs
        Passed to :func:`earmark.interpret.explain` (``n_time``, ``n_bands``, ``method``...).

    Returns
    -------
    Explanation
        ``importance`` [shape=(n_time, n_bands)]: how much the score drops when the
        region is removed (positive: the region makes the recording sound anomalous).
    """
    from ..interpret.explain import explain

    if getattr(model, "kind", None) != "anomaly":
        raise ParameterError(f"expected an anomaly model, got kind {getattr(model, 'kind', None)!r}")
    kwargs.setdefault("label", "anomalous")
    return explain(model, y, sr, **kwargs)


@dataclass
class FrequencyProfile:
    """Share of positive explanation importance in each frequency region.

    Attributes
    ----------
    edges_hz : np.ndarray [shape=(n_regions + 1,)]
    share : np.ndarray [shape=(n_regions,)]
        Sums to 1 (over the explanations that had any positive importance).
    n_explanations : int
    """

    edges_hz: np.ndarray
    share: np.ndarray
    n_explanations: int

    @property
    def dominant(self) -> tuple[float, float]:
        """The region (low, high) in Hz holding the largest share."""
        index = int(np.argmax(self.share))
        return float(self.edges_hz[index]), float(self.edges_hz[index + 1])

    def to_dict(self) -> dict[str, Any]:
        return {"regions": [{"low_hz": float(a), "high_hz": float(b), "share": float(s)}
                            for a, b, s in zip(self.edges_hz[:-1], self.edges_hz[1:], self.share)],
                "dominant_hz": list(self.dominant), "n_explanations": self.n_explanations}

    def summary(self) -> str:
        low, high = self.dominant
        return (f"{self.share.max():.0%} of the evidence over {self.n_explanations} explanations "
                f"lies in {low:g}-{high:g} Hz")


def frequency_profile(explanations, edges_hz=REGION_EDGES_HZ) -> FrequencyProfile:
    """Where in frequency a set of explanations finds the evidence.

    Each explanation's positive importance, summed over time, is spread over the
    regions in proportion to how much of each mel band falls in each region; every
    explanation counts equally.

    Parameters
    ----------
    explanations : sequence of Explanation
    edges_hz : sequence of float

    Returns
    -------
    FrequencyProfile
    """
    edges = np.asarray(edges_hz, dtype=np.float64)
    total = np.zeros(len(edges) - 1)
    used = 0
    for explanation in explanations:
        per_band = np.clip(explanation.importance, 0, None).sum(axis=0)
        if per_band.sum() <= 0:
            continue
        per_band = per_band / per_band.sum()
        band_edges = explanation.band_edges_hz
        for weight, low, high in zip(per_band, band_edges[:-1], band_edges[1:]):
            overlap = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None)
            if overlap.sum() > 0:
                total += weight * overlap / overlap.sum()
        used += 1
    share = total / total.sum() if total.sum() > 0 else total
    return FrequencyProfile(edges, share, used)
