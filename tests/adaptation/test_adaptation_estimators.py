"""The adaptation estimators pass scikit-learn's own estimator checks.

Fitted without ``X_target`` an aligner is the identity and a classifier is trained on
the source alone, which is what the generic checks can exercise; what ``X_target``
changes is tested in the other files here.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from earmark.adaptation import (
    ConsensusAdapter,
    CoralAligner,
    DANNClassifier,
    DomainStandardizer,
    LabelShiftAdapter,
    PrototypeAdapter,
    SelfTrainingPrototypes,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")

ESTIMATORS = [
    DomainStandardizer(),
    CoralAligner(),
    CoralAligner(regularization="auto"),
    SelfTrainingPrototypes(),
    LabelShiftAdapter(),
    LabelShiftAdapter(align="coral"),
    PrototypeAdapter(),
    ConsensusAdapter(candidates=("standardize", "priors")),
    # Small and short: the checks fit it a few hundred times.
    DANNClassifier(hidden_units=16, domain_units=4, epochs=15, batch_size=32, learning_rate=1e-2),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compliance(estimator, check):
    check(estimator)
