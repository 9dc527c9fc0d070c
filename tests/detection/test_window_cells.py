"""Overlapping windows resolved into cells: exact spans, and the reductions checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from earmark.detection.events import frames_to_events, window_cells
from earmark.exceptions import ParameterError


def _windows(n: int, window_s: float, hop_s: float):
    start = np.arange(n) * hop_s
    return start, start + window_s


def test_windows_that_do_not_overlap_come_back_unchanged():
    start, end = _windows(5, 0.5, 0.5)
    scores = np.random.default_rng(0).random((5, 2))
    cells, a, b = window_cells(scores, start, end, reduce="min")
    np.testing.assert_allclose(cells, scores)
    np.testing.assert_allclose(a, start)
    np.testing.assert_allclose(b, end)


@pytest.mark.parametrize("onset_s, duration_s", [(10.0, 0.5), (7.5, 1.0), (12.0, 2.0)])
def test_min_over_covering_windows_recovers_an_event_exactly(onset_s, duration_s):
    """3 s windows, hop 0.5 s, each scoring 1 exactly when it overlaps the event (as a
    perfect window classifier would): runs of windows stretch the event by most of a
    window on each side; cells reduced by min give back its true span."""
    start, end = _windows(60, 3.0, 0.5)
    offset_s = onset_s + duration_s
    scores = ((start < offset_s) & (end > onset_s)).astype(float)[:, None]

    stretched = frames_to_events(scores, start, end, ["word"])
    assert stretched[0].onset_s == pytest.approx(onset_s - 2.5)
    assert stretched[0].offset_s == pytest.approx(offset_s + 2.5)

    cells, a, b = window_cells(scores, start, end, reduce="min")
    [event] = frames_to_events(cells, a, b, ["word"])
    assert event.onset_s == pytest.approx(onset_s)
    assert event.offset_s == pytest.approx(offset_s)


@given(
    n=st.integers(1, 30),
    window_hops=st.integers(1, 7),
    seed=st.integers(0, 2**16),
    reduce=st.sampled_from(["mean", "min", "max"]),
)
def test_each_cell_reduces_exactly_the_windows_that_cover_it(n, window_hops, seed, reduce):
    hop = 0.25
    start, end = _windows(n, window_hops * hop, hop)
    scores = np.random.default_rng(seed).random((n, 3))
    cells, a, b = window_cells(scores, start, end, reduce=reduce)
    assert np.all(b > a) and np.all(a[1:] >= b[:-1] - 1e-12)
    assert a[0] == pytest.approx(start[0]) and b[-1] == pytest.approx(end[-1])
    combine = {"mean": np.mean, "min": np.min, "max": np.max}[reduce]
    for row in range(len(a)):
        covering = (start <= a[row] + 1e-9) & (end >= b[row] - 1e-9)
        np.testing.assert_allclose(cells[row], combine(scores[covering], axis=0))


def test_bad_input_is_refused():
    start, end = _windows(3, 1.0, 0.5)
    with pytest.raises(ParameterError, match="reduce"):
        window_cells(np.zeros((3, 1)), start, end, reduce="median")
    with pytest.raises(ParameterError, match="time order"):
        window_cells(np.zeros((3, 1)), start[::-1], end[::-1])
    with pytest.raises(ParameterError, match="expected"):
        window_cells(np.zeros((2, 1)), start, end)
