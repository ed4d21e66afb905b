"""DynaFed's ConvNet (Pi et al., CVPR 2023), the ConvNet of GPT-FL's Table 2.

DynaFed takes it from Dataset Condensation (Zhao et al., ICLR 2021, `utils.ConvNet`):
`depth` blocks of conv3x3(width) -> norm -> ReLU -> avgpool2, then one linear layer; width 128,
depth 3, instance norm (GroupNorm with one group per channel, affine). As there, a 1-channel
28x28 input gets padding 3 on the first conv so MNIST is treated as 32x32. Pooling stops at
1x1 so that tiny inputs (8x8 digits) still fit three blocks.
"""

from __future__ import annotations

from torch import nn

from gptfl_ray.models.norms import norm2d


class ConvNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        norm: str = "instance",
        width: int = 128,
        depth: int = 3,
    ):
        super().__init__()
        channels, h, w = input_shape
        layers: list[nn.Module] = []
        for d in range(depth):
            pad = 3 if d == 0 and channels == 1 and (h, w) == (28, 28) else 1
            layers.append(nn.Conv2d(channels if d == 0 else width, width, 3, padding=pad))
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            layers += [norm2d(norm, width), nn.ReLU(inplace=True)]
            if h >= 2 and w >= 2:
                layers.append(nn.AvgPool2d(2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
