"""ResNet-18/50 (He et al., CVPR 2016) from torchvision, as in GPT-FL's Tables 3 and 4.

Inputs of 64 px or less get the CIFAR stem (3x3 conv, stride 1, no max-pool; He et al.
section 4.2): ImageNet's 7x7/2 conv plus max-pool would shrink a 32x32 image to 8x8 before
the first block. `norm="group"` swaps every BatchNorm for GroupNorm, the usual choice for
non-IID FL (see models/norms.py). The first conv always takes the data set's channel count.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18, resnet50

from gptfl_ray.models.norms import norm2d

CIFAR_STEM_MAX_PX = 64
_FACTORIES = {"resnet18": resnet18, "resnet50": resnet50}


def build_resnet(
    depth_name: str, input_shape: tuple[int, int, int], num_classes: int, norm: str = "batch"
) -> nn.Module:
    channels, h, w = input_shape
    model = _FACTORIES[depth_name](weights=None, num_classes=num_classes, norm_layer=lambda c: norm2d(norm, c))
    if max(h, w) <= CIFAR_STEM_MAX_PX:
        model.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
    # Same init torchvision gives its own convs; the replaced stem would otherwise differ.
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
