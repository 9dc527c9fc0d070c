"""The from-scratch networks are the sizes the few-data study compares (Pons and Favory
2019: ~10 k, ~50 k, ~250 k parameters), and every architecture reads clips of any length."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from earmark.networks import ARCHITECTURES  # noqa: E402
from earmark.networks._torch_modules import build  # noqa: E402

SIZES = {"timbre": (5_000, 20_000), "vgg-small": (30_000, 80_000), "sbcnn": (150_000, 350_000)}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_from_scratch_networks_have_the_studys_sizes(name, capsys):
    module = build(name, n_classes=10, n_mels=64)
    count = sum(p.numel() for p in module.parameters())
    with capsys.disabled():
        print(f"\n{name}: {count:,} parameters (10 classes, 64 mel bands)")
    low, high = SIZES[name]
    assert low <= count <= high


@pytest.mark.parametrize("name", sorted(SIZES))
@pytest.mark.parametrize("frames", [17, 61, 250])
def test_any_clip_length_gives_one_row_of_logits(name, frames):
    module = build(name, n_classes=3, n_mels=64).eval()
    with torch.no_grad():
        out = module(torch.zeros(2, 1, frames, 64))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_aisfx_heads_read_the_frozen_maps():
    with torch.no_grad():
        top = build("aisfx-finetune", n_classes=4, n_mels=96).eval()
        assert top(torch.zeros(2, 256, 9, 12)).shape == (2, 4)
        head = build("aisfx-head", n_classes=4, n_mels=96).eval()
        assert head(torch.zeros(2, 512, 9, 12)).shape == (2, 4)
    assert set(ARCHITECTURES) == {*SIZES, "aisfx-finetune", "aisfx-head"}


def test_finetuning_keeps_the_pretrained_batch_norm_statistics():
    module = build("aisfx-finetune", n_classes=2, n_mels=96).train()
    norms = [m for m in module.block.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert module.head.training
