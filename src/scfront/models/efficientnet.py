"""EfficientNet-B0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019).

Written from the paper's Table 1: a 3x3 stride-2 stem of 32 channels, seven stages of
mobile inverted bottlenecks (MBConv) with squeeze-and-excitation (ratio 0.25 of the block's
input channels) and SiLU ("swish") activations, a 1x1 head of 1280 channels, global average
pooling, dropout 0.2 and a linear layer. BatchNorm uses the TensorFlow reference's eps 1e-3
but PyTorch's default running-average momentum 0.1, not the reference's 0.01: with 4,000
Imagenette images (31 steps per epoch) the slow average lagged the weights so far that the
eval-mode network predicted one class (9.7 % monitor accuracy at 66 % train accuracy after 10
epochs; the same weights with re-estimated statistics scored 66.5 %). The momentum only
affects the running statistics, never the training-mode forward pass. "Same" padding is approximated by symmetric ``k // 2`` padding and stochastic
depth is left out (it is a regulariser of long ImageNet runs, not part of the architecture).

``stem_stride=1`` keeps 32x32 inputs at a useful resolution (the network downsamples 32x
otherwise); the default is the paper's 2, suited to 160x160 Imagenette.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront.models.layers import Normalize, SeededDropout, cpu_channels_last
from scfront.models.registration import CIFAR10_MEAN, CIFAR10_STD, register_model

# (expansion, kernel, stride, output channels, repeats) per stage: EfficientNet-B0, Table 1.
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
BN_MOMENTUM = 0.1
BN_EPS = 1e-3


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM, eps=BN_EPS),
    )


class SqueezeExcite(nn.Module):
    """Channel gating: ``x * sigmoid(W2 silu(W1 mean_hw(x)))``."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.silu(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, SE, 1x1 project (linear)."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = _conv_bn(in_ch, hidden, 1) if expansion != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.se = SqueezeExcite(hidden, max(1, in_ch // 4))
        self.project = _conv_bn(hidden, out_ch, 1)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else F.silu(self.expand(x))
        out = self.se(F.silu(self.depthwise(out)))
        out = self.project(out)
        return out + x if self.residual else out


class EfficientNet(nn.Module):
    """EfficientNet with the B0 stage table.

    Args:
        num_classes: outputs.
        stem_stride: stride of the first conv (2 in the paper).
        dropout: probability of the dropout before the classifier (0.2 for B0).
        mean, std: input normalisation.

    forward: x (N, 3, H, W) float in [0, 1] -> (N, num_classes) logits, ``readout(features(x))``
    (the feature hook of :mod:`scfront.models.features`; features (N, 1280), after the dropout).
    """

    def __init__(self, num_classes: int = 10, stem_stride: int = 2, dropout: float = 0.2,
                 stages: Sequence[tuple[int, int, int, int, int]] = B0_STAGES,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        self.norm = Normalize(mean, std)
        self.stem = _conv_bn(3, 32, 3, stem_stride)
        blocks = []
        channels = 32
        for expansion, kernel, stride, out_ch, repeats in stages:
            for index in range(repeats):
                blocks.append(MBConv(channels, out_ch, expansion, kernel, stride if index == 0 else 1))
                channels = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(channels, 1280, 1)
        self.dropout = SeededDropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    @property
    def readout(self) -> nn.Linear:
        """The last layer (``classifier``), (N, 1280) features -> (N, num_classes) logits."""
        return self.classifier

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) in [0, 1] -> (N, 1280): pooled head activations, then the dropout
        (the identity in eval mode)."""
        out = F.silu(self.stem(self.norm(cpu_channels_last(x))))
        out = F.silu(self.head(self.blocks(out)))
        return self.dropout(out.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    "efficientnet_b0", input_size=(3, 160, 160), num_params=4_020_358,
    description="EfficientNet-B0 (Tan & Le 2019), SE + SiLU, written from the paper's table",
)
def efficientnet_b0(num_classes: int = 10, stem_stride: int = 2, dropout: float = 0.2) -> EfficientNet:
    return EfficientNet(num_classes, stem_stride=stem_stride, dropout=dropout)
