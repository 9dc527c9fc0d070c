"""Training loop of :class:`earmark.adaptation.dann.DANNClassifier`, in torch.

Imported only when a DANN model is fitted: the fitted weights come back as numpy
arrays, so predicting needs no torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``-weight`` backward (Ganin et al. 2016)."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def train(
    Zs: np.ndarray,
    codes: np.ndarray,
    Zt: np.ndarray | None,
    *,
    n_classes: int,
    hidden_units: int,
    domain_units: int,
    domain_weight: float,
    dropout: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
) -> dict[str, np.ndarray | list[float]]:
    """Fit feature extractor, label head and (with a target) adversarial domain head.

    Parameters
    ----------
    Zs : np.ndarray [shape=(n_source, d)]
        Standardised source embeddings.
    codes : np.ndarray [shape=(n_source,), dtype=int]
        Source class indices.
    Zt : np.ndarray [shape=(n_target, d)] or None
        Standardised unlabelled target embeddings; None trains a plain classifier.

    Returns
    -------
    dict
        ``W1 b1`` (features), ``W2 b2`` (label head) as float32 arrays, and per-epoch
        ``label_loss`` and ``domain_loss``.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    d = Zs.shape[1]
    features = nn.Sequential(nn.Linear(d, hidden_units), nn.ReLU())
    dropout_layer = nn.Dropout(dropout)
    label_head = nn.Linear(hidden_units, n_classes)
    domain_head = nn.Sequential(
        nn.Linear(hidden_units, domain_units), nn.ReLU(), nn.Linear(domain_units, 1)
    )
    modules = nn.ModuleList([features, label_head, domain_head])
    optimiser = torch.optim.Adam(modules.parameters(), lr=learning_rate, weight_decay=weight_decay)
    xs = torch.as_tensor(Zs, dtype=torch.float32)
    ys = torch.as_tensor(codes, dtype=torch.long)
    xt = None if Zt is None else torch.as_tensor(Zt, dtype=torch.float32)
    steps_per_epoch = max(1, math.ceil(len(xs) / batch_size))
    total = epochs * steps_per_epoch
    cross_entropy = nn.CrossEntropyLoss()
    binary = nn.BCEWithLogitsLoss()
    history: dict[str, list[float]] = {"label_loss": [], "domain_loss": []}
    modules.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        label_sum = domain_sum = 0.0
        for start in range(0, len(xs), batch_size):
            batch = order[start : start + batch_size]
            source_features = features(xs[batch])
            loss = cross_entropy(label_head(dropout_layer(source_features)), ys[batch])
            label_sum += loss.item()
            if xt is not None:
                # The schedule of the paper: the adversary's pull grows from 0 as the
                # label head settles, so early noisy features are not scrambled.
                progress = step / max(total - 1, 1)
                weight = domain_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)
                pick = torch.randint(len(xt), (len(batch),), generator=generator)
                both = torch.cat([source_features, features(xt[pick])])
                is_target = torch.cat([torch.zeros(len(batch)), torch.ones(len(batch))])
                logits = domain_head(_ReverseGradient.apply(both, weight)).squeeze(1)
                domain_loss = binary(logits, is_target)
                domain_sum += domain_loss.item()
                loss = loss + domain_loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
        history["label_loss"].append(label_sum / steps_per_epoch)
        history["domain_loss"].append(domain_sum / steps_per_epoch)
    linear = features[0]
    return {
        "W1": linear.weight.detach().numpy().T.copy(),
        "b1": linear.bias.detach().numpy().copy(),
        "W2": label_head.weight.detach().numpy().T.copy(),
        "b2": label_head.bias.detach().numpy().copy(),
        **history,
    }
