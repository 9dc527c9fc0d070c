"""What ``train``, ``evaluate`` and ``curve`` share for networks trained on the clips:
the options, and turning ``--finetune aisfx`` / ``--network NAME`` into an architecture."""

from __future__ import annotations

from typing import Optional

import typer

FinetuneOption = typer.Option(
    None, "--finetune",
    help="Fine-tune a pretrained network on the clips: aisfx (its last block and a new head, "
    "lower blocks frozen and cached; augmentation, weight decay, early stopping on held-out "
    "groups). Uses the GPU when torch sees one.",
)
NetworkOption = typer.Option(
    None, "--network",
    help="Train a network on the clips instead of a learner on embeddings: timbre (~10k "
    "parameters), vgg-small (~50k), sbcnn (~250k) from scratch on log-mel, aisfx-finetune, "
    "aisfx-head.",
)
EpochsOption = typer.Option(None, "--epochs", min=1, help="Network: at most this many epochs.")


def network_choice(finetune: Optional[str], network: Optional[str]) -> Optional[str]:
    """The architecture asked for, or None for the embedding path."""
    from ..exceptions import ParameterError
    from ..networks import check_architecture

    if finetune is not None and network is not None:
        raise ParameterError("expected --finetune or --network, not both")
    if finetune is not None:
        if finetune != "aisfx":
            raise ParameterError(f"--finetune: only aisfx can be fine-tuned here (the one pretrained "
                                 f"network in PyTorch), got {finetune!r}")  # fmt: skip
        return "aisfx-finetune"
    if network is not None:
        return check_architecture(network).name
    return None
