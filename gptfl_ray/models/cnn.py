"""`cnn`: the small CNN of the embedded default (8x8 digits), and `mlp`, a tiny net for tests.

Sized for 2-core CPUs: about 21k parameters on 1x8x8 input, no BatchNorm so that
non-IID averaging has no running statistics to spoil. Larger inputs are average-pooled to
4x4 before the classifier, so the parameter count does not grow with image size.
"""

from __future__ import annotations

import math

from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 16, hidden: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.net(x)
