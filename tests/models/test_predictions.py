"""One prediction shape for every model: taxonomy levels, backoff, and CSV a spreadsheet
cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.models import EarmarkModel, load_model, predict_files
from earmark.pipeline import clip_embeddings
from earmark.store import MemoryStore

PARITY = {str(d): ("even" if d % 2 == 0 else "odd") for d in range(10)}


@pytest.fixture(scope="module")
def digits():
    from earmark.datasets import demo_path, load_dataset

    manifest = load_dataset(demo_path())
    backend = get_backend("mfcc")
    X, kept, _ = clip_embeddings(manifest, backend, MemoryStore(), progress=False)
    return manifest.subset(kept), X, backend


def test_a_taxonomy_model_answers_at_every_level_and_backs_off(digits, tmp_path):
    manifest, X, backend = digits
    model = EarmarkModel.train(X, manifest.y, backend=backend, learner="prototype-hierarchical",
                               taxonomy=PARITY)
    model = load_model(model.save(tmp_path / "parity.earmark"))
    predictions = predict_files(model, manifest.paths[:20], backend=backend)

    for prediction in predictions:
        levels = prediction.extra["levels"]
        assert levels["level 1"] in ("even", "odd") and 0 < levels["level 1 score"] <= 1
        # The backoff label is the leaf or its group, never something else.
        assert prediction.extra["backoff"] in (prediction.top_k[0][0], levels["level 1"])
    groups = [p.extra["levels"]["level 1"] for p in predictions]
    truth = [PARITY[label] for label in manifest.y[:20]]
    assert np.mean(np.array(groups) == np.array(truth)) > 0.5


def test_flat_models_have_no_levels(digits):
    manifest, X, backend = digits
    model = EarmarkModel.train(X, manifest.y, backend=backend)
    assert all("levels" not in p.extra for p in predict_files(model, manifest.paths[:3], backend=backend))


def test_per_class_thresholds_answer_unknown_below_them(digits, tmp_path):
    manifest, X, backend = digits
    strict = EarmarkModel.train(X, manifest.y, backend=backend, groups=manifest.groups,
                                target_precision=0.99)
    strict = load_model(strict.save(tmp_path / "strict.earmark"))
    plain = EarmarkModel.train(X, manifest.y, backend=backend, groups=manifest.groups)
    paths = manifest.paths[:60]
    strict_unknown = [p.unknown for p in predict_files(strict, paths, backend=backend)]
    plain_unknown = [p.unknown for p in predict_files(plain, paths, backend=backend)]
    assert not any(plain_unknown)
    # A 0.99 precision target on digits MFCC cannot be met everywhere: some clips fall below.
    assert 0 < sum(strict_unknown) < len(paths)


def test_a_model_with_classes_that_cannot_keep_the_target_saves_and_answers(digits, tmp_path):
    """Digit 9 with 6 clips (fewer than thresholds need), and 3 and 8 swapped on half
    of their clips (so at least one of them cannot reach 0.99 precision): the model file still loads
    (it once held NaN, which loading refuses), 9 is answered whenever on top, and a
    class marked withheld is never answered."""
    manifest, X, backend = digits
    y = manifest.y.copy()
    keep = (y != "9") | (np.cumsum(y == "9") <= 6)
    threes, eights = np.flatnonzero(y == "3"), np.flatnonzero(y == "8")
    y[threes[::2]], y[eights[::2]] = "8", "3"
    model = EarmarkModel.train(X[keep], y[keep], backend=backend, groups=manifest.groups[keep],
                               target_precision=0.99)
    model = load_model(model.save(tmp_path / "strict.earmark"))
    final = model.pipeline[-1]
    assert np.isfinite(final.class_thresholds_).all()
    classes = final.classes_.tolist()
    assert "fewer than 20" in final.threshold_notes_["9"] and not final.class_withheld_[classes.index("9")]
    withheld = [label for label, never in zip(classes, final.class_withheld_) if never]
    assert withheld and set(withheld) <= {"3", "8"}, final.threshold_notes_
    predictions = predict_files(model, manifest.paths, backend=backend)
    answered = {p.top_k[0][0] for p in predictions if not p.unknown}
    assert "9" in answered and not answered & set(withheld)


def test_every_calibrated_learner_answers_unknown_when_asked(digits, tmp_path):
    """`predict --unknown` with a logistic regression: trained on digits 0-4 of five
    speakers and asked about the sixth speaker's 0-9 (each speaker in turn), it keeps
    about the asked 90 % of the digits it knows and rejects more of those it never heard;
    unasked, it rejects nothing, as before."""
    manifest, X, backend = digits
    known = np.isin(manifest.y, list("01234"))
    rejected_in, rejected_out = [], []
    for speaker in np.unique(manifest.groups):
        held = manifest.groups == speaker
        train = ~held & known
        model = EarmarkModel.train(X[train], manifest.y[train], backend=backend,
                                   groups=manifest.groups[train])
        model = load_model(model.save(tmp_path / f"{speaker}.earmark"))
        paths = manifest.paths[held]
        assert not any(p.unknown for p in predict_files(model, paths, backend=backend))
        asked = predict_files(model, paths, backend=backend, reject_unknown=True)
        rejected = np.array([p.unknown for p in asked])
        assert all(asked[i].label == "unknown" and asked[i].score is None
                   for i in np.flatnonzero(rejected))
        # The same answer the library gives for the embeddings themselves.
        final = model.pipeline[-1]
        assert np.array_equal(rejected, final.unknown_mask(model._final_input(X[held])))
        rejected_in += rejected[known[held]].tolist()
        rejected_out += rejected[~known[held]].tolist()
    coverage, rejection = 1 - np.mean(rejected_in), np.mean(rejected_out)
    print(f"in-set coverage {coverage:.3f}, out-of-set rejection {rejection:.3f}")
    assert 0.8 <= coverage <= 0.97
    assert rejection > (1 - coverage) + 0.05
