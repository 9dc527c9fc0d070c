"""``earmark soundscapes``: strongly labelled training recordings made from isolated clips.

The cheapest strong labels there are (as Scaper makes them): labelled clips placed at
known times over background recordings, with the events table written beside them, so
that ``earmark train OUT/training.csv --detector`` learns frame by frame
(``training.csv`` is ``truth.csv`` plus an empty-label row for each soundscape where no
event fell; ``truth.csv`` stays the reference ``earmark evaluate-events`` reads).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import DataArgument, JsonOption, LayoutOption, console, emit_json


def register(app: typer.Typer) -> None:
    app.command("soundscapes")(soundscapes)


def soundscapes(
    data: str = DataArgument,
    backgrounds: Path = typer.Option(
        ..., "--backgrounds", help="Folder of recordings for the background bed: where the "
        "detector will listen, with none of the classes in them.", show_default=False,
    ),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the WAV files and "
                                 "truth.csv (created).", show_default=False),
    n: int = typer.Option(200, "-n", help="How many soundscapes.", min=1, max=100000),
    duration_s: float = typer.Option(10.0, "--duration", help="Seconds each.", min=1.0,
                                     max=3600.0),
    events_per_minute: float = typer.Option(10.0, "--events-per-minute", min=0.1, max=600.0),
    snr_low: float = typer.Option(0.0, "--snr-min", help="Event-to-background ratio range, dB."),
    snr_high: float = typer.Option(12.0, "--snr-max"),
    sample_rate: int = typer.Option(16000, "--sample-rate", min=8000, max=192000),
    seed: int = typer.Option(0, "--seed"),
    layout: str = LayoutOption,
    json_output: bool = JsonOption,
) -> None:
    """Place DATA's labelled clips over --backgrounds at known times; write truth.csv.

    Then `earmark train OUT/training.csv --detector` trains from the strong labels.
    Soundscapes are seeded: the same options write the same files.
    """
    from ..audio import SUPPORTED_EXTENSIONS
    from ..datasets import load_dataset
    from ..detection.soundscapes import make_soundscapes
    from ..exceptions import ParameterError

    if not snr_low <= snr_high:
        raise ParameterError(f"expected --snr-min <= --snr-max, got {snr_low} > {snr_high}")
    if not backgrounds.is_dir():
        raise ParameterError(f"--backgrounds {backgrounds}: no such folder")
    found = sorted(str(p) for p in backgrounds.rglob("*")
                   if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not found:
        raise ParameterError(f"--backgrounds {backgrounds}: expected audio files, found none")
    made = make_soundscapes(
        load_dataset(data, layout=layout), found, out_dir=out_dir, n=n, duration_s=duration_s,
        sr=sample_rate, events_per_minute=events_per_minute, snr_db=(snr_low, snr_high),
        seed=seed, prefix="soundscape",
    )
    # The events table to train from: truth.csv's events, plus one empty-label row for
    # each soundscape where no event fell (a recording with none of the classes).
    import os

    import pandas as pd

    from ..files import atomic_write

    table = made.truth[["path", "label", "onset_s", "offset_s"]].copy()
    table["path"] = [os.path.relpath(p, made.out_dir) for p in table["path"]]
    quiet = sorted({os.path.relpath(p, made.out_dir) for p in made.paths} - set(table["path"]))
    table = pd.concat([table, pd.DataFrame({"path": quiet, "label": "", "onset_s": 0.0,
                                            "offset_s": duration_s})], ignore_index=True)
    training = made.out_dir / "training.csv"
    atomic_write(training, table.to_csv(index=False))
    summary = {"out_dir": str(made.out_dir), "n_soundscapes": len(made.paths),
               "n_events": int(len(made.truth)), "n_without_events": len(quiet),
               "labels": list(made.labels), "truth": str(made.truth_csv),
               "training": str(training)}
    if json_output:
        emit_json(summary)
        return
    console.print(
        f"{len(made.paths)} soundscapes of {duration_s:g} s with {len(made.truth)} events of "
        f"{len(made.labels)} classes ({len(quiet)} without any) in {made.out_dir}; train a "
        f"detector on them with\n  earmark train {training} --detector -o detector.earmark",
        highlight=False,
    )
