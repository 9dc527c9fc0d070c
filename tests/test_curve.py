"""Learning curves on real FSDD embeddings, split by speaker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earmark.curve import CurveResult, learning_curve
from earmark.exceptions import ParameterError
from earmark.plots import plot_learning_curves


# Small fits on the FSDD embeddings: one BLAS thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def curve(fsdd):
    return learning_curve(
        fsdd.X, fsdd.y, groups=fsdd.speakers, n_splits=6, sizes=(1, 4, 32, "all"), n_draws=2
    )


def test_accuracy_grows_with_examples(curve):
    assert [point.size for point in curve.points] == [1, 4, "all"]
    one, four, every = (curve.point(size) for size in (1, 4, "all"))
    # Measured: 29 %, 44 %, 58 % (chance 10 %).
    assert every.mean > four.mean > one.mean > curve.chance
    assert every.mean - one.mean > 0.15
    for point in curve.points:
        assert point.min <= point.mean <= point.max
        assert point.std == pytest.approx(np.std(point.accuracy))


def test_each_point_averages_every_split_and_draw(curve):
    assert curve.strategy == "leave one group out (6 groups)"
    assert len(curve.point(1).accuracy) == 6 * 2
    assert len(curve.point("all").accuracy) == 6  # one draw: it is the whole training part
    assert curve.point(4).examples_per_class == 4
    assert curve.point("all").examples_per_class == 20  # 5 speakers x 4 takes


def test_a_size_beyond_the_smallest_class_is_skipped_with_the_reason(curve):
    assert [entry["size"] for entry in curve.skipped] == [32]
    assert "only 20 training examples" in curve.skipped[0]["reason"]


def test_the_same_seed_gives_the_same_curve_and_another_seed_another(fsdd, curve):
    again = learning_curve(
        fsdd.X, fsdd.y, groups=fsdd.speakers, n_splits=6, sizes=(1,), n_draws=2
    )
    assert again.point(1).accuracy == curve.point(1).accuracy
    other = learning_curve(
        fsdd.X, fsdd.y, groups=fsdd.speakers, n_splits=6, sizes=(1,), n_draws=2, random_state=1
    )
    assert other.point(1).accuracy != curve.point(1).accuracy


def test_draws_come_from_the_training_part_only(fsdd, monkeypatch):
    """With an official test set, no test item is ever drawn for training."""
    import earmark.learners

    seen = []
    real_fit = earmark.learners.fit_learner

    def recording_fit(learner, X, y):
        seen.append(X)
        return real_fit(learner, X, y)

    monkeypatch.setattr(earmark.learners, "fit_learner", recording_fit)
    role = np.where(fsdd.speakers == "theo", "test", "train")
    result = learning_curve(fsdd.X, fsdd.y, folds=role, learner="knn", sizes=(4, 16, "all"))
    assert len(seen) == 5 + 5 + 1
    assert [len(X) for X in seen] == [40] * 5 + [160] * 5 + [200]
    test_rows = {row.tobytes() for row in fsdd.X[role == "test"]}
    assert not any(row.tobytes() in test_rows for X in seen for row in X)
    assert result.strategy == "official train/test split (40 test items)"


def test_json_round_trip(curve):
    data = json.loads(curve.to_json())
    assert data == curve.to_dict()
    assert data["points"][0]["n_fits"] == 12
    again = CurveResult.from_dict(data)
    assert [p.mean for p in again.points] == [p.mean for p in curve.points]
    assert again.skipped == curve.skipped


def test_two_curves_in_one_picture(fsdd, curve, tmp_path):
    knn = learning_curve(
        fsdd.X, fsdd.y, groups=fsdd.speakers, n_splits=6, learner="knn", sizes=(1, 4, "all"),
        n_draws=2,
    )
    path = plot_learning_curves({"mfcc": curve, "mfcc knn": knn}, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = plot_learning_curves({"mfcc": curve.to_dict()}, spread="range")
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert labels == ["1", "2", "4", "8", "16", "all\n(20)"]


def test_bad_sizes_are_refused(fsdd):
    for sizes in [(0,), ("most",), ()]:
        with pytest.raises(ParameterError):
            learning_curve(fsdd.X, fsdd.y, groups=fsdd.speakers, sizes=sizes)


def test_progress_callback_counts_every_fit(fsdd):
    seen = []
    curve = learning_curve(
        fsdd.X, fsdd.y, groups=fsdd.speakers, n_splits=6, sizes=(1, 2, "all"), n_draws=2,
        on_fit=lambda done, total: seen.append((done, total)),
    )
    fits = sum(len(point.accuracy) for point in curve.points)
    assert fits == 6 * 2 + 6 * 2 + 6
    assert seen == [(i, fits) for i in range(1, fits + 1)]
