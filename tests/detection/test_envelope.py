"""The streamed min/max envelope equals the envelope of the whole signal, in bounded size."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from earmark.detection.envelope import Envelope


@given(
    n=st.integers(1, 5000),
    max_bins=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
    seed=st.integers(0, 2**16),
)
def test_streamed_envelope_is_the_min_and_max_of_each_bin(n, max_bins, cuts, seed):
    y = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    envelope = Envelope(sr=100, max_bins=max_bins)
    for block in np.split(y, sorted(c for c in cuts if c < n)):
        envelope.add(block)

    start_s, low, high = envelope.result()

    width = envelope.bin_samples
    assert width & (width - 1) == 0, "bins are a power of two wide"
    assert low.size == -(-n // width) <= 2 * max_bins + 1
    if width > 1:
        assert n // (width // 2) > 2 * max_bins, "widened only when the bins overflowed"
    for i in range(low.size):
        assert low[i] == y[i * width : (i + 1) * width].min()
        assert high[i] == y[i * width : (i + 1) * width].max()
    np.testing.assert_array_equal(start_s, np.arange(low.size) * width / 100)


def test_tap_passes_blocks_through_unchanged():
    blocks = [np.arange(5, dtype=np.float32), np.zeros(0, np.float32), -np.ones(3, np.float32)]
    envelope = Envelope(sr=8, max_bins=100)
    out = list(envelope.tap(iter(blocks)))
    assert all(a is b for a, b in zip(out, blocks)) and len(out) == 3
    assert envelope.n_samples == 8
    _, low, high = envelope.result()
    assert (low.min(), high.max()) == (-1.0, 4.0)
