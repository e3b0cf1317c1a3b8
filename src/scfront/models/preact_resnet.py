"""Pre-activation ResNet-101 with bottleneck units (He et al., "Identity Mappings in Deep
Residual Networks", 2016), CIFAR-style stem (3x3 conv, stride 1), stages [3, 4, 23, 3] of widths
64/128/256/512 (x4 expansion). One of the classifiers of docs/method.md §4.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront.models.layers import Normalize, cpu_channels_last
from scfront.models.registration import CIFAR10_MEAN, CIFAR10_STD, register_model

EXPANSION = 4


class PreActBottleneck(nn.Module):
    """``h = relu(bn1(x))``; 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), each after BN-ReLU.

    The shortcut is ``x``, or a strided 1x1 conv of ``h`` where the shape changes.
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(h)
        out = self.conv1(h)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Bottleneck pre-activation ResNet.

    Args:
        num_classes: outputs.
        depths: units per stage ([3, 4, 23, 3] = ResNet-101).
        widths: bottleneck widths per stage (outputs are 4x).
        mean, std: input normalisation (the model takes images in [0, 1]).

    forward: x (N, 3, H, W) float in [0, 1] -> (N, num_classes) logits, ``readout(features(x))``
    (the feature hook of :mod:`scfront.models.features`; features (N, 4·widths[-1])).
    """

    def __init__(self, num_classes: int = 10, depths: Sequence[int] = (3, 4, 23, 3),
                 widths: Sequence[int] = (64, 128, 256, 512),
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        self.norm = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        stages = []
        channels = widths[0]
        for index, (depth, width) in enumerate(zip(depths, widths)):
            units = []
            for unit in range(depth):
                stride = 2 if index > 0 and unit == 0 else 1
                units.append(PreActBottleneck(channels, width, stride))
                channels = width * EXPANSION
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        # Pre-activation units leave the last output un-normalised: a final BN-ReLU, as in
        # He et al. (the original code omitted it).
        self.bn = nn.BatchNorm2d(channels)
        self.linear = nn.Linear(channels, num_classes)

    @property
    def readout(self) -> nn.Linear:
        """The last layer (``linear``), (N, 4·widths[-1]) features -> (N, num_classes) logits."""
        return self.linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) in [0, 1] -> (N, 4·widths[-1]): the globally pooled final activations."""
        out = self.stages(self.conv1(self.norm(cpu_channels_last(x))))
        out = F.relu(self.bn(out))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


@register_model(
    "preact_resnet101", input_size=(3, 32, 32), num_params=42_505_290,
    description="Pre-activation bottleneck ResNet-101 [3, 4, 23, 3] (He et al. 2016)",
)
def preact_resnet101(num_classes: int = 10) -> PreActResNet:
    return PreActResNet(num_classes)
