"""``earmark prototypes`` and ``earmark refine``: look at and prune a prototype network.

A prototype network is trained with ``earmark train DATA --prototype-network -o MODEL``
(:func:`train_prototype_network`, called from :mod:`earmark.cli.train`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import DataArgument, JsonOption, LayoutOption, QuietOption, console, emit_json, load_data

ModelArgument = typer.Argument(..., help="A prototype network file (earmark train --prototype-network).",
                               show_default=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("prototypes")(prototypes)
    app.command("refine")(refine)


def prototypes(
    model: Path = ModelArgument,
    output: Path = typer.Option(Path("prototypes.html"), "--output", "-o", help="HTML page to write."),
    json_output: bool = JsonOption,
) -> None:
    """Write a page of every prototype: its spectrogram, its sound, where it comes from."""
    from ..interpret.protonet import PrototypeNetwork
    from ..interpret.prototypes_page import write_prototypes_page

    network = PrototypeNetwork.load(model)
    path = write_prototypes_page(network, output, title=f"Prototypes of {model.name}")
    if json_output:
        emit_json({"page": str(path), "n_prototypes": network.n_prototypes_,
                   "classes": network.classes_.tolist(), "n_parameters": network.n_parameters_})  # fmt: skip
        return
    console.print(f"{network.n_prototypes_} prototypes of {len(network.classes_)} classes -> [bold]{path}[/]")


def refine(
    model: Path = ModelArgument,
    data: str = DataArgument,
    output: Path = typer.Option(..., "--output", "-o", help="Refined network file to write."),
    test: Optional[str] = typer.Option(
        None, "--test", help="Held-out data to score before and after (same classes)."
    ),
    epochs: int = typer.Option(5, "--epochs", help="Epochs of retraining after pruning."),
    merge_threshold: float = typer.Option(
        0.1, "--merge-threshold",
        help="Merge prototypes closer than this fraction of the typical patch-to-prototype distance.",
    ),
    min_channel_share: float = typer.Option(
        0.5, "--min-channel-share",
        help="Prune latent channels below this fraction of an equal share of the distance (0: none).",
    ),
    layout: str = LayoutOption,
    json_output: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Prune unused or redundant prototypes and weak channels, retrain, report before/after.

    DATA is the training data (the refinement retrains on it); --test scores held-out data.
    """
    import numpy as np

    from ..interpret.features import manifest_patches
    from ..interpret.protonet import PrototypeNetwork, clip_proba
    from ..interpret.refine import refine_manifest

    quiet = quiet or json_output
    network = PrototypeNetwork.load(model)
    manifest = load_data(data, layout, quiet=quiet)
    refined, report = refine_manifest(
        network, manifest, epochs=epochs, merge_threshold=merge_threshold,
        min_channel_share=min_channel_share,
    )  # fmt: skip
    held_out = {}
    if test is not None:
        test_manifest = load_data(test, layout, quiet=quiet)
        patches = manifest_patches(test_manifest, network._config())
        for which, candidate in (("before", network), ("after", refined)):
            P, ok = clip_proba(candidate, patches, len(test_manifest))
            predicted = candidate.classes_[P[ok].argmax(axis=1)]
            held_out[f"test_accuracy_{which}"] = float(np.mean(predicted == test_manifest.y[ok]))
        refined.refinement_.update(held_out)
    path = refined.save(output)
    if json_output:
        emit_json({"model": str(path), **report.to_dict(), **held_out})
        return
    console.print(report.summary(), highlight=False)
    if held_out:
        console.print(
            f"held-out accuracy {held_out['test_accuracy_before']:.1%} -> "
            f"{held_out['test_accuracy_after']:.1%}", highlight=False,
        )
    console.print(f"refined network -> [bold]{path}[/]")


def train_prototype_network(manifest, output: Path, *, encoder: str = "aisfx", json_output: bool,
                            quiet: bool, prototypes_per_class: int = 3) -> None:  # fmt: skip
    """``earmark train --prototype-network``: fit on spectrogram patches, save, report."""
    from ..interpret.encoders import check_encoder
    from ..interpret.protonet import fit_manifest

    network = fit_manifest(manifest, progress=not quiet, encoder=check_encoder(encoder),
                           prototypes_per_class=prototypes_per_class)  # fmt: skip
    if not quiet:
        for path, reason in network.failures_:
            console.print(f"skipped {path}: {reason}", style="yellow", highlight=False)
    path = network.save(output)
    if json_output:
        emit_json({"model": str(path), "kind": "prototype-network", "encoder": encoder,
                   "classes": network.classes_.tolist(), "n_prototypes": network.n_prototypes_,
                   "n_parameters": network.n_parameters_, "skipped": len(network.failures_)})  # fmt: skip
        return
    console.print(
        f"trained a prototype network ({encoder} encoder, {network.n_prototypes_} prototypes, "
        f"{network.n_parameters_:,} parameters) on {len(manifest) - len(network.failures_)} "
        f"items, {len(network.classes_)} classes -> [bold]{path}[/]; see its prototypes with "
        f"`earmark prototypes {path}`"
    )
