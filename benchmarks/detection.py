"""Sound event detection from weak labels: multiple-instance models against a slid clip model.

Test soundscapes are :func:`earmark.detection.soundscapes.standard_soundscapes`: real
words from held-out speakers placed at known times over real orchestral notes
(``--events fsdd``: FSDD speaker ``yweweler``'s digits, 10 classes; ``--events
speech-commands``: the official validation and test lists, 30 words). Models train only
on the other speakers, from clip labels only.

Post-processing is chosen **without the test truth**: one more training speaker (FSDD)
or a fifth of the training speakers (Speech Commands) is held out of training, turned
into validation soundscapes over other notes, and the threshold, median filter and
window-to-cell resolution (:func:`earmark.detection.events.window_cells`) that give the
best validation event F are applied to the test set. The default settings (threshold
0.5, no filter, whole windows) are reported beside them.

Models, all on ``--backend`` frame embeddings:

- ``mil-max``, ``mil-mean``, ``mil-attention``: :meth:`EarmarkModel.train_mil`. Each
  training bag is a recording known only by its label: the frames of one word clip
  followed by the frames of one Philharmonia note, labelled with the word. Note-only
  bags have an *empty* label set, so the model is multi-label (a sigmoid per word,
  no "background" class): a frame may score low for every word.
- ``clip-logreg``: :meth:`EarmarkModel.train` (logistic regression) on clip embeddings
  of the words plus a ``background`` class of notes, slid over the soundscapes
  (:class:`~earmark.detection.stream.SlidingWindows`); ``background`` is never reported.

Scores: event-based F (collar 200 ms, offset 20 % of length), the same on onsets alone
(``onsetF``) and segment-based F (1 s), micro-averaged, as in the DCASE protocols
(:mod:`earmark.detection.metrics`).

Run on demand, not as a test::

    python benchmarks/detection.py --backend birdnet -p hop_s=0.5
    python benchmarks/detection.py --backend mfcc --events speech-commands
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MEDIANS_S = (0.0, 0.5, 1.0)
CELLS = (None, "mean", "min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mfcc")
    parser.add_argument("-p", "--backend-param", action="append", default=[],
                        help="KEY=VALUE, e.g. hop_s=0.5")
    parser.add_argument("--events", default="fsdd", choices=["fsdd", "speech-commands"])
    parser.add_argument("--shared", default="/work/shared/datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--training", default="clips", choices=["clips", "recordings"],
                        help="bags of a word clip then a note, or weakly labelled 10 s "
                             "recordings (words over notes, only the clip's label set known)")
    parser.add_argument("--recordings", type=int, default=600,
                        help="how many 10 s training recordings with --training recordings")
    parser.add_argument("--frames-cache", type=Path, default=None,
                        help="keep training frame embeddings here between runs (npz per backend)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from earmark.backends import get_backend
    from earmark.cli._common import parse_params
    from earmark.datasets import load_dataset
    from earmark.detection.soundscapes import (
        STANDARD_PARAMETERS,
        make_soundscapes,
        standard_soundscapes,
    )
    from earmark.detection.stream import SlidingWindows, detect_file
    from earmark.embedding import embed_file
    from earmark.models import EarmarkModel

    shared = Path(args.shared)
    backend = get_backend(args.backend, **parse_params(args.backend_param))
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(2):
        started = time.perf_counter()
        test = standard_soundscapes(shared, Path(folder) / "test", seed=args.seed,
                                    events=args.events)
        held = set(test.held_out["groups"])
        words = load_dataset(shared / test.held_out["dataset"])
        train_speakers = sorted(set(words.groups) - held)
        n_validation = 1 if args.events == "fsdd" else max(1, len(train_speakers) // 5)
        validation_speakers = set(rng.choice(train_speakers, n_validation, replace=False))
        in_validation = np.isin(words.groups, sorted(validation_speakers))
        in_training = ~in_validation & ~np.isin(words.groups, sorted(held))
        if args.events == "speech-commands":
            in_training &= np.asarray(words.folds) == 0
            in_validation &= np.asarray(words.folds) == 0

        notes = load_dataset(shared / "philharmonia-mini")
        spare = [str(p) for p in notes.paths if str(p) not in set(test.held_out["background"])]
        spare = list(rng.permutation(spare))
        validation_notes, training_notes = spare[:24], spare[24:]
        validation = make_soundscapes(
            words.subset(in_validation), validation_notes, out_dir=Path(folder) / "validation",
            seed=args.seed + 1, **dict(STANDARD_PARAMETERS, n=10),
        )
        print(f"test: {len(test.paths)} soundscapes, {len(test.truth)} events "
              f"(speakers {sorted(held)}); validation: {len(validation.paths)} soundscapes, "
              f"{len(validation.truth)} events (speakers {sorted(validation_speakers)}); "
              f"{time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        word_paths = [str(p) for p in np.asarray(words.paths)[in_training]]
        word_labels = np.asarray(words.y)[in_training]
        word_frames = _frames(backend, word_paths, args.frames_cache)
        note_frames = _frames(backend, training_notes, args.frames_cache)
        keep_words = [i for i, X in enumerate(word_frames) if len(X)]
        keep_notes = [i for i, X in enumerate(note_frames) if len(X)]
        print(f"training: {len(keep_words)} words ({len(set(word_labels))} classes), "
              f"{len(keep_notes)} notes; embedded in {time.perf_counter() - started:.1f} s")

        bags, targets = [], []
        if args.training == "clips":
            for i in keep_words:
                note = note_frames[keep_notes[rng.integers(len(keep_notes))]]
                bags.append(np.concatenate([word_frames[i], note]))
                targets.append((str(word_labels[i]),))
            for i in keep_notes:
                bags.append(note_frames[i])
                targets.append(())
        else:
            # Weak labels as users have them: each recording's label set, never its times.
            started = time.perf_counter()
            weak = make_soundscapes(
                words.subset(in_training), training_notes, out_dir=Path(folder) / "training",
                seed=args.seed + 2, **dict(STANDARD_PARAMETERS, n=args.recordings,
                                           duration_s=10.0, events_per_minute=9.0),
            )
            present = weak.truth.groupby("path")["label"].agg(lambda s: tuple(sorted(set(s))))
            bags = _frames(backend, weak.paths, None)
            targets = [present.get(p, ()) for p in weak.paths]
            print(f"weakly labelled recordings: {len(bags)} x 10 s, "
                  f"{sum(1 for t in targets if not t)} with no word; "
                  f"{time.perf_counter() - started:.1f} s")

        models = {}
        for pooling in ("max", "mean", "attention"):
            started = time.perf_counter()
            models[f"mil-{pooling}"] = (EarmarkModel.train_mil(
                bags, targets, backend=backend, pooling=pooling, epochs=args.epochs,
                random_state=args.seed,
            ), time.perf_counter() - started)
        started = time.perf_counter()
        if args.training == "clips":
            X = np.stack([word_frames[i].mean(axis=0) for i in keep_words]
                         + [note_frames[i].mean(axis=0) for i in keep_notes])
            y = [str(word_labels[i]) for i in keep_words] + ["background"] * len(keep_notes)
        else:  # a single-label clip model learns from the recordings with at most one word
            single = [i for i, t in enumerate(targets) if len(t) <= 1]
            X = np.stack([bags[i].mean(axis=0) for i in single])
            y = [targets[i][0] if targets[i] else "background" for i in single]
        clip = EarmarkModel.train(X, y, backend=backend, learner="logreg")
        models["clip-logreg"] = (SlidingWindows(clip), time.perf_counter() - started)

        print(f"\n{'model':<14} {'default eventF':>14} {'tuned eventF':>12} {'P':>6} {'R':>6} "
              f"{'onsetF':>7} {'segmentF':>9} {'chosen on validation':>30} {'train s':>8} "
              f"{'detect s':>9}")
        # Every model reads the same frames: embed each soundscape once, score it per
        # model, and check on one file that this is exactly what detect_file reports.
        started = time.perf_counter()
        test_frames = [embed_file(backend, p) for p in test.paths]
        validation_frames = [embed_file(backend, p) for p in validation.paths]
        embed_s = time.perf_counter() - started
        print(f"soundscapes embedded once for all models in {embed_s:.1f} s")
        for name, (scorer, train_s) in models.items():
            started = time.perf_counter()
            test_rows = [_score(scorer, f, p) for f, p in zip(test_frames, test.paths)]
            detect_s = time.perf_counter() - started
            validation_rows = [_score(scorer, f, p)
                               for f, p in zip(validation_frames, validation.paths)]
            check = detect_file(scorer, backend, test.paths[0])
            np.testing.assert_allclose(check.scores, test_rows[0].scores, rtol=1e-4, atol=1e-5)
            hidden = ["background"] if name == "clip-logreg" else []
            best = max(
                itertools.product(THRESHOLDS, MEDIANS_S, CELLS),
                # Event F first; onset-only and segment F break ties (all-zero event F).
                key=lambda setting: tuple(
                    s.f_measure for s in _scores(validation_rows, validation, setting, hidden)),
            )
            default_event, _, _ = _scores(test_rows, test, (0.5, 0.0, None), hidden)
            event, onset, segment = _scores(test_rows, test, best, hidden)
            chosen = f"t={best[0]} median={best[1]}s cells={best[2]}"
            print(f"{name:<14} {default_event.f_measure:14.3f} {event.f_measure:12.3f} "
                  f"{event.precision:6.3f} {event.recall:6.3f} {onset.f_measure:7.3f} "
                  f"{segment.f_measure:9.3f} "
                  f"{chosen:>30} {train_s:8.1f} {detect_s:9.1f}", flush=True)


class _Rows:
    """Frame scores of one file, shaped like a DetectionResult for `_scores`."""

    def __init__(self, path, classes, scores, start_s, end_s, hop_s):
        self.path, self.classes, self.scores = str(path), classes, scores
        self.start_s, self.end_s, self.hop_s = start_s, end_s, hop_s


def _score(scorer, frames, path):
    """What detect_file computes from a file's frames: segment scores, or a slid clip
    model on one frame per window (the backend's own window and hop)."""
    if hasattr(scorer, "segment_proba"):
        scores, classes = scorer.segment_proba(frames.X), scorer.classes_
    else:
        scores, classes = scorer.model.predict_proba(frames.X), scorer.model.classes_
    hop_s = float(np.median(np.diff(frames.start_s))) if len(frames.start_s) > 1 else 0.0
    return _Rows(path, [str(c) for c in classes], np.asarray(scores, dtype=np.float32),
                 frames.start_s, frames.end_s, hop_s)


def _frames(backend, paths, cache):
    """Frame embeddings of each file, kept in ``cache`` between runs if given."""
    from earmark.embedding import embed_file

    if cache is None:
        return [embed_file(backend, p).X for p in paths]
    file = Path(cache) / f"{backend.cache_key()}.npz"
    kept = dict(np.load(file)) if file.exists() else {}
    out = []
    for p in paths:
        if p not in kept:
            kept[p] = embed_file(backend, p).X
        out.append(kept[p])
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **kept)
    return out


def _scores(results, scapes, setting, hidden):
    """Event- and segment-based scores of stored frame scores under one post-processing."""
    from earmark.detection.events import (
        frames_to_events,
        median_frames_for,
        window_cells,
    )
    from earmark.detection.metrics import event_based_scores, segment_based_scores

    threshold, median_s, cells = setting
    events = []
    for result in results:
        rows = (result.scores, result.start_s, result.end_s)
        if cells is not None:
            rows = window_cells(*rows, reduce=cells)
        thresholds = {label: (1.1 if label in hidden else threshold) for label in result.classes}
        found = frames_to_events(*rows, result.classes, threshold=thresholds,
                                 median_frames=median_frames_for(median_s, result.hop_s))
        events += [{"path": result.path, "label": e.label, "onset_s": e.onset_s,
                    "offset_s": e.offset_s} for e in found]
    estimated = pd.DataFrame(events, columns=["path", "label", "onset_s", "offset_s"])
    event = event_based_scores(scapes.truth, estimated, t_collar=0.2,
                               percentage_of_length=0.2, labels=scapes.labels)
    onset = event_based_scores(scapes.truth, estimated, t_collar=0.2, evaluate_offset=False,
                               labels=scapes.labels)
    segment = segment_based_scores(scapes.truth, estimated, segment_s=1.0, labels=scapes.labels)
    return event, onset, segment


if __name__ == "__main__":
    main()
