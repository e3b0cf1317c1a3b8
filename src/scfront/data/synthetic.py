"""A tiny, learnable synthetic image dataset for fast tests (no files needed).

Each class has a smooth colour pattern (a random 4x4x3 grid upsampled bilinearly); an image is
its class pattern plus Gaussian pixel noise, quantised to uint8 like a real dataset. The class
patterns come from a fixed seed, so sets drawn with different ``seed`` values (a train and a test
set) share them and a classifier trained on one generalises to the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scfront.data.dataset import ImageDataset
from scfront.errors import DatasetError
from scfront.validate import positive_int

_PATTERN_SEED = 1_000_003  # fixed: every synthetic set uses the same class patterns
_GRID = 4
_NOISE_STD = 0.2  # per-pixel noise in [0, 1] units: visible, yet each class stays separable


def class_patterns(num_classes: int, image_size: int) -> torch.Tensor:
    """(num_classes, 3, image_size, image_size) float32 in [0.15, 0.85]: the class means."""
    gen = torch.Generator().manual_seed(_PATTERN_SEED)
    grid = torch.rand(num_classes, 3, _GRID, _GRID, generator=gen)
    smooth = F.interpolate(grid, size=(image_size, image_size), mode="bilinear",
                           align_corners=False)
    return 0.15 + 0.7 * smooth


def load_synthetic(
    n: int, image_size: int = 32, num_classes: int = 10, seed: int = 0
) -> ImageDataset:
    """``n`` synthetic images as an :class:`ImageDataset` (same type as the real loaders).

    ``images``: (n, 3, image_size, image_size) uint8; ``labels``: (n,) int64, balanced over
    ``num_classes`` (counts differ by at most one), in random order; ``classes``:
    ``["class0", ...]``. Deterministic in ``seed``.
    """
    for label, value, low in (("n", n, 1), ("image_size", image_size, 4),
                              ("num_classes", num_classes, 2)):
        positive_int(value, f"load_synthetic: {label}", low, error=DatasetError)
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    patterns = class_patterns(num_classes, image_size)
    noise = torch.randn(n, 3, image_size, image_size, generator=gen) * _NOISE_STD
    images = (patterns[labels] + noise).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    classes = [f"class{i}" for i in range(num_classes)]
    return ImageDataset(images, labels.to(torch.int64), classes, name=f"synthetic/seed{seed}")
