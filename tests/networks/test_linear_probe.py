"""The head a pretrained network is fine-tuned from is the frozen probe earmark offers
(standardised features, logistic regression C=1), folded into one linear layer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from earmark.networks._train_torch import _linear_probe  # noqa: E402


class _Pooled(torch.nn.Module):
    """A stand-in for a pretrained block: its pooled output is the input itself."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.head = torch.nn.Linear(features, classes)

    def pooled(self, x):
        return x

    def forward(self, x):
        return self.head(self.pooled(x))


def _data(classes: int, n: int = 90, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, 6))
    X[:, 0] += 3.0 * y  # the class shows in dimension 0 ...
    X[:, 2] = 0.7  # ... a constant dimension says nothing ...
    X *= np.array([1e-3, 1e3, 1.0, 5.0, 1e2, 1.0])  # ... and the scales differ wildly
    return X.astype(np.float32), y


@pytest.mark.parametrize("classes", [2, 3])
def test_the_head_answers_as_the_standardised_regression(classes):
    X, y = _data(classes)
    module = _Pooled(X.shape[1], classes)
    report = _linear_probe(module, torch.from_numpy(X), torch.from_numpy(y))
    scaler = StandardScaler().fit(X.astype(np.float64))
    reference = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(X), y)
    fresh = _data(classes, seed=1)[0]
    with torch.no_grad():
        logits = module(torch.from_numpy(fresh)).numpy()
    assert (logits.argmax(axis=1) == reference.predict(scaler.transform(fresh))).all()
    expected = reference.predict_proba(scaler.transform(fresh))
    got = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    assert np.allclose(got, expected, atol=1e-4)
    assert report["train_accuracy"] == pytest.approx(reference.score(scaler.transform(X), y), abs=1e-6)
    assert report["train_accuracy"] > 0.8


def test_a_class_missing_from_the_probe_rows_is_never_answered():
    X, y = _data(3)
    keep = y != 2
    module = _Pooled(X.shape[1], 3)
    _linear_probe(module, torch.from_numpy(X[keep]), torch.from_numpy(y[keep]))
    with torch.no_grad():
        answers = module(torch.from_numpy(X)).argmax(dim=1).numpy()
    assert set(answers.tolist()) <= {0, 1}


def test_fine_tuning_replaces_its_probe_only_beyond_the_noise_of_the_validation_clips():
    from earmark.networks._train_torch import _paired_gain

    rng = np.random.default_rng(0)
    probe = rng.random(400) < 0.6
    same = probe.copy()
    gain, noise = _paired_gain(same, probe)
    assert gain == 0.0 and gain <= noise  # no better: the probe stays
    shuffled = probe.copy()
    flip = np.r_[rng.choice(np.flatnonzero(probe), 20, replace=False),
                 rng.choice(np.flatnonzero(~probe), 20, replace=False)]
    shuffled[flip] = ~shuffled[flip]  # as many new mistakes as new right answers
    gain, noise = _paired_gain(shuffled, probe)
    assert abs(gain) <= noise
    better = probe | (rng.random(400) < 0.5)  # right wherever the probe was, and more
    gain, noise = _paired_gain(better, probe)
    assert gain > 3 * noise > 0
