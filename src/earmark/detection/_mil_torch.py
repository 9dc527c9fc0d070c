"""The torch side of :mod:`earmark.detection.mil`: the network it trains, and training.

Imported only inside ``MILClassifier.fit``, so that a fitted model predicts (in NumPy)
where torch is not installed. :class:`MILNetwork` and ``MILClassifier._frame_logits`` /
``_pooled_logits`` are the same computation; the tests hold them to 1e-5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["MILNetwork", "pad", "train"]


class MILNetwork(nn.Module):
    """Frame network and pooling, on padded bags.

    ``forward(frames, mask)`` takes bags padded to ``(batch, max_frames, dimension)``
    and a boolean ``(batch, max_frames)`` mask of real frames, and returns pooled logits
    ``(batch, n_classes)``; :meth:`frame_logits` gives the unpooled ones.
    """

    def __init__(
        self, *, dimension: int, hidden: int, n_classes: int, pooling: str, dropout: float
    ):
        super().__init__()
        self.pooling = pooling
        self.hidden = nn.Linear(dimension, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classes = nn.Linear(hidden, n_classes)
        self.attention = nn.Linear(hidden, n_classes) if pooling == "attention" else None

    def frame_logits(self, frames):
        """``(frame logits, attention logits or None)``, both ``(..., n_classes)``."""
        hidden_units = self.dropout(torch.relu(self.hidden(frames)))
        attention = self.attention(hidden_units) if self.attention is not None else None
        return self.classes(hidden_units), attention

    def forward(self, frames, mask):
        return self.pool(*self.frame_logits(frames), mask)

    def pool(self, logits, attention, mask):
        """Pooled logits ``(batch, n_classes)`` from :meth:`frame_logits`' output."""
        padding = ~mask.unsqueeze(-1)
        if self.pooling == "max":
            return logits.masked_fill(padding, float("-inf")).amax(dim=1)
        if self.pooling == "linear-softmax":
            probability = torch.sigmoid(logits).masked_fill(padding, 0.0)
            pooled = (probability * probability).sum(dim=1) / probability.sum(dim=1).clamp_min(1e-6)
            pooled = pooled.clamp(1e-6, 1 - 1e-6)
            return torch.log(pooled) - torch.log1p(-pooled)
        if self.pooling == "mean":
            total = logits.masked_fill(padding, 0.0).sum(dim=1)
            return total / mask.sum(dim=1, keepdim=True)
        weights = torch.softmax(attention.masked_fill(padding, float("-inf")), dim=1)
        return (weights * logits.masked_fill(padding, 0.0)).sum(dim=1)


def pad(bags: list, indices) -> tuple:
    """Bags ``indices`` of ``bags`` (2-D tensors) padded to ``(batch, max_frames, dim)``,
    and the mask of real frames."""
    chosen = [bags[i] for i in indices]
    lengths = torch.tensor([len(bag) for bag in chosen])
    frames = nn.utils.rnn.pad_sequence(chosen, batch_first=True)
    mask = torch.arange(frames.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return frames, mask


def train(
    bags: list[np.ndarray],
    targets: np.ndarray,
    *,
    multilabel: bool,
    n_classes: int,
    pooling: str,
    hidden: int,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    dropout: float,
    seed: int,
    frame_targets: list | None = None,
    strong_weight: float = 1.0,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train on standardised float32 bags.

    ``targets`` are class indices (single-label) or a float 0/1 matrix (multi-label).
    ``frame_targets`` (multi-label only), per bag a float 0/1 ``(n_frames, n_classes)``
    matrix or None: strong labels where a user has them. Those bags add a frame-level
    cross-entropy, averaged over the bag's frames and weighted by ``strong_weight``, to
    the bag's own loss.
    Returns the state dict as float64 NumPy arrays and the mean loss per bag per epoch.
    """
    tensors = [torch.from_numpy(bag) for bag in bags]
    target_tensor = torch.from_numpy(targets)
    strong = None
    if frame_targets is not None and any(t is not None for t in frame_targets):
        strong = [torch.from_numpy(np.asarray(t, dtype=np.float32)) if t is not None
                  else torch.zeros((len(bag), n_classes)) for t, bag in zip(frame_targets, bags)]
        has_strong = torch.tensor([t is not None for t in frame_targets])
        frame_loss = nn.BCEWithLogitsLoss(reduction="none")
    loss_function = (
        nn.BCEWithLogitsLoss(reduction="sum")
        if multilabel
        else nn.CrossEntropyLoss(reduction="sum")
    )
    losses: list[float] = []
    # The seed drives weights, dropout and batch order; fork_rng puts torch's global
    # random state back afterwards, so fitting does not change anyone else's draws.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = MILNetwork(
            dimension=bags[0].shape[1],
            hidden=hidden,
            n_classes=n_classes,
            pooling=pooling,
            dropout=dropout,
        )
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=learning_rate, weight_decay=weight_decay
        )
        network.train()
        for _ in range(epochs):
            order = torch.randperm(len(tensors))
            total = 0.0
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                frames, mask = pad(tensors, indices.tolist())
                # Frame logits once per step: pooled for the bag loss, and read frame by
                # frame where strong labels say what each frame holds.
                logits, attention = network.frame_logits(frames)
                loss = loss_function(network.pool(logits, attention, mask), target_tensor[indices])
                if strong is not None:
                    chosen = indices.tolist()
                    wanted = mask & has_strong[indices].unsqueeze(1)
                    if bool(wanted.any()):
                        truth = nn.utils.rnn.pad_sequence([strong[i] for i in chosen],
                                                          batch_first=True)
                        per_frame = frame_loss(logits, truth).sum(dim=-1) * wanted
                        n_frames = mask.sum(dim=1).clamp_min(1)
                        loss = loss + strong_weight * (per_frame.sum(dim=1) / n_frames).sum()
                optimiser.zero_grad()
                (loss / len(indices)).backward()
                optimiser.step()
                total += float(loss.detach())
            # Per bag: for multi-label, the sum over classes (the bag's negative
            # log-likelihood), which is also what each step's gradient follows.
            losses.append(total / len(tensors))
    weights = {
        name: parameter.detach().numpy().astype(np.float64)
        for name, parameter in network.state_dict().items()
    }
    return weights, losses
