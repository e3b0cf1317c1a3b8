"""The in-memory image dataset every loader returns."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from scfront.errors import DatasetError


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """A whole image classification split held as tensors (the airbench approach: batches are
    sliced from these tensors, see :func:`scfront.data.batches`, not decoded per item).

    Attributes:
        images: (N, 3, H, W) uint8 tensor, RGB, values 0..255.
        labels: (N,) int64 tensor, values in [0, len(classes)).
        classes: class names, label order.
        name: dataset name and split, for logs and reports (e.g. ``"cifar10/test"``).

    ``dataset[i]`` is ``(image, label)`` with ``image`` a (3, H, W) float32 tensor in [0, 1].
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str = ""
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DatasetError(
                f"images must be a uint8 tensor (N, 3, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DatasetError(
                f"labels must be a 1-D tensor of length {images.shape[0]}, got "
                f"{tuple(labels.shape)}"
            )
        labels = labels.to(torch.int64)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise DatasetError(f"labels must lie in [0, {len(classes)}), got "
                               f"[{int(labels.min())}, {int(labels.max())}]")
        self.images = images
        self.labels = labels
        self.classes = list(classes)
        self.name = name

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].to(torch.float32).div_(255.0), int(self.labels[index])

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        return (f"ImageDataset({self.name or 'unnamed'}: {n} images 3x{h}x{w}, "
                f"{len(self.classes)} classes)")

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageDataset":
        """A new dataset with the items at ``indices`` (in that order)."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.name)

    def counts(self) -> list[int]:
        """Number of images per class, label order."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()
