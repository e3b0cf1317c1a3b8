"""Batched augmentation and batch iteration over whole-dataset tensors.

Following hlb-CIFAR10 / airbench, the training set lives in memory as one uint8 tensor and each
batch is sliced, moved to the device, converted and augmented as a whole: no per-image Python
or PIL work in the training loop. The augmentation is the standard CIFAR one that the original
code used (random crop of the zero-padded image, padding 4, and horizontal flip with
probability 1/2, docs/method.md §5).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from scfront import sampling
from scfront.errors import InputError


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop of the zero-padded batch, then random horizontal flip, per image.

    Args:
        x: (B, C, H, W) float or uint8 tensor (any value range; padding adds zeros).
        padding: zero padding on each side; each image is shifted by an independent offset in
            [-padding, padding] along each axis. 0 disables the crop.
        generator: source of randomness (a CPU or device ``torch.Generator``, drawn on its own
            device: :mod:`scfront.sampling`); None uses the global generator.
        flip: also mirror each image left-right with probability 1/2.

    Returns:
        a new (B, C, H, W) tensor of ``x``'s dtype and device. Vectorised: one gather for the
        whole batch.
    """
    if x.ndim != 4:
        raise InputError(f"random_crop_flip expects (B, C, H, W), got shape {tuple(x.shape)}")
    if padding < 0:
        raise InputError(f"padding must be >= 0, got {padding}")
    b, c, h, w = x.shape
    dy = sampling.randint(2 * padding + 1, (b,), generator, x.device)
    dx = sampling.randint(2 * padding + 1, (b,), generator, x.device)
    cols = torch.arange(w, device=x.device).expand(b, w)
    if flip:
        mirrored = sampling.randint(2, (b,), generator, x.device).bool()
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H) rows of the padded image
    cols = dx[:, None] + cols  # (B, W)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    # Flat index of padded pixel (row, col) in each padded image: one gather does crop and flip.
    wp = w + 2 * padding
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, index).reshape(b, c, h, w)


class Batches:
    """Iterable of ``(x, y)`` batches from whole-dataset tensors; re-iterable (one epoch each).

    ``x``: (B, 3, H, W) float32 in [0, 1] on ``device``; ``y``: (B,) int64 on ``device``.
    Each iteration with ``shuffle`` draws a new permutation from ``generator``.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
        shuffle: bool = False, generator: torch.Generator | None = None, augment: bool = False,
        padding: int = 4, drop_last: bool = False, device: torch.device | str | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise InputError(f"images must be a uint8 (N, C, H, W) tensor, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise InputError(f"labels must have shape ({images.shape[0]},), got "
                             f"{tuple(labels.shape)}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self.augment, self.padding, self.drop_last = augment, padding, drop_last
        self.device = torch.device(device) if device is not None else images.device

    def __len__(self) -> int:
        n = int(self.images.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = int(self.images.shape[0])
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self._gen_device())
            order = order.to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        pin = self.device.type == "cuda" and self.images.device.type == "cpu"
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            xb, yb = self.images[index], self.labels[index]
            if pin:
                xb, yb = xb.pin_memory(), yb.pin_memory()
            # Move as uint8 (4x less traffic), convert on the device.
            xb = xb.to(self.device, non_blocking=pin).to(torch.float32).div_(255.0)
            yb = yb.to(self.device, non_blocking=pin)
            if self.augment:
                xb = random_crop_flip(xb, self.padding, self.generator)
            yield xb, yb

    def _gen_device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")


def batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool = False,
    generator: torch.Generator | None = None, augment: bool = False, drop_last: bool = False,
    device: torch.device | str | None = None, padding: int = 4,
) -> Batches:
    """Batches of ``images`` ((N, 3, H, W) uint8) and ``labels`` ((N,) int64) as float32
    [0, 1] tensors on ``device``, optionally shuffled and augmented (:func:`random_crop_flip`
    with ``padding``); see :class:`Batches`. ``len()`` is the number of batches per epoch."""
    return Batches(images, labels, batch_size, shuffle=shuffle, generator=generator,
                   augment=augment, padding=padding, drop_last=drop_last, device=device)
