"""VGG-19 (Simonyan & Zisserman, ICLR 2015, configuration E), GPT-FL's Table 2 / Figure 2 model.

Built here rather than from torchvision, whose 7x7 adaptive pool and 4096-wide classifier
(about 120M parameters) target 224 px ImageNet. This is the usual CIFAR VGG (e.g. Fu's
pytorch-vgg-cifar10, which Fed-ET-style FL code follows): the 16 conv layers, then a
512-512-classes classifier over the flattened feature map (512 features at 32 px, 2048 at
64 px). Max-pools that would shrink a map below 1x1 are skipped, so 8x8 and 28x28 inputs work.
Norm defaults to BatchNorm (vgg19_bn); `none` is plain VGG-19, `group` the FL-friendly option.
"""

from __future__ import annotations

from torch import nn

from gptfl_ray.models.norms import norm2d

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        norm: str = "batch",
        cfg: tuple = VGG19_CFG,
        hidden: int = 512,
    ):
        super().__init__()
        channels, h, w = input_shape
        layers: list[nn.Module] = []
        for v in cfg:
            if v == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                continue
            layers += [nn.Conv2d(channels, v, 3, padding=1), norm2d(norm, v), nn.ReLU(inplace=True)]
            channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * h * w, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x))
