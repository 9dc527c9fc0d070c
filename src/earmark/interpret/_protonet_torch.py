"""The torch side of :mod:`earmark.interpret.protonet`: the network, its loss, training.

Imported only when fitting or refining, so a fitted network predicts in NumPy where torch
is not installed. :class:`ProtoNetwork` and the NumPy forward pass in
:mod:`earmark.interpret.protonet` are the same computation; the tests hold them to 1e-4.

Parameters travel as a dict of NumPy arrays named as in :data:`PARAMETER_NAMES`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .protonet import PARAMETER_NAMES

__all__ = ["PARAMETER_NAMES", "ProtoNetwork", "train"]



class ProtoNetwork(nn.Module):
    """Encoder, decoder, prototype layer and linear head (APNet, Zinemanas et al. 2021).

    ``encode(x)`` maps standardised inputs to latents: for the ``"log-mel"`` encoder,
    patches ``(batch, 1, frames, mels)`` to ``(batch, channels, frames / 4, mels / 4)``
    (3x3 convolutions and 2x2 pooling); for ``"aisfx"``, aiSFX's frozen maps
    ``(batch, 512, 12, 12)`` to ``(batch, channels, 12, 12)`` (a 1x1 then a 3x3
    convolution, no pooling). :meth:`distances` compares them with
    every prototype per latent frequency band, weighting channels, so time-frequency
    structure decides; ``forward`` returns ``(logits, latents, distances)``.
    """

    def __init__(self, params: dict[str, np.ndarray], encoder: str = "log-mel"):
        super().__init__()
        self.encoder = encoder
        self.params = nn.ParameterDict(
            {name.replace(".", "_"): nn.Parameter(torch.from_numpy(np.array(params[name])))
             for name in PARAMETER_NAMES}
        )  # fmt: skip

    def p(self, name: str):
        return self.params[name.replace(".", "_")]

    def encode(self, x):
        f = nn.functional
        if self.encoder == "aisfx":
            h = torch.relu(f.conv2d(x, self.p("conv1.weight"), self.p("conv1.bias")))
            return torch.tanh(f.conv2d(h, self.p("conv2.weight"), self.p("conv2.bias"), padding=1))
        h = f.conv2d(x, self.p("conv1.weight"), self.p("conv1.bias"), padding=1)
        h = f.max_pool2d(torch.relu(h), 2)
        h = f.conv2d(h, self.p("conv2.weight"), self.p("conv2.bias"), padding=1)
        return torch.tanh(f.max_pool2d(h, 2))

    def decode(self, z):
        f = nn.functional
        if self.encoder == "aisfx":
            h = torch.relu(f.conv2d(z, self.p("decoder1.weight"), self.p("decoder1.bias"), padding=1))
            return f.conv2d(h, self.p("decoder2.weight"), self.p("decoder2.bias"))
        h = torch.relu(f.conv2d(f.interpolate(z, scale_factor=2), self.p("decoder1.weight"),
                                self.p("decoder1.bias"), padding=1))
        return f.conv2d(f.interpolate(h, scale_factor=2), self.p("decoder2.weight"),
                        self.p("decoder2.bias"), padding=1)  # fmt: skip

    def channel_weights(self):
        logits = self.p("channel_logits")
        return logits.shape[0] * torch.softmax(logits, dim=0)

    def distances(self, z, prototypes=None):
        """``(batch, n_prototypes, latent_mels)``: channel-weighted squared distance,
        summed over channels and averaged over latent frames, per latent mel band."""
        w = self.channel_weights()
        prototypes = self.p("prototypes") if prototypes is None else prototypes
        frames = z.shape[2]
        zz = torch.einsum("nctf,c->nf", z * z, w)
        pp = torch.einsum("jctf,c->jf", prototypes * prototypes, w)
        zp = torch.einsum("nctf,jctf,c->njf", z, prototypes, w)
        return torch.clamp(zz[:, None] + pp[None] - 2 * zp, min=0.0) / frames

    def forward(self, x, prototypes=None):
        z = self.encode(x)
        d = self.distances(z, prototypes)
        return self.head(d), z, d

    def head(self, d):
        similarity = (torch.exp(-d) * self.p("frequency_weights")[None]).sum(dim=2)
        return similarity @ self.p("head.weight").T + self.p("head.bias")

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {name: self.p(name).detach().numpy().copy() for name in PARAMETER_NAMES}


def initial_params(
    *, in_channels: int, channels: tuple[int, int], prototype_class: np.ndarray, n_classes: int,
    latent_shape: tuple[int, int], rng: np.random.Generator, encoder: str = "log-mel",
) -> dict[str, np.ndarray]:
    """He-initialised convolutions, prototypes to be set from data, a class-coupled head.

    ``in_channels`` are the channels of the encoder's input (1 for log-mel patches, 512
    for aiSFX's maps); the aisfx encoder's first convolution (and the decoder's last)
    is 1x1.
    """
    first, second = channels
    edge = 1 if encoder == "aisfx" else 3

    def conv(out, into, size=3):
        scale = np.sqrt(2.0 / (into * size * size))
        weight = rng.normal(0, scale, (out, into, size, size)).astype(np.float32)
        return weight, np.zeros(out, np.float32)

    params = {}
    params["conv1.weight"], params["conv1.bias"] = conv(first, in_channels, edge)
    params["conv2.weight"], params["conv2.bias"] = conv(second, first)
    params["decoder1.weight"], params["decoder1.bias"] = conv(first, second)
    params["decoder2.weight"], params["decoder2.bias"] = conv(in_channels, first, edge)
    n_prototypes = len(prototype_class)
    params["prototypes"] = np.zeros((n_prototypes, second, *latent_shape), np.float32)
    params["channel_logits"] = np.zeros(second, np.float32)
    params["frequency_weights"] = np.ones((n_prototypes, latent_shape[1]), np.float32)
    # As in ProtoPNet: a prototype starts as evidence for its class and against others.
    head = np.full((n_classes, n_prototypes), -0.5, np.float32)
    head[prototype_class, np.arange(n_prototypes)] = 1.0
    params["head.weight"], params["head.bias"] = head, np.zeros(n_classes, np.float32)
    return params


def train(
    params: dict[str, np.ndarray],
    X: np.ndarray,
    targets: np.ndarray,
    *,
    encoder: str = "log-mel",
    init_prototypes: bool,
    epochs: int,
    head_epochs: int,
    batch_size: int,
    learning_rate: float,
    reconstruction_weight: float,
    prototype_weight: float,
    sample_weight: float,
    seed: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[float]]:
    """Train, push every prototype onto its nearest training latent halfway and tie it to
    that latent for the rest of training, push again, then tune the head.

    Parameters
    ----------
    params : dict of np.ndarray
        Starting point (:func:`initial_params`, or a fitted network being refined).
    X : np.ndarray [shape=(n, channels, height, width), dtype=float32]
        Standardised encoder inputs: patches ``(n, 1, frames, mels)``, or aiSFX maps.
    encoder : {"log-mel", "aisfx"}
    targets : np.ndarray [shape=(n,), dtype=int64]
        Class indices.
    init_prototypes : bool
        Set each prototype to the latent of a random training patch of its class first.

    Returns
    -------
    params : dict of np.ndarray
    push_index : np.ndarray [shape=(n_prototypes,), dtype=int64]
        Row of ``X`` whose latent each prototype now equals.
    losses : list of float
        Mean training loss per epoch (both phases).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    y_all = torch.from_numpy(targets.astype(np.int64))
    network = ProtoNetwork(params, encoder)
    if init_prototypes:
        with torch.no_grad():
            owner = network.p("head.weight").argmax(dim=0).numpy()
            rows = [rng.choice(np.flatnonzero(targets == k)) for k in owner]
            network.p("prototypes").copy_(network.encode(x_all[rows]))
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    n_batches = max(1, len(X) // batch_size)
    # Short warm-up, then cosine decay: a high rate early to get anywhere, a low one late
    # to settle; a constant rate left the network underfitted.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _warm_cosine(epochs * n_batches))
    owner = torch.from_numpy(network.p("head.weight").detach().argmax(dim=0).numpy())
    losses = []
    # Free prototypes for the first half; then each is tied to the latent of the training
    # patch it was pushed onto, recomputed as the encoder learns, so the final push
    # changes nothing and the network ends trained on the real segments it will show.
    free_epochs = (epochs + 1) // 2
    anchors = None
    for epoch in range(epochs):
        if epoch == free_epochs:
            anchors = x_all[torch.from_numpy(_push(network, x_all, targets))]
        network.train()
        total = 0.0
        for batch in np.array_split(rng.permutation(len(X)), n_batches):
            x, y = x_all[batch], y_all[batch]
            tied = None if anchors is None else network.encode(anchors)
            logits, z, d = network(x, tied)
            per_prototype = d.mean(dim=2)  # (batch, n_prototypes)
            # Closeness within a class only, as the push will pick a patch of the
            # prototype's own class: each prototype near some patch of its class, each
            # patch near some prototype of its class.
            same = y[:, None] == owner[None, :]
            masked = per_prototype.masked_fill(~same, float("inf"))
            has_patch, has_prototype = same.any(dim=0), same.any(dim=1)
            loss = (
                nn.functional.cross_entropy(logits, y)
                + reconstruction_weight * nn.functional.mse_loss(network.decode(z), x)
                + (0.0 if anchors is not None else
                   prototype_weight * masked.min(dim=0).values[has_patch].sum() / len(owner))
                # (refinement may have pruned every prototype of a class)
                + sample_weight * masked.min(dim=1).values[has_prototype].sum() / len(y)
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(X))

    push_index = _push(network, x_all, targets)
    losses += _tune_head(network, x_all, y_all, head_epochs, batch_size, learning_rate, rng)
    return network.numpy_params(), push_index, losses


def _warm_cosine(total_steps: int):
    """Learning-rate factor per step: linear warm-up over a tenth, cosine decay to 1 %."""
    warm = max(1, total_steps // 10)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _push(network: ProtoNetwork, x_all, targets: np.ndarray) -> np.ndarray:
    """Replace each prototype by the nearest latent of a training patch of its class, so
    that every prototype is a real segment one can look at and listen to."""
    with torch.no_grad():
        z = _encode_all(network, x_all)
        d = network.distances(z).mean(dim=2).numpy()  # (n, n_prototypes)
        owner = network.p("head.weight").argmax(dim=0).numpy()
        push_index = np.empty(len(owner), dtype=np.int64)
        for j, k in enumerate(owner):
            candidates = np.flatnonzero(targets == k)
            if candidates.size == 0:  # a class absent from the data: nearest of any class
                candidates = np.arange(len(targets))
            push_index[j] = candidates[np.argmin(d[candidates, j])]
        network.p("prototypes").copy_(z[torch.from_numpy(push_index)])
    return push_index


def _tune_head(network, x_all, y_all, epochs, batch_size, learning_rate, rng) -> list[float]:
    """Fit channel weights, frequency weights and the head with encoder and prototypes
    frozen: the prototypes stay exactly equal to their training latents."""
    if epochs == 0:
        return []
    with torch.no_grad():
        z_all = _encode_all(network, x_all)
    names = ("channel_logits", "frequency_weights", "head.weight", "head.bias")
    tuned = [network.p(name) for name in names]
    # The rest of the network is settled: a gentle rate, not the start of a new run.
    optimiser = torch.optim.Adam(tuned, lr=learning_rate / 5)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in np.array_split(rng.permutation(len(z_all)), max(1, len(z_all) // batch_size)):
            loss = nn.functional.cross_entropy(network.head(network.distances(z_all[batch])), y_all[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(z_all))
    return losses


def _encode_all(network: ProtoNetwork, x_all, chunk: int = 256):
    network.eval()
    return torch.cat([network.encode(x_all[i : i + chunk]) for i in range(0, len(x_all), chunk)])
