"""Clean accuracy of a model on in-memory images (the per-epoch monitor and import checks), and
the reconstruction error of a frontend (stage 1 of the unsupervised defense)."""

from __future__ import annotations

import math

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


def _as_float_images(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    x = x.to(device)
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)


@torch.no_grad()
def squared_error(frontend: nn.Module, images: torch.Tensor, batch_size: int = 500,
                  device: torch.device | str = "cpu") -> float:
    """Sum over ``images`` and their pixels of ``(frontend(x) - x)²`` (float64 accumulation).

    Args:
        frontend: maps (B, C, H, W) images in [0, 1] to reconstructions of the same shape,
            evaluated as it is (call ``.eval()`` first for its test-time behaviour).
        images: (N, C, H, W) uint8 in [0, 255] or float in [0, 1], on any device.
    """
    total = 0.0
    for start in range(0, int(images.shape[0]), batch_size):
        x = _as_float_images(images[start:start + batch_size], device)
        recon = frontend(x)
        if recon.shape != x.shape:
            raise ValueError(f"the frontend returns {tuple(recon.shape)} for input {tuple(x.shape)}: "
                             "no reconstruction (the identity decoder returns codes)")
        total += float((recon.double() - x.double()).square().sum().item())
    return total


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: ``10·log10(1 / mse)`` (inf for 0)."""
    return math.inf if mse <= 0.0 else 10.0 * math.log10(1.0 / mse)


def reconstruction_error(frontend: nn.Module, images: torch.Tensor, batch_size: int = 500,
                         device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean squared error and PSNR of ``frontend``'s reconstructions of ``images``.

    ``mse`` is the mean over every pixel and channel of every image (the quantity stage 1
    minimises), ``psnr`` = :func:`psnr` of it (so it is the PSNR of the whole set, not the mean
    of per-image PSNRs). The frontend is put in eval mode for the measurement; every submodule's
    mode is restored afterwards.
    """
    if images.shape[0] == 0:
        raise ValueError("reconstruction error of an empty set is undefined")
    with eval_mode(frontend):
        mse = squared_error(frontend, images, batch_size, device) / images[0].numel() / int(images.shape[0])
    return {"mse": mse, "psnr": psnr(mse)}
