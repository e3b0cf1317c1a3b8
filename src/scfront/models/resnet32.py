"""Madry et al.'s CIFAR-10 ResNet-32 (pre-activation, leaky ReLU 0.1) and its variants.

The architecture is the one of the original sparse-coding-frontend code, whose checkpoints
(reference/README.md) must load with strict key matching: ``conv1``, ``block1..3`` of 5 units,
``bn1``, ``linear``; no biases in convolutions; parameter-free shortcuts (average pool by the
stride, symmetric zero channel padding). One irregularity is kept because the weights depend on
it: in the first unit of a network the unit's ``conv1`` reads the raw input and the shortcut
carries the activated input (``conv_on_raw_input`` below).

Variants (docs/method.md §4): ×10 width (160/320/640), a network reading the frontend's codes
directly (for the identity decoder), and a network with a 500-filter first layer followed by
always-on dropout.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront.models.layers import Normalize, SeededDropout, cpu_channels_last, match_channels
from scfront.models.registration import CIFAR10_MEAN, CIFAR10_STD, InputKind, register_model

LEAK = 0.1  # slope of every leaky ReLU (Madry et al.)
UNITS_PER_BLOCK = 5  # 3 blocks x 5 units x 2 convs + first conv + linear = 32 layers


class ResidualUnit(nn.Module):
    """Pre-activation residual unit: ``out = conv2(leaky(bn2(conv1(h)))) + shortcut``.

    ``h = leaky(bn1(x))``. Normally the shortcut is ``x``; with ``conv_on_raw_input`` (the first
    unit of the network) ``conv1`` reads ``x`` and the shortcut is ``h``. When the width or
    resolution changes, the shortcut is average-pooled by the stride and channel-padded.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 conv_on_raw_input: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.stride = stride
        self.out_channels = out_channels
        self.conv_on_raw_input = conv_on_raw_input
        self.init_parameters(None)

    @torch.no_grad()
    def init_parameters(self, generator: torch.Generator | None) -> None:
        """Xavier-normal unit convolutions, as the original code initialised them."""
        nn.init.xavier_normal_(self.conv1.weight, generator=generator)
        nn.init.xavier_normal_(self.conv2.weight, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.bn1(x), LEAK)
        conv_in, shortcut = (x, h) if self.conv_on_raw_input else (h, x)
        out = self.conv2(F.leaky_relu(self.bn2(self.conv1(conv_in)), LEAK))
        if self.stride > 1:
            # ceil_mode matches the strided convolution's output size on odd maps (15x15 codes);
            # on even maps it is the plain average pool of the original.
            shortcut = F.avg_pool2d(shortcut, self.stride, self.stride, ceil_mode=True)
        return out + match_channels(shortcut, self.out_channels)


class MadryResNet(nn.Module):
    """ResNet-32 family.

    Args:
        num_classes: outputs.
        widths: (first conv, block1, block2, block3) channels; (16, 16, 32, 64) is ResNet-32.
        in_channels: input channels (3 for images, n_atoms for codes).
        mean, std: input normalisation; ``None`` feeds the input unchanged (codes).
        stem_dropout: probability of the always-on dropout after the first conv (0: none);
            kept elements are not rescaled, as in the original ablation network.

    forward: x (N, in_channels, H, W) float (images in [0, 1]) -> (N, num_classes) logits,
    ``readout(features(x))`` (the feature hook of :mod:`scfront.models.features`: ``features``
    gives the (N, widths[3]) pooled activations, ``readout`` is ``linear``).
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (16, 16, 32, 64),
                 in_channels: int = 3, mean: Sequence[float] | None = CIFAR10_MEAN,
                 std: Sequence[float] | None = CIFAR10_STD, stem_dropout: float = 0.0) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 entries, got {tuple(widths)}")
        self.norm = Normalize(mean, std) if mean is not None and std is not None else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.stem_dropout = (SeededDropout(stem_dropout, always_on=True, rescale=False)
                             if stem_dropout > 0 else nn.Identity())
        self.block1 = self._block(widths[0], widths[1], stride=1, first=True)
        self.block2 = self._block(widths[1], widths[2], stride=2)
        self.block3 = self._block(widths[2], widths[3], stride=2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    @staticmethod
    def _block(in_channels: int, out_channels: int, stride: int, first: bool = False) -> nn.Sequential:
        units = [ResidualUnit(in_channels, out_channels, stride, conv_on_raw_input=first)]
        units += [ResidualUnit(out_channels, out_channels) for _ in range(UNITS_PER_BLOCK - 1)]
        return nn.Sequential(*units)

    @property
    def readout(self) -> nn.Linear:
        """The last layer (``linear``), (N, widths[3]) features -> (N, num_classes) logits."""
        return self.linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, in_channels, H, W) -> (N, widths[3]): the globally pooled final activations."""
        out = self.stem_dropout(self.conv1(self.norm(cpu_channels_last(x))))
        out = self.block3(self.block2(self.block1(out)))
        out = F.leaky_relu(self.bn1(out), LEAK)
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


@register_model(
    "resnet32", input_size=(3, 32, 32), num_params=464_154,
    description="ResNet-32 of Madry et al. as in the paper's code (widths 16/32/64)",
)
def resnet32(num_classes: int = 10) -> MadryResNet:
    return MadryResNet(num_classes)


@register_model(
    "resnet32_wide", input_size=(3, 32, 32), num_params=46_113_450,
    description="ResNet-32 widened x10 (first conv 160, blocks 160/320/640), Madry et al.",
)
def resnet32_wide(num_classes: int = 10) -> MadryResNet:
    # The original's wide network skipped its final BatchNorm; here it has the same head as
    # ResNet-32 (one architecture, one width parameter).
    return MadryResNet(num_classes, widths=(160, 160, 320, 640))


@register_model(
    "resnet32_codes", input_size=(500, 15, 15), num_params=535_722,
    input_kind=InputKind.CODES, mean=None, std=None,
    description="ResNet-32 whose first conv reads the frontend's codes (identity decoder ablation)",
)
def resnet32_codes(num_classes: int = 10, in_channels: int = 500) -> MadryResNet:
    """``in_channels``: number of atoms of the dictionary whose codes the network reads."""
    return MadryResNet(num_classes, in_channels=in_channels, mean=None, std=None)


@register_model(
    "resnet32_dropout", input_size=(3, 32, 32), num_params=547_886,
    description="ResNet-32 with a 500-filter first conv and always-on dropout (p=0.95) after it",
)
def resnet32_dropout(num_classes: int = 10, filters: int = 500, p: float = 0.95) -> MadryResNet:
    """``filters``: width of the first conv; ``p``: its always-on dropout probability."""
    return MadryResNet(num_classes, widths=(filters, 16, 32, 64), stem_dropout=p)
