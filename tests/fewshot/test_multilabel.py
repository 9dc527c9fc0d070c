"""Multi-label prototypes: label formats, leave-one-out thresholds, taxonomy consistency,
and real two-instrument mixtures of Philharmonia recordings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from _mixtures import INSTRUMENTS, philharmonia_mixtures
from earmark.exceptions import ParameterError
from earmark.fewshot.multilabel import MultiLabelPrototypeClassifier, _best_f1_threshold
from earmark.taxonomy import Taxonomy

pytestmark = pytest.mark.usefixtures("one_blas_thread")

CENTERS = {"dog": 0, "rain": 1, "wind": 2}


def _synthetic(n_repeats=5, seed=0):
    """Clips that are sums of one direction per label, plus noise."""
    rng = np.random.default_rng(seed)
    Y = [("dog",), ("rain",), ("wind",), ("dog", "rain"), ("rain", "wind"), ()] * n_repeats
    X = np.array([sum((4 * np.eye(6)[CENTERS[label]] for label in labels), np.zeros(6))
                  for labels in Y])
    return X + rng.normal(0, 0.5, X.shape), Y


@pytest.fixture(scope="module")
def mixtures(philharmonia_dir):
    return philharmonia_mixtures(philharmonia_dir)


# ------------------------------------------------------------------- label formats
def test_label_sets_and_an_indicator_matrix_give_the_same_model():
    X, Y = _synthetic()
    classes = ["dog", "rain", "wind"]
    indicator = np.array([[label in labels for label in classes] for labels in Y], dtype=int)
    from_sets = MultiLabelPrototypeClassifier().fit(X, Y)
    from_matrix = MultiLabelPrototypeClassifier(classes=classes).fit(X, indicator)
    assert from_sets.classes_.tolist() == from_matrix.classes_.tolist() == classes
    np.testing.assert_allclose(from_sets.predict_proba(X), from_matrix.predict_proba(X))
    predicted = from_sets.predict(X)
    assert predicted.shape == (len(X), 3) and predicted.dtype.kind == "i"
    assert from_sets.predict_labels(X) == [
        tuple(np.array(classes)[row.astype(bool)]) for row in predicted
    ]
    # Well-separated clusters: the label sets come back.
    assert from_sets.score(X, Y) > 0.9
    assert from_sets.score(X, indicator) == from_sets.score(X, Y)


def test_the_classes_parameter_sets_the_column_order_and_rejects_strangers():
    X, Y = _synthetic()
    model = MultiLabelPrototypeClassifier(classes=["wind", "dog", "rain"]).fit(X, Y)
    assert model.classes_.tolist() == ["wind", "dog", "rain"]
    assert model.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ParameterError, match=r"labels not among classes: \['wind'\]"):
        MultiLabelPrototypeClassifier(classes=["dog", "rain"]).fit(X, Y)


def test_one_label_per_item_is_a_one_label_set():
    X, Y = _synthetic()
    single = [labels[0] if labels else "silence" for labels in Y]
    model = MultiLabelPrototypeClassifier().fit(X, single)
    assert model.classes_.tolist() == ["dog", "rain", "silence", "wind"]
    assert model.positive_counts_.tolist() == [10, 10, 5, 5]


# ---------------------------------------------------------------- leave-one-out
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_leave_one_out_margins_equal_refitting_without_each_item(metric):
    X, Y = _synthetic(n_repeats=3)
    model = MultiLabelPrototypeClassifier(metric=metric).fit(X, Y)
    Z = model._preprocess(X)
    positive = np.array([[c in labels for c in model.classes_] for labels in Y])
    fast = model._leave_one_out_margins(Z, positive, np.arange(len(X)))

    def distance(z, p):
        if metric == "euclidean":
            return np.linalg.norm(z - p)
        return 1 - z @ p / (np.linalg.norm(z) * np.linalg.norm(p))

    for i in range(len(X)):
        others = np.arange(len(X)) != i
        for j in range(len(model.classes_)):
            pos = Z[others & positive[:, j]].mean(axis=0)
            neg = Z[others & ~positive[:, j]].mean(axis=0)
            slow = distance(Z[i], neg) - distance(Z[i], pos)
            np.testing.assert_allclose(fast[i, j], slow, rtol=1e-9, atol=1e-9)


def test_leaving_out_a_whole_group_is_honest_about_duplicates():
    X, Y = _synthetic(n_repeats=3)
    original = MultiLabelPrototypeClassifier().fit(X, Y)
    # Every clip twice, as two cuts of one recording would be.
    twice = MultiLabelPrototypeClassifier()
    X2, Y2, recording = np.repeat(X, 2, axis=0), [y for y in Y for _ in (0, 1)], np.repeat(
        np.arange(len(X)), 2
    )
    twice.fit(X2, Y2, groups=recording)
    # Left out by recording, each copy is scored as the original was left out alone.
    np.testing.assert_allclose(twice.temperature_, original.temperature_, rtol=1e-6)
    np.testing.assert_allclose(twice.thresholds_, original.thresholds_, rtol=1e-6)
    # Left out one copy at a time, its twin stays in the prototypes: every positive
    # scores higher than it would on a new clip.
    leaky = MultiLabelPrototypeClassifier().fit(X2, Y2)
    Z = leaky._preprocess(X2)
    positive = np.array([[c in labels for c in leaky.classes_] for labels in Y2])
    honest = leaky._leave_one_out_margins(Z, positive, recording)
    flattered = leaky._leave_one_out_margins(Z, positive, np.arange(len(X2)))
    assert (flattered[positive] > honest[positive]).all()
    with pytest.raises(ParameterError, match=r"expected groups of shape \(36,\)"):
        MultiLabelPrototypeClassifier().fit(X2, Y2, groups=recording[:-1])


def test_thresholds_are_calibrated_only_where_a_label_has_two_positives():
    X, Y = _synthetic()
    Y = list(Y) + [("thunder",)]
    X = np.vstack([X, X[:1] + 10])
    model = MultiLabelPrototypeClassifier().fit(X, Y)
    calibrated = dict(zip(model.classes_, model.calibrated_))
    assert calibrated == {"dog": True, "rain": True, "thunder": False, "wind": True}
    thresholds = dict(zip(model.classes_, model.thresholds_))
    assert thresholds["thunder"] == 0.5
    assert model.temperature_source_ == "leave-one-out"


def test_a_fixed_threshold_is_the_nearer_prototype_whatever_the_temperature():
    X, Y = _synthetic()
    sharp = MultiLabelPrototypeClassifier(threshold=0.5, temperature=0.01).fit(X, Y)
    soft = MultiLabelPrototypeClassifier(threshold=0.5, temperature=100.0).fit(X, Y)
    assert not sharp.calibrated_.any() and set(sharp.thresholds_) == {0.5}
    np.testing.assert_array_equal(sharp.predict(X), soft.predict(X))
    Z = sharp._preprocess(X)
    nearer = sharp._distances(Z, sharp.positive_prototypes_) < sharp._distances(
        Z, sharp.negative_prototypes_
    )
    np.testing.assert_array_equal(sharp.predict(X), nearer.astype(int))
    assert np.abs(soft.predict_proba(X) - 0.5).max() < 0.1
    assert np.abs(sharp.predict_proba(X) - 0.5).min() > 0.4


def test_the_best_f1_threshold_prefers_the_one_nearest_one_half():
    truth = np.array([True, True, True, False, False, False])
    # Separable: every threshold in (0.3, 0.7] is perfect; 0.5 is among them.
    assert _best_f1_threshold(np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), truth) == 0.5
    # Separable above 0.5: the best interval is (0.75, 0.8]; its midpoint is taken.
    threshold = _best_f1_threshold(np.array([0.95, 0.9, 0.8, 0.75, 0.7, 0.6]), truth)
    assert 0.75 < threshold <= 0.8
    # Not separable: F1 is best (6/7) when every positive is let in with one negative.
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.05])
    threshold = _best_f1_threshold(scores, truth)
    assert 0.1 < threshold <= 0.2
    assert f1_score(truth, scores >= threshold) == pytest.approx(6 / 7)


def test_labels_on_every_item_or_none_have_constant_scores():
    X, Y = _synthetic()
    Y = [tuple(labels) + ("outdoors",) for labels in Y]
    indicator = np.array([[1, 0] for _ in Y])
    model = MultiLabelPrototypeClassifier().fit(X, Y)
    assert model.predict_proba(X)[:, model.classes_.tolist().index("outdoors")].min() == 1.0
    never = MultiLabelPrototypeClassifier(classes=["a", "b"]).fit(X, indicator)
    np.testing.assert_array_equal(never.predict_proba(X), [[1.0, 0.0]] * len(X))


# -------------------------------------------------------------------- taxonomy
def _taxonomy():
    return Taxonomy.from_mapping(
        {"dog": "animals", "bird": "animals", "rain": "weather", "wind": "weather",
         "animals": "sounds", "weather": "sounds"}
    )


def test_a_taxonomy_adds_ancestors_and_keeps_predictions_consistent():
    X, Y = _synthetic()
    model = MultiLabelPrototypeClassifier(taxonomy=_taxonomy(), classes=["dog", "rain", "wind"])
    model.fit(X, Y)
    assert model.classes_.tolist() == ["dog", "rain", "wind", "animals", "sounds", "weather"]
    column = {label: k for k, label in enumerate(model.classes_)}
    assert model.parent_index_.tolist() == [3, 5, 5, 4, -1, 4]
    # Every non-empty training set carries "sounds": it is constant.
    assert model.positive_counts_[column["sounds"]] == 25
    rng = np.random.default_rng(1)
    queries = np.vstack([X, rng.normal(0, 3, (200, 6))])
    scores = model.predict_proba(queries)
    predicted = model.predict(queries)
    for child, parent in [("dog", "animals"), ("rain", "weather"), ("wind", "weather"),
                          ("animals", "sounds"), ("weather", "sounds")]:
        assert (scores[:, column[parent]] >= scores[:, column[child]]).all()
        assert (predicted[:, column[parent]] >= predicted[:, column[child]]).all()
    for labels in model.predict_labels(queries):
        assert set(labels) == _taxonomy().closure(labels)


def test_parents_are_raised_to_their_children_even_against_their_own_threshold():
    X, Y = _synthetic()
    # A parent with a threshold it cannot reach: only its children can switch it on.
    model = MultiLabelPrototypeClassifier(taxonomy={"dog": "animals"}).fit(X, Y)
    k = model.classes_.tolist().index("animals")
    model.thresholds_[k] = 1.01
    dog = model.predict(X)[:, model.classes_.tolist().index("dog")]
    assert dog.any()
    np.testing.assert_array_equal(model.predict(X)[:, k], dog)


def test_a_taxonomy_may_be_given_by_name():
    X = np.random.default_rng(0).normal(size=(6, 4))
    Y = [("flute",), ("oboe",), ("cello",), ("flute", "cello"), ("oboe",), ("cello",)]
    model = MultiLabelPrototypeClassifier(taxonomy="philharmonia").fit(X, Y)
    assert {"woodwinds", "bowed strings"} <= set(model.classes_)


# ------------------------------------------------------------------ conventions
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "manhattan"}, r"expected metric in \('euclidean', 'cosine'\)"),
        ({"standardize": "yes"}, r"expected standardize True, False or 'center'"),
        ({"temperature": 0}, r"expected temperature > 0 or 'auto', got 0"),
        ({"threshold": 1.5}, r"expected threshold 'leave-one-out' or a number in \(0, 1\)"),
        ({"taxonomy": 3}, r"expected taxonomy as a Taxonomy"),
    ],
)
def test_invalid_parameters_are_named(params, message):
    X, Y = _synthetic()
    with pytest.raises(ParameterError, match=message):
        MultiLabelPrototypeClassifier(**params).fit(X, Y)


@pytest.mark.parametrize(
    ("Y", "classes", "message"),
    [
        (lambda Y: Y[:-1], None, r"expected 30 label sets in Y like X, got 29"),
        (lambda Y: np.ones((30, 2), int), ["a", "b", "c"], r"expected Y with 3 columns"),
        (lambda Y: np.full((30, 2), 2), None, r"0/1 indicator matrix"),
        (lambda Y: np.tile([0, 2], (30, 1)), None, r"0/1 indicator matrix"),
        (lambda Y: None, None, r"requires y to be passed"),
        (lambda Y: np.linspace(0, 1, 30), None, r"Unknown label type: continuous"),
        (lambda Y: [3.5] + list(Y[1:]), None, r"labels of item 0 as a tuple"),
    ],
)
def test_labels_that_cannot_be_read_are_refused_clearly(Y, classes, message):
    X, labels = _synthetic()
    with pytest.raises(ParameterError, match=message):
        MultiLabelPrototypeClassifier(classes=classes).fit(X, Y(labels))


def test_clone_and_skops_round_trip():
    import skops.io

    X, Y = _synthetic()
    model = MultiLabelPrototypeClassifier(taxonomy=_taxonomy(), metric="cosine").fit(X, Y)
    copy = clone(model)
    assert copy.get_params()["metric"] == "cosine" and not hasattr(copy, "classes_")
    data = skops.io.dumps(model)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert set(untrusted) <= {
        "earmark.fewshot.multilabel.MultiLabelPrototypeClassifier", "earmark.taxonomy.Taxonomy"
    }
    loaded = skops.io.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# The scikit-learn checks assume one label per item in places; this classifier answers
# every question with an indicator matrix, and its thresholds are per label, not 0.5.
_MULTI_LABEL_ONLY = "predict returns a label indicator matrix, not one label per item"
EXPECTED_FAILURES = {
    "check_classifiers_train": _MULTI_LABEL_ONLY,
    "check_classifiers_one_label": _MULTI_LABEL_ONLY,
    "check_classifiers_classes": "classes_ are label names (str), whatever type y had",
    "check_classifier_multioutput": "per-label thresholds: predict is not predict_proba > 0.5",
}


@parametrize_with_checks(
    [MultiLabelPrototypeClassifier()], expected_failed_checks=lambda _: EXPECTED_FAILURES
)
def test_scikit_learn_compliance(estimator, check):
    check(estimator)


# ------------------------------------------------------------------- real audio
def test_real_two_instrument_mixtures_are_labelled_better_than_by_guessing(mixtures):
    model = MultiLabelPrototypeClassifier().fit(mixtures.X_support, mixtures.Y_support)
    assert model.classes_.tolist() == sorted(INSTRUMENTS)
    assert model.calibrated_.all()  # every instrument has >= 2 positives and negatives
    truth = np.array([[c in labels for c in model.classes_] for labels in mixtures.Y_query])
    scores = model.predict_proba(mixtures.X_query)
    # MFCC statistics of a mixture are a blur of both instruments; still, the two each
    # mixture holds should outrank the four it does not (chance: AUC 0.5) ...
    assert roc_auc_score(truth, scores, average="micro") > 0.65
    # ... and the two best-scored instruments should include a right one more often
    # than two picked at random (1 - C(4,2) / C(6,2) = 60 %).
    top_two = np.argsort(-scores, axis=1)[:, :2]
    assert np.mean([truth[i, top_two[i]].any() for i in range(len(truth))]) > 0.75
    predicted = model.predict(mixtures.X_query)
    assert predicted.sum(axis=1).mean() > 1  # it does say "several instruments"


def test_real_mixtures_with_the_instrument_family_taxonomy(mixtures):
    model = MultiLabelPrototypeClassifier(taxonomy="philharmonia").fit(
        mixtures.X_support, mixtures.Y_support
    )
    families = ["brass", "bowed strings", "woodwinds"]
    assert set(model.classes_) == set(INSTRUMENTS) | set(families)
    scores = model.predict_proba(mixtures.X_query)
    column = {label: k for k, label in enumerate(model.classes_)}
    taxonomy = Taxonomy.from_mapping(
        {"clarinet": "woodwinds", "flute": "woodwinds", "oboe": "woodwinds",
         "french_horn": "brass", "trombone": "brass", "cello": "bowed strings"}
    )
    for instrument in INSTRUMENTS:
        parent = column[taxonomy.parent(instrument)]
        assert (scores[:, parent] >= scores[:, column[instrument]]).all()
    for labels in model.predict_labels(mixtures.X_query):
        assert set(labels) == taxonomy.closure(labels)
    # The taxonomy changes no instrument's ranking of the queries (the temperature is
    # shared by all labels, so the scores themselves may move).
    from scipy.stats import rankdata

    plain = MultiLabelPrototypeClassifier().fit(mixtures.X_support, mixtures.Y_support)
    plain_scores = plain.predict_proba(mixtures.X_query)
    for k, instrument in enumerate(plain.classes_):
        np.testing.assert_array_equal(
            rankdata(scores[:, column[instrument]]), rankdata(plain_scores[:, k])
        )
