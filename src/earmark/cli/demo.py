"""``earmark demo``: the main job, end to end, on the bundled spoken-digit recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import (
    CacheOption, LearnerOption, console, embed_clips, open_backend, open_cache, output_dir,
)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Folder for results."),
    backend_name: Optional[str] = typer.Option(None, "--backend", "-b", help="Default birdnet."),
    baseline: str = typer.Option("mfcc", "--baseline", help="Baseline backend on the curve."),
    learner: str = LearnerOption,
    draws: int = typer.Option(5, "--draws", help="Random draws per learning-curve point."),
    sizes: str = typer.Option("1,2,4,8,16,all", "--sizes", help="Learning-curve examples per class."),
    cache_dir: Optional[Path] = CacheOption,
) -> None:
    """Embed, cross-validate (leave one speaker out), draw a learning curve, train and predict."""
    from ..datasets import DEMO_ATTRIBUTION, load_demo
    from ..evaluation import cross_validate
    from ..models import EarmarkModel, load_model, predict_files
    from ..plots import plot_confusion_matrix
    from .curve import compute_curves, parse_sizes, write_curves
    from .evaluate import show_result
    from .predict import write_rows

    curve_sizes = parse_sizes(sizes)  # a typo fails now, not after minutes of embedding
    target = output_dir(output)
    manifest = load_demo()
    console.rule("[bold]earmark demo")
    console.print(f"data: {DEMO_ATTRIBUTION}", highlight=False)
    console.print(manifest.describe(), highlight=False)
    store = open_cache(cache_dir)
    backend = open_backend(backend_name, None)

    console.rule("1. embed and cross-validate, one speaker held out per split")
    X, kept, _run = embed_clips(manifest, backend, store)
    # As many splits as speakers, so each split holds out exactly one, as the title says.
    n_speakers = len(set(kept.groups.tolist()))
    result = cross_validate(X, kept.y, groups=kept.groups, learner=learner, n_splits=n_speakers)
    show_result(result, backend.name, learner)
    (target / "evaluation.json").write_text(result.to_json())
    plot_confusion_matrix(
        result, path=target / "confusion-matrix.png",
        title=f"{backend.name} + {learner}, leave one speaker out: {result.accuracy_mean:.1%}",
    )

    console.rule(f"2. learning curve, {backend.name} against the {baseline} baseline")
    curves = compute_curves(
        manifest, [backend, open_backend(baseline, None)], store, learner=learner,
        sizes=curve_sizes, draws=draws, seed=0, quiet=False, n_splits=n_speakers,
    )
    for name, curve in curves.items():
        console.print(f"[bold]{name}[/]\n{curve.summary()}", highlight=False)
    curve_files = write_curves(curves, target, learner)

    console.rule("3. train on five speakers, label the sixth speaker's recordings")
    speakers = sorted(set(kept.groups.tolist()))
    held_out = speakers[-1]
    train_mask = kept.groups != held_out
    model = EarmarkModel.train(X[train_mask], kept.y[train_mask], backend=backend, learner=learner)
    model_path = model.save(target / "digits.earmark")
    held = kept.subset(~train_mask)
    rows = [
        prediction.to_dict() for prediction in predict_files(
            load_model(model_path), held.paths.tolist(), backend=backend, store=store
        )
    ]
    write_rows(rows, target / "predictions.csv")
    correct = sum(row["label"] == truth for row, truth in zip(rows, held.y.tolist()))
    console.print(
        f"model saved to [bold]{model_path}[/]; on speaker [bold]{held_out}[/] (never seen in "
        f"training) it labels {correct}/{len(rows)} recordings correctly ({correct / len(rows):.1%})"
    )

    console.rule("files")
    for path in (target / "evaluation.json", target / "confusion-matrix.png",
                 Path(curve_files["json"]), Path(curve_files["plot"]), model_path,
                 target / "predictions.csv"):
        console.print(f"  {path}")
