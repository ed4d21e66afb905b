"""The batched crop of augment_batch equals cropping every sample on its own with the same draws."""

import pytest
import torch
import torch.nn.functional as F

from gptfl_ray.pretrain.augment import NO_FLIP, augment_batch


def per_sample(x: torch.Tensor, dataset: str, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    pad = 1 if h <= 16 else 4
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if dataset not in NO_FLIP:
        flip = torch.rand(n, generator=gen) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


@pytest.mark.parametrize(
    "shape,dataset",
    [((64, 1, 8, 8), "digits"), ((16, 3, 32, 32), "cifar10"), ((5, 2, 20, 17), "cifar10"), ((1, 1, 8, 8), "mnist")],
)
def test_batched_crop_equals_per_sample_crop(shape, dataset):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    got = augment_batch(x, dataset, "image", torch.Generator().manual_seed(7))
    want = per_sample(x, dataset, torch.Generator().manual_seed(7))
    assert got.shape == x.shape
    assert torch.equal(got, want)
    assert not torch.equal(got, x)  # the draws moved something
