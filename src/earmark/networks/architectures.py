"""The networks earmark trains on a user's clips, by name, and what each one reads.

After Pons and Favory's study of audio classifiers trained with few data (ICASSP 2019),
which compares, as a function of examples per class, small strongly regularised networks
trained from scratch on log-mel spectrograms against transfer learning from a pretrained
network. Three from-scratch sizes (parameter counts for 10 classes; printed by
``tests/networks/test_architectures.py``):

- ``timbre`` (~10 k): one convolution layer of tall filters (5 frames x 80 % of the mel
  bands), as Pons's "timbre" CNN, max-pooled over time and frequency, then a linear
  layer;
- ``vgg-small`` (~50 k): four 3x3 convolution blocks (16, 32, 48, 64 channels) with
  batch norm and 2x2 max pooling, global max pooling, linear;
- ``sbcnn`` (~250 k): SB-CNN's three 5x5 convolutions (Salamon and Bello 2017) widened
  to 32, 64 and 128 channels, global max pooling, a 64-unit dense layer, linear.

All three end in global pooling, so they read clips of any length; all use dropout 0.5
before their last layer. Their input is a 64-band log-mel in decibels (16 kHz, 1024-point
FFT, 20 ms hop), standardised by the training set's mean and spread.

And transfer from aiSFX (:class:`earmark.backends.aisfx.AisfxBackend`, 4.7 M parameters):

- ``aisfx-finetune``: the pretrained network's last convolution block (3.5 M parameters)
  is trained on the user's clips, starting from its pretrained weights, with a new
  linear head on its pooled output (mean over frequency, max over time, as the backend
  pools), first fitted alone on the frozen output (a linear probe), then trained with
  the block; the three blocks below stay frozen and their output is computed once per clip
  (the ``aisfx-block3`` front end), so an epoch costs one block, not four;
- ``aisfx-head``: everything pretrained stays frozen; a new head (a 1x1 convolution to
  128 channels, the same pooling, dropout, linear) learns on the last block's maps
  (``aisfx-block4``), with the same augmentation: minutes on CPU where fine-tuning takes
  tens of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ParameterError

__all__ = ["ARCHITECTURES", "Architecture", "check_architecture"]


@dataclass(frozen=True)
class Architecture:
    """One network: its front end, and how it trains by default.

    Attributes
    ----------
    name : str
    description : str
    frontend : str
        What a clip becomes before the trained layers (:data:`earmark.networks.FRONTENDS`).
    learning_rate, weight_decay : float
        AdamW's defaults for it: pretrained weights move gently; from-scratch ones start
        faster and are held back harder.
    epochs : int
        At most this many passes (early stopping usually ends sooner).
    patience : int
        Epochs without a better validation accuracy (or, at equal accuracy, loss) before
        stopping, counted after the first quarter of the epochs.
    crop : float
        Fraction of a clip's length each training crop keeps.
    pretrained : bool
        Starts from aiSFX's weights (needs the aisfx wheel to fit and to predict).
    mixup : float
        Beta parameter of mixup by default (0: none).
    masks : int
        SpecAugment-style time and frequency masks per clip by default.

    The networks from scratch train without crops, masks or mixup by default (random
    gain and dropout stay). Measured with vgg-small on one group split of Philharmonia
    (120 epochs, no early stopping): with crops of 80 %, two masks and mixup 0.2 the
    training loss was still 1.6 (ln 12 = 2.48) and validation accuracy at most 0.23,
    and the epoch early stopping kept left it at 5 % on the test groups; without them,
    71.9 % on the test groups (training loss 0.16), level with fine-tuned aiSFX. On the
    bundled digits the same augmentations held training accuracy at 0.14 against 0.66.
    """

    name: str
    description: str
    frontend: str
    learning_rate: float
    weight_decay: float
    epochs: int
    patience: int
    crop: float
    pretrained: bool = False
    mixup: float = 0.2
    masks: int = 2


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a for a in (
        Architecture("timbre", "one layer of tall (timbre) filters on log-mel, ~10 k parameters",
                     "log-mel", 3e-3, 1e-2, 120, 20, 1.0, mixup=0.0, masks=0),
        Architecture("vgg-small", "four 3x3 conv blocks (16-64 channels) on log-mel, ~50 k parameters",
                     "log-mel", 3e-3, 1e-2, 120, 20, 1.0, mixup=0.0, masks=0),
        Architecture("sbcnn", "SB-CNN-like: three 5x5 convs (32-128) and a dense layer, ~250 k parameters",
                     "log-mel", 2e-3, 1e-2, 120, 20, 1.0, mixup=0.0, masks=0),
        Architecture("aisfx-finetune", "aiSFX's last block fine-tuned (lower blocks frozen, cached) "
                     "and a new linear head", "aisfx-block3", 1e-4, 1e-2, 5, 2, 0.6, pretrained=True),
        Architecture("aisfx-head", "a new head on aiSFX's frozen last-block maps (1x1 conv, "
                     "pooling, linear)", "aisfx-block4", 1e-3, 1e-2, 40, 8, 0.8, pretrained=True),
    )
}  # fmt: skip


def check_architecture(name: str) -> Architecture:
    """The :class:`Architecture` called ``name``.

    Raises
    ------
    ParameterError
        For an unknown name, listing the known ones.
    """
    if name not in ARCHITECTURES:
        raise ParameterError(f"unknown network {name!r}; expected one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
