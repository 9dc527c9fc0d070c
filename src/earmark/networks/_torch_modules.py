"""The torch modules of :mod:`earmark.networks.architectures` (imported only with torch).

Every module maps ``(batch, channels, time, frequency)`` inputs to class logits and ends
in global pooling, so a clip of any length (and a random crop of one) goes through.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

__all__ = ["build"]


class Timbre(nn.Module):
    """One convolution of tall filters, max over time and frequency, linear."""

    def __init__(self, n_classes: int, n_mels: int, channels: int = 32):
        super().__init__()
        height = max(1, int(round(0.8 * n_mels)))
        self.conv = nn.Conv2d(1, channels, (5, height), padding=(2, 0))
        self.norm = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x):
        h = functional.relu(self.norm(self.conv(x)))
        return self.head(self.dropout(torch.amax(h, dim=(2, 3))))


class VGGSmall(nn.Module):
    """Four 3x3 conv blocks with batch norm and 2x2 pooling, global max, linear."""

    def __init__(self, n_classes: int, n_mels: int, channels=(16, 32, 48, 64)):
        super().__init__()
        layers, previous = [], 1
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]  # fmt: skip
            previous = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(previous, n_classes)

    def forward(self, x):
        return self.head(self.dropout(torch.amax(self.features(x), dim=(2, 3))))


class SBCNN(nn.Module):
    """Three 5x5 convolutions (pooled 2x2 after the first two), dense 64, linear."""

    def __init__(self, n_classes: int, n_mels: int, channels=(32, 64, 128), hidden: int = 64):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, a, 5, padding=2), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(a, b, 5, padding=2), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(b, c, 5, padding=2), nn.BatchNorm2d(c), nn.ReLU(),
        )  # fmt: skip
        self.dense = nn.Linear(c, hidden)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        h = torch.amax(self.features(x), dim=(2, 3))
        return self.head(self.dropout(functional.relu(self.dense(self.dropout(h)))))


class AisfxTop(nn.Module):
    """aiSFX's last conv block (weights from the checkpoint when fitting) and a new head.

    Pooling as the backend's embedding: mean over frequency, max over time. The block's
    batch norms keep their pretrained statistics (see :meth:`train`): a few hundred clips
    in batches of 32 would only make them noisy.
    """

    def __init__(self, n_classes: int, n_mels: int):
        super().__init__()
        # Untrained here; the weights come from the checkpoint (fit) or the model file (load).
        self.block = _aisfx_block_like()
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(512, n_classes)

    def start_from_checkpoint(self) -> None:
        from ..backends.aisfx import pretrained_network

        self.block.load_state_dict(pretrained_network().conv_block4.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.block.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def pooled(self, x):
        """The backend's clip embedding of these maps: 512 numbers per input."""
        return torch.amax(self.block(x, pool=False).mean(dim=3), dim=2)

    def forward(self, x):
        return self.head(self.dropout(self.pooled(x)))


class AisfxHead(nn.Module):
    """A new head on aiSFX's frozen last-block maps: 1x1 conv to 128, pooling, linear."""

    def __init__(self, n_classes: int, n_mels: int, channels: int = 128):
        super().__init__()
        self.reduce = nn.Conv2d(512, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x):
        h = functional.relu(self.norm(self.reduce(x)))
        return self.head(self.dropout(torch.amax(h.mean(dim=3), dim=2)))


def _aisfx_block_like():
    """An untrained block of aiSFX's shape (256 -> 512 channels), without loading weights."""

    class ConvBlock(nn.Module):
        # Same names and shapes as aiSFX's conv_block4 (earmark.backends.aisfx).
        def __init__(self, in_channels: int = 256, out_channels: int = 512):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.bn2 = nn.BatchNorm2d(out_channels)

        def forward(self, x, pool: bool = False):
            x = functional.relu(self.bn1(self.conv1(x)))
            return functional.relu(self.bn2(self.conv2(x)))

    return ConvBlock()


_MODULES = {"timbre": Timbre, "vgg-small": VGGSmall, "sbcnn": SBCNN,
            "aisfx-finetune": AisfxTop, "aisfx-head": AisfxHead}  # fmt: skip


def build(architecture: str, *, n_classes: int, n_mels: int) -> nn.Module:
    """An untrained module of ``architecture`` for ``n_classes`` (``n_mels``: input bands)."""
    return _MODULES[architecture](n_classes, n_mels)
