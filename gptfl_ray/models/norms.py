"""Normalisation layers by name, shared by every model family.

`batch` is the torchvision default; `group` (GroupNorm, Wu & He 2018, 32 groups or fewer) is the
choice for non-IID FL: BatchNorm's running statistics average badly across clients whose label
distributions differ (Hsieh et al. 2020, "The Non-IID Data Quagmire"); `instance` is DynaFed's
ConvNet norm (GroupNorm with one group per channel, affine), `none` leaves it out.
"""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "group", "instance", "none")


def norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")
