"""Write the cross-collection development case as a manifest CSV with a ``domain`` column.

Spoken digits from two collections: every Speech Commands clip of "zero" to "nine"
(domain ``speech-commands``: 16 kHz, many speakers, 10 clips per word, balanced) and FSDD
subsampled with a 10:1 label shift (domain ``fsdd``: 8 kHz, 6 speakers; 150 clips of the
commonest digit down to 15 of the rarest, class order drawn with the seed). Labels are
the digits "0" to "9" in both. Then, as a user would:

    python benchmarks/cross_collection_manifest.py -o digits.csv --seed 0
    earmark evaluate digits.csv --backend birdnet --train-domain speech-commands \\
        --test-domain fsdd --adapt auto --json

The subsampling is the same as ``benchmarks/adaptation_label_shift.py``'s
``commands-to-fsdd`` case.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=Path("digits-cross-collection.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    rows = []
    for digit, word in enumerate(WORDS):
        for path in sorted((args.shared / "speech-commands-mini" / word).glob("*.wav")):
            rows.append((str(path.resolve()), str(digit), "speech-commands"))
    recordings = sorted((args.shared / "fsdd" / "recordings").glob("*.wav"))
    labels = np.array([path.name.split("_")[0] for path in recordings])
    from adaptation_label_shift import imbalanced

    for index in imbalanced(labels, np.random.default_rng(args.seed), 150):
        rows.append((str(recordings[index].resolve()), labels[index], "fsdd"))
    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "domain"])
        writer.writerows(rows)
    print(f"wrote {args.output}: {len(rows)} clips")


if __name__ == "__main__":
    main()
