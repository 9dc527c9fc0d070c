"""Detector parts: label sets from files, context scoring while streaming, learned
post-processing (tuned on weak labels, stored, checked when read back)."""

from __future__ import annotations

import itertools
import json
import zipfile

import numpy as np
import pytest

from earmark.backends import get_backend
from earmark.detection.detector import train_detector, weak_items
from earmark.detection.events import frames_to_events, window_cells
from earmark.detection.mil import MILClassifier
from earmark.detection.postprocessing import (
    check_postprocessing, resolve_postprocessing, tune_postprocessing,
)
from earmark.exceptions import ModelFileError, ParameterError
from earmark.models import load_model


def _bags(rng, n=60, length=12, dimension=16):
    """Recordings of noise; class a raises feature 0 over a few frames, b feature 1."""
    frames, label_sets = [], []
    for index in range(n):
        X = rng.normal(size=(length, dimension))
        labels = [("a",), ("b",), ("a", "b"), ()][index % 4]
        for column, label in enumerate("ab"):
            if label in labels:
                at = int(rng.integers(0, length - 3))
                X[at : at + 3, column] += 4.0
        start = np.arange(length) * 0.5
        frames.append((X, start, start + 0.5))
        label_sets.append(labels)
    return frames, label_sets


def test_weak_items_reads_label_sets_empty_cells_and_negatives(tmp_path):
    for name in ("a.wav", "b.wav", "n1.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "neg").mkdir()
    (tmp_path / "neg" / "x.flac").write_bytes(b"")
    (tmp_path / "weak.csv").write_text("path,labels,group\na.wav,dog;bird,s1\nb.wav,,s2\n"
                                       "gone.wav,dog,s3\n")

    items = weak_items(tmp_path / "weak.csv", negatives=[tmp_path / "neg", tmp_path / "n1.wav"])

    assert items.label_sets == [("bird", "dog"), (), (), ()]
    assert items.groups[:2] == ["s1", "s2"] and items.n_negatives == 3
    assert items.skipped == ["row 3 (gone.wav): no such file"]
    with pytest.raises(ParameterError, match="no such file or folder"):
        weak_items(tmp_path / "weak.csv", negatives=[tmp_path / "nowhere"])


def test_context_model_scores_a_stream_as_the_whole_file(tmp_path):
    from earmark.detection.stream import _ContextSession
    from earmark.embedding import FrameBatch

    rng = np.random.default_rng(0)
    frames, label_sets = _bags(rng)
    model = MILClassifier(pooling="linear-softmax", context=2, epochs=5, hidden=8).fit(
        [f[0] for f in frames], label_sets)
    X = rng.normal(size=(23, 16))
    whole = model.segment_proba(X)

    class Backend:
        hop_s = 0.5

    session = _ContextSession(model, Backend())
    parts = []
    for a, b in ((0, 1), (1, 4), (4, 5), (5, 17), (17, 23)):
        start = np.arange(a, b) * 0.5
        parts.append(session.feed(FrameBatch(X=X[a:b], start_s=start, end_s=start + 0.5, first=a)))
    parts.append(session.finish(23))
    parts = [p for p in parts if p is not None]
    streamed = np.concatenate([p[0] for p in parts])
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), np.arange(23) * 0.5)


def test_linear_softmax_numpy_matches_torch():
    import torch

    from earmark.detection._mil_torch import MILNetwork, pad

    rng = np.random.default_rng(1)
    frames, label_sets = _bags(rng)
    bags = [f[0] for f in frames]
    model = MILClassifier(pooling="linear-softmax", epochs=2, hidden=8).fit(bags, label_sets)
    network = MILNetwork(dimension=16, hidden=8, n_classes=2, pooling="linear-softmax", dropout=0)
    network.hidden.weight.data = torch.tensor(model.coefs_[0].T, dtype=torch.float32)
    network.hidden.bias.data = torch.tensor(model.intercepts_[0], dtype=torch.float32)
    network.classes.weight.data = torch.tensor(model.coefs_[1].T, dtype=torch.float32)
    network.classes.bias.data = torch.tensor(model.intercepts_[1], dtype=torch.float32)
    standardised = [torch.tensor((b - model.mean_) / model.scale_, dtype=torch.float32)
                    for b in bags[:5]]
    with torch.no_grad():
        torch_logits = network(*pad(standardised, range(5))).numpy()
    np.testing.assert_allclose(model._pooled_logits(bags[:5]), torch_logits, atol=1e-4)


def test_fast_tuning_counts_what_frames_to_events_finds():
    from earmark.detection.postprocessing import _join, _merge_and_drop, _spans

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(5):
        n = int(rng.integers(4, 30))
        start = np.arange(n) * 0.5
        rows.append((rng.random((n, 2)), start, start + 1.5))
    for cells, median in itertools.product((None, "min"), (1, 3)):
        joined = _join(rows, cells, median)
        for threshold, column, min_s, gap_s in itertools.product(
                (0.3, 0.7), (0, 1), (0.0, 1.0), (0.0, 1.0)):
            counts = np.bincount(_merge_and_drop(*_spans(joined, column, threshold), min_s, gap_s),
                                 minlength=len(rows))
            expected = []
            for scores, start, end in rows:
                cut = (scores, start, end) if cells is None else window_cells(scores, start, end,
                                                                             reduce=cells)
                events = frames_to_events(*cut, ["a", "b"], threshold=threshold,
                                          median_frames=median, min_duration_s=min_s,
                                          merge_gap_s=gap_s)
                expected.append(sum(e.label == "ab"[column] for e in events))
            assert counts.tolist() == expected


def test_tuning_finds_the_classes_in_weakly_labelled_recordings():
    rng = np.random.default_rng(2)
    rows, label_sets = [], []
    for index in range(40):
        labels = [("a",), ("b",), ()][index % 3]
        scores = rng.uniform(0, 0.3, size=(20, 2))
        for column, label in enumerate("ab"):
            if label in labels:
                scores[5:9, column] = 0.8
        start = np.arange(20) * 0.5
        rows.append((scores, start, start + 0.5))
        label_sets.append(labels)

    learned = tune_postprocessing(rows, label_sets, ["a", "b"], hop_s=0.5, overlapping=False)

    assert all(0.3 <= t <= 0.8 for t in learned["thresholds"].values())
    overall = learned["validation"]["overall"]
    assert overall["f"] == 1.0 and overall["events"] == overall["labelled"]
    assert check_postprocessing(learned, ["a", "b"]) == learned


def test_detector_round_trip_and_tampered_postprocessing(tmp_path):
    backend = get_backend("placeholder")
    rng = np.random.default_rng(3)
    frames, label_sets = _bags(rng, dimension=backend.dimension)
    model = train_detector(frames, label_sets, backend=backend, epochs=10)
    path = model.save(tmp_path / "d.earmark")

    loaded = load_model(path)
    assert loaded.postprocessing == model.postprocessing and loaded.context_frames == 2
    np.testing.assert_allclose(loaded.segment_proba(frames[0][0]), model.segment_proba(frames[0][0]))
    settings = resolve_postprocessing(loaded.postprocessing, threshold={"a": 0.9})
    assert settings["threshold"]["a"] == 0.9
    assert settings["threshold"]["b"] == model.postprocessing["thresholds"]["b"]

    # A file whose post-processing was changed to nonsense is refused by name.
    from earmark.models._container import write_container

    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("model.json"))
        pipeline = archive.read("pipeline.skops")
    metadata["postprocessing"]["median_s"] = -3
    for key in ("members", "format", "format_version"):
        metadata.pop(key, None)
    write_container(tmp_path / "bad.earmark", metadata, pipeline=pipeline)
    with pytest.raises(ModelFileError, match="median_s"):
        load_model(tmp_path / "bad.earmark")


def _confounded(rng, n, length=12, dimension=16):
    """Class a raises feature 0 for 3 frames; every recording of a also raises feature 2
    for 3 other frames (a companion sound, never without a). Returns the frames, label
    sets and each recording's true events (frame spans of 0.5 s)."""
    frames, label_sets, events = [], [], []
    for index in range(n):
        X = rng.normal(size=(length, dimension))
        start = np.arange(length) * 0.5
        truth = []
        if index % 2 == 0:
            at, other = rng.choice(np.arange(0, length - 3, 3), size=2, replace=False)
            X[at : at + 3, 0] += 4.0
            X[other : other + 3, 2] += 4.0
            truth.append(("a", start[at], start[at] + 1.5))
        frames.append((X, start, start + 0.5))
        label_sets.append(("a",) if truth else ())
        events.append(truth)
    return frames, label_sets, events


def test_strong_labels_teach_the_detector_where_the_class_sounds():
    """From recording labels alone, the companion sound is as good a clue as the class
    itself; frame labels (events) say which frames are the class, and the frame scores
    follow them."""
    from sklearn.metrics import roc_auc_score

    from earmark.detection.detector import frame_targets_for

    rng = np.random.default_rng(3)
    frames, label_sets, events = _confounded(rng, 80)
    test_frames, _, test_events = _confounded(rng, 40)
    backend = get_backend("placeholder")
    params = dict(hidden=16, epochs=150, validation_fraction=0.25, context=0)
    weak = train_detector(frames, label_sets, backend=backend, **params)
    strong = train_detector(frames, label_sets, backend=backend, events=events, **params)
    assert strong.training["n_strongly_labelled"] == 80
    truth = np.concatenate([frame_targets_for(e, f[1], f[2], ["a"])[:, 0]
                            for f, e in zip(test_frames, test_events)])
    auc = {name: roc_auc_score(truth, np.concatenate(
        [model.segment_proba(f[0])[:, 0] for f in test_frames]))
        for name, model in (("weak", weak), ("strong", strong))}
    # Measured: weak 0.86, strong 0.95.
    assert auc["strong"] > 0.9
    assert auc["strong"] > auc["weak"] + 0.05, auc


def test_frame_targets_are_checked():
    rng = np.random.default_rng(0)
    frames, label_sets = _bags(rng, n=8)
    bags = [f[0] for f in frames]
    with pytest.raises(ParameterError, match=r"frame_targets\[1\]"):
        MILClassifier(epochs=1).fit(bags, label_sets,
                                    frame_targets=[None, np.ones((3, 2))] + [None] * 6)
    with pytest.raises(ParameterError, match="multi-label"):
        MILClassifier(epochs=1).fit(bags, ["a", "b"] * 4, frame_targets=[None] * 8)


def test_tuning_with_event_counts_keeps_separate_events_apart():
    """Three calls of a 1.5 s apart in each recording: told only that a sounds, tuning
    may merge them into one event; told there are three, it keeps three."""
    hop = 0.5
    rows = []
    for _ in range(6):
        scores = np.full((30, 1), 0.02)
        for at in (4, 11, 18):
            scores[at : at + 4, 0] = 0.9
        start = np.arange(30) * hop
        rows.append((scores, start, start + hop))
    label_sets = [("a",)] * 6

    def events_found(learned):
        return [len(frames_to_events(*row, ["a"], threshold=learned["thresholds"]["a"],
                                     merge_gap_s=learned["merge_gap_s"],
                                     min_duration_s=learned["min_duration_s"]))
                for row in rows]

    weak = tune_postprocessing(rows, label_sets, ["a"], hop_s=hop, overlapping=False)
    counted = tune_postprocessing(rows, label_sets, ["a"], hop_s=hop, overlapping=False,
                                  event_counts=[{"a": 3}] * 6)
    assert events_found(counted) == [3] * 6
    assert events_found(weak) == [1] * 6
