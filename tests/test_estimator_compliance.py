"""Every earmark estimator passes scikit-learn's own estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from earmark.fewshot.prototypes import PrototypeClassifier
from earmark.learners import BlockScaler, PartsClassifier

ESTIMATORS = [
    PrototypeClassifier(),
    PrototypeClassifier(metric="euclidean", normalize=False, standardize=True, whiten=False),
    BlockScaler(),
    PartsClassifier(),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compliance(estimator, check):
    check(estimator)
