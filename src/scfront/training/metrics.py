"""Clean accuracy of a model on in-memory images (the per-epoch monitor and import checks)."""

from __future__ import annotations

import torch
from torch import nn

from scfront.models.layers import eval_mode


@torch.no_grad()
def count_correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int = 500, device: torch.device | str = "cpu") -> int:
    """Number of ``images`` whose arg-max prediction equals ``labels``.

    Args:
        model: evaluated as it is (call ``.eval()`` first for inference statistics).
        images: (N, 3, H, W) uint8 in [0, 255] or float in [0, 1], on any device.
        labels: (N,) int64.
        batch_size: images per forward pass.
        device: where the forward passes run.
    """
    correct = 0
    for start in range(0, int(images.shape[0]), batch_size):
        x = images[start:start + batch_size].to(device)
        x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
        y = labels[start:start + batch_size].to(device)
        correct += int((model(x).argmax(dim=1) == y).sum().item())
    return correct


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 500, device: torch.device | str = "cpu") -> float:
    """Fraction in [0, 1] of correctly classified ``images`` (see :func:`count_correct`).

    The model is switched to eval mode for the measurement; every submodule's mode is restored
    afterwards.
    """
    if images.shape[0] == 0:
        raise ValueError("accuracy of an empty set is undefined")
    with eval_mode(model):
        return count_correct(model, images, labels, batch_size, device) / int(images.shape[0])
