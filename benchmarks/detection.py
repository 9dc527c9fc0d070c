"""Sound event detection from weak labels: multiple-instance models against a slid clip model.

Builds the standard soundscapes (:func:`earmark.detection.soundscapes.standard_soundscapes`:
held-out Speech Commands words over Philharmonia notes) in a temporary folder, trains on
Speech Commands fold 0 only, and scores each model's detections on the soundscapes:
event-based F (collar 200 ms, offset 20 %) and segment-based F (1 s), micro-averaged.

Models, all on ``--backend`` embeddings:

- ``mil-max``, ``mil-mean``, ``mil-attention``: :meth:`EarmarkModel.train_mil`. Each
  training bag is a recording known only by its label: the frames of one word clip
  followed by the frames of one Philharmonia note, labelled with the word. The model must
  also learn that notes are no word, so note-only bags are added with an *empty* label
  set. That makes the model multi-label (a sigmoid per word, no "background" class),
  which is what detection needs: a frame may score low for every word.
- ``clip-logreg``: :meth:`EarmarkModel.train` (logistic regression) on clip embeddings
  of the words plus a ``background`` class of notes, slid over the soundscapes
  (:class:`~earmark.detection.stream.SlidingWindows`, the backend's window and hop); the
  ``background`` class is never reported (threshold above 1).

Notes used as training background are Philharmonia notes *not* among the soundscapes'
background notes. Detection thresholds are 0.5, no median filter.

Run on demand, not as a test::

    python benchmarks/detection.py
    python benchmarks/detection.py --backend birdnet
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mfcc")
    parser.add_argument("--shared", default="/work/shared/datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from earmark.backends import get_backend
    from earmark.datasets import load_dataset
    from earmark.detection.metrics import event_based_scores, segment_based_scores
    from earmark.detection.soundscapes import standard_soundscapes
    from earmark.detection.stream import SlidingWindows, detect_file
    from earmark.embedding import embed_file
    from earmark.model import EarmarkModel

    shared = Path(args.shared)
    backend = get_backend(args.backend)
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(2):
        started = time.perf_counter()
        scapes = standard_soundscapes(shared, Path(folder) / "scapes", seed=args.seed)
        print(f"soundscapes: {len(scapes.paths)} files, {len(scapes.truth)} events "
              f"({time.perf_counter() - started:.1f} s)")

        words = load_dataset(shared / "speech-commands-mini")
        train = np.asarray(words.folds) == 0
        word_paths = [str(p) for p in np.asarray(words.paths)[train]]
        word_labels = np.asarray(words.y)[train]
        notes = load_dataset(shared / "philharmonia-mini")
        used = set(scapes.held_out["background"])
        note_paths = [str(p) for p in notes.paths if str(p) not in used]

        started = time.perf_counter()
        word_frames = [embed_file(backend, p).X for p in word_paths]
        note_frames = [embed_file(backend, p).X for p in note_paths]
        keep_words = [i for i, X in enumerate(word_frames) if len(X)]
        keep_notes = [i for i, X in enumerate(note_frames) if len(X)]
        embed_s = time.perf_counter() - started
        print(f"training: {len(keep_words)} words ({len(set(word_labels))} classes), "
              f"{len(keep_notes)} notes; embedded in {embed_s:.1f} s")

        rng = np.random.default_rng(args.seed)
        bags, targets = [], []
        for i in keep_words:
            note = note_frames[keep_notes[rng.integers(len(keep_notes))]]
            bags.append(np.concatenate([word_frames[i], note]))
            targets.append((str(word_labels[i]),))
        for i in keep_notes:
            bags.append(note_frames[i])
            targets.append(())

        models = {}
        for pooling in ("max", "mean", "attention"):
            started = time.perf_counter()
            models[f"mil-{pooling}"] = (EarmarkModel.train_mil(
                bags, targets, backend=backend, pooling=pooling, epochs=args.epochs,
                random_state=args.seed,
            ), time.perf_counter() - started)
        started = time.perf_counter()
        X = np.stack([word_frames[i].mean(axis=0) for i in keep_words]
                     + [note_frames[i].mean(axis=0) for i in keep_notes])
        y = [str(word_labels[i]) for i in keep_words] + ["background"] * len(keep_notes)
        clip = EarmarkModel.train(X, y, backend=backend, learner="logreg")
        models["clip-logreg"] = (SlidingWindows(clip), time.perf_counter() - started)

        print(f"\n{'model':<15} {'event F':>8} {'P':>6} {'R':>6} {'segment F':>10} "
              f"{'train s':>8} {'detect s':>9}")
        for name, (scorer, train_s) in models.items():
            started = time.perf_counter()
            threshold = {"*": 0.5, "background": 1.1} if name == "clip-logreg" else 0.5
            events = []
            for path in scapes.paths:
                result = detect_file(scorer, backend, path, threshold=threshold)
                events += [{"path": path, "label": e.label, "onset_s": e.onset_s,
                            "offset_s": e.offset_s} for e in result.events]
            detect_s = time.perf_counter() - started
            estimated = pd.DataFrame(events, columns=["path", "label", "onset_s", "offset_s"])
            event = event_based_scores(scapes.truth, estimated, t_collar=0.2,
                                       percentage_of_length=0.2, labels=scapes.labels)
            segment = segment_based_scores(scapes.truth, estimated, segment_s=1.0,
                                           labels=scapes.labels)
            print(f"{name:<15} {event.f_measure:8.3f} {event.precision:6.3f} "
                  f"{event.recall:6.3f} {segment.f_measure:10.3f} {train_s:8.1f} "
                  f"{detect_s:9.1f}", flush=True)


if __name__ == "__main__":
    main()
