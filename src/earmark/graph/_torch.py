"""The torch side of :mod:`earmark.graph.tagger`: the graph network and its training.

Plain PyTorch, not PyTorch Geometric: every clip's graph has the same node grid (one
node per time-frequency region of a patch), so a batch is one dense ``(batch, nodes,
features)`` tensor and each node's neighbours one ``(batch, nodes, k)`` index tensor;
message passing is a gather and a max. PyTorch Geometric would add a compiled
dependency (torch-scatter / torch-sparse wheels tied to each torch release) for sparse
batching these fixed-size graphs do not need, and its general edge lists are slower on
CPU than the dense gather for graphs of ~100 nodes.

Parameters travel as a dict of NumPy arrays (:func:`parameter_names`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .tagger import parameter_names

__all__ = ["GraphNetwork", "grid_neighbours", "initial_params", "parameter_names", "train"]


def grid_neighbours(n_time: int, n_freq: int) -> np.ndarray:
    """Time-frequency adjacency: each node's 4 grid neighbours (itself at the border).

    Returns
    -------
    np.ndarray [shape=(n_time * n_freq, 4), dtype=int64]
        Node ``t * n_freq + f``'s neighbours (t-1, f), (t+1, f), (t, f-1), (t, f+1).
    """
    t, f = np.meshgrid(np.arange(n_time), np.arange(n_freq), indexing="ij")
    t, f = t.ravel(), f.ravel()
    out = []
    for dt, df in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        tt, ff = t + dt, f + df
        inside = (tt >= 0) & (tt < n_time) & (ff >= 0) & (ff < n_freq)
        out.append(np.where(inside, tt * n_freq + ff, t * n_freq + f))
    return np.stack(out, axis=1).astype(np.int64)


class GraphNetwork(nn.Module):
    """Region nodes, message passing, label nodes attending to regions (after ATGNN).

    ``forward(nodes)`` takes node features ``(batch, in_features, n_time, n_freq)`` (the
    standardised, pooled frozen maps) and returns ``(logits, attention)``: class logits
    ``(batch, n_classes)`` and each label node's attention over the region nodes
    ``(batch, n_classes, n_time * n_freq)`` (rows sum to 1): the class-to-region links.

    Each layer links every node to its 4 time-frequency neighbours and either to its
    ``k`` nearest nodes by cosine similarity of the current features (``"graph"``,
    recomputed per layer as in Vision GNN) or to the centroid of its cluster
    (``"hypergraph"``: nodes are grouped into ``k`` hyperedges by a few k-means steps
    per layer; a hyperedge's message is the mean of its members, so a node hears every
    node of its cluster at once). The update is max-relative (Li et al. 2019):
    ``h <- h + gelu(W [h, max_j (h_j - h)] + b)``, then a parameter-free layer norm.
    When ``params`` hold a pooled path (``pooled.weight``), a linear function of the input
    maps pooled as aiSFX pools them (mean over bands, maximum over time) is added to the
    logits.
    """

    def __init__(self, params: dict[str, np.ndarray], *, n_layers: int, k: int, mode: str):
        super().__init__()
        self.n_layers, self.k, self.mode = int(n_layers), int(k), mode
        self.pooled_path = "pooled.weight" in params
        self.params = nn.ParameterDict(
            {name.replace(".", "_"): nn.Parameter(torch.from_numpy(np.array(params[name], np.float32)))
             for name in parameter_names(n_layers, self.pooled_path)}
        )  # fmt: skip

    def p(self, name: str):
        return self.params[name.replace(".", "_")]

    def region_nodes(self, maps):
        """``(batch, nodes, hidden)``: projected maps plus a learned embedding per band."""
        batch, channels, n_time, n_freq = maps.shape
        x = maps.permute(0, 2, 3, 1).reshape(batch, n_time * n_freq, channels)
        h = x @ self.p("input.weight").T + self.p("input.bias")
        band = self.p("band_embedding")  # (n_freq, hidden): where in frequency, not when
        h = h + band.repeat(n_time, 1)[None]
        return nn.functional.layer_norm(h, h.shape[-1:])

    def neighbours(self, h, grid):
        """Neighbour features ``(batch, nodes, 4 + k, hidden)`` for one layer."""
        batch, n_nodes, hidden = h.shape
        flat = h.reshape(batch * n_nodes, hidden)
        offset = (torch.arange(batch) * n_nodes)[:, None, None]
        near = flat[(grid[None] + offset).reshape(-1)].reshape(batch, n_nodes, -1, hidden)
        k = min(self.k, n_nodes - 1)
        if k < 1:
            return near
        unit = nn.functional.normalize(h, dim=-1)
        if self.mode == "graph":
            similarity = unit @ unit.transpose(1, 2)
            similarity = similarity - 3.0 * torch.eye(n_nodes)[None]  # never itself
            index = similarity.topk(k, dim=-1).indices  # (batch, nodes, k)
            knn = flat[(index + offset).reshape(-1)].reshape(batch, n_nodes, k, hidden)
            return torch.cat([near, knn], dim=2)
        # Hypergraph: k hyperedges from k-means on the unit features, started from
        # nodes spread evenly over the grid (deterministic); each node hears its own
        # hyperedge's mean (node -> hyperedge -> node).
        with torch.no_grad():
            start = torch.linspace(0, n_nodes - 1, k).round().long()
            centres = unit[:, start]
            for _ in range(3):
                assign = (unit @ centres.transpose(1, 2)).argmax(dim=-1)
                member = nn.functional.one_hot(assign, k).float()  # (batch, nodes, k)
                centres = nn.functional.normalize(member.transpose(1, 2) @ unit, dim=-1)
        member = member / member.sum(dim=1, keepdim=True).clamp(min=1.0)
        edges = member.transpose(1, 2) @ h  # (batch, k, hidden): mean of members
        own = torch.gather(edges, 1, assign[..., None].expand(-1, -1, hidden))
        return torch.cat([near, own[:, :, None]], dim=2)

    def forward(self, maps, grid):
        h = self.region_nodes(maps)
        for layer in range(self.n_layers):
            relative = (self.neighbours(h, grid) - h[:, :, None]).max(dim=2).values
            update = torch.cat([h, relative], dim=-1) @ self.p(f"layer{layer}.weight").T
            h = nn.functional.layer_norm(
                h + nn.functional.gelu(update + self.p(f"layer{layer}.bias")), h.shape[-1:]
            )
        labels = self.p("label_nodes")  # (classes, hidden)
        attention = torch.softmax(torch.einsum("ch,bnh->bcn", labels, h) / math.sqrt(h.shape[-1]), dim=-1)
        pooled = torch.einsum("bcn,bnh->bch", attention, h)
        logits = (pooled * self.p("readout.weight")[None]).sum(-1) + self.p("readout.bias")
        if self.pooled_path:
            clip = maps.mean(dim=3).amax(dim=2)  # (batch, channels)
            logits = logits + clip @ self.p("pooled.weight").T + self.p("pooled.bias")
        return logits, attention

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {name: self.p(name).detach().numpy().copy()
                for name in parameter_names(self.n_layers, self.pooled_path)}


def initial_params(*, in_features: int, hidden: int, n_freq: int, n_layers: int, n_classes: int,
                   rng: np.random.Generator, pooled_path: bool = False) -> dict[str, np.ndarray]:
    """Glorot-scaled weights, small label nodes, zero biases; the pooled path at zero (the
    network starts from its graph alone)."""

    def weight(out, into):
        return rng.normal(0, np.sqrt(2.0 / (out + into)), (out, into)).astype(np.float32)

    params = {"input.weight": weight(hidden, in_features), "input.bias": np.zeros(hidden, np.float32),
              "band_embedding": (0.02 * rng.normal(size=(n_freq, hidden))).astype(np.float32)}  # fmt: skip
    for layer in range(n_layers):
        params[f"layer{layer}.weight"] = weight(hidden, 2 * hidden)
        params[f"layer{layer}.bias"] = np.zeros(hidden, np.float32)
    params["label_nodes"] = rng.normal(0, 1.0, (n_classes, hidden)).astype(np.float32)
    params["readout.weight"] = weight(n_classes, hidden)
    params["readout.bias"] = np.zeros(n_classes, np.float32)
    if pooled_path:
        params["pooled.weight"] = np.zeros((n_classes, in_features), np.float32)
        params["pooled.bias"] = np.zeros(n_classes, np.float32)
    return params


def forward_numpy(params, maps: np.ndarray, *, n_layers: int, k: int, mode: str,
                  chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(n, classes)`` and attention ``(n, classes, nodes)`` of node maps, in chunks."""
    network = GraphNetwork(params, n_layers=n_layers, k=k, mode=mode).eval()
    grid = torch.from_numpy(grid_neighbours(*maps.shape[2:]))
    logits, attention = [], []
    with torch.no_grad():
        for start in range(0, len(maps), chunk):
            out = network(torch.from_numpy(np.ascontiguousarray(maps[start:start + chunk], np.float32)), grid)
            logits.append(out[0].numpy())
            attention.append(out[1].numpy())
    return np.concatenate(logits), np.concatenate(attention)


def train(params, maps: np.ndarray, targets: np.ndarray, *, multilabel: bool, n_layers: int, k: int,
          mode: str, epochs: int, batch_size: int, learning_rate: float, weight_decay: float,
          dropout: float, seed: int) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train with AdamW, warm-up then cosine decay; cross-entropy, or binary
    cross-entropy per class when ``multilabel`` (``targets`` then ``(n, classes)``).

    ``dropout``: share of input channels zeroed per node while training (the frozen maps
    are many and the examples few).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    y_all = torch.from_numpy(targets.astype(np.float32 if multilabel else np.int64))
    grid = torch.from_numpy(grid_neighbours(*maps.shape[2:]))
    network = GraphNetwork(params, n_layers=n_layers, k=k, mode=mode)
    decayed = [p for name, p in network.params.items() if name.endswith("weight")]
    rest = [p for name, p in network.params.items() if not name.endswith("weight")]
    optimiser = torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=learning_rate)  # fmt: skip
    n_batches = max(1, math.ceil(len(maps) / batch_size))
    total_steps, warm = epochs * n_batches, max(1, epochs * n_batches // 10)

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    losses = []
    for _ in range(epochs):
        network.train()
        total = 0.0
        for batch in np.array_split(rng.permutation(len(maps)), n_batches):
            x = x_all[batch]
            if dropout > 0:
                x = nn.functional.dropout(x, dropout, training=True)
            logits, _ = network(x, grid)
            if multilabel:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, y_all[batch])
            else:
                loss = nn.functional.cross_entropy(logits, y_all[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(maps))
    return network.numpy_params(), losses
