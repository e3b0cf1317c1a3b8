"""Tiny seeded models for the evaluation tests (8x8 RGB inputs, 10 classes)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(seed: int = 0) -> nn.Module:
    """A 192-32-10 ReLU MLP with N(0, 0.3²) weights from ``seed``, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


class Quantized(nn.Module):
    """A gradient-masked model: a rounding front (zero gradient everywhere) before ``mlp(1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 4) / 4)
