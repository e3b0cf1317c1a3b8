"""Where dictionaries learn from and are measured on: per-dataset defaults and patch sets.

Defaults follow docs/method.md §1 and ../shared/reference/README.md: CIFAR-10 uses 500 atoms
of 4x4x3 at stride 2 with alpha 1.0 and 1000 steps; Imagenette (at 160x160) uses 1000 atoms of
8x8x3 at stride 4 with alpha 0.5 and 10,000 steps. Learning reads the training split; held-out
measurements read the test split (Imagenette: val), never seen by a learner.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import torch

from scfront.dictionary.patches import PatchSampler


class PatchDataset(str, enum.Enum):
    CIFAR10 = "cifar10"
    IMAGENETTE = "imagenette"


@dataclass(frozen=True)
class DatasetDefaults:
    n_atoms: int
    patch_size: int
    stride: int
    alpha: float
    faithful_steps: int
    train_split: str
    heldout_split: str
    image_size: int


DEFAULTS: dict[PatchDataset, DatasetDefaults] = {
    PatchDataset.CIFAR10: DatasetDefaults(500, 4, 2, 1.0, 1000, "train", "test", 32),
    PatchDataset.IMAGENETTE: DatasetDefaults(1000, 8, 4, 0.5, 10_000, "train", "val", 160),
}


def load_images(dataset: PatchDataset, root: Path, split: str,
                image_size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) uint8 images of ``split`` through :mod:`scfront.data` (cached decoding)."""
    from scfront.data import load_cifar10, load_imagenette

    if dataset is PatchDataset.CIFAR10:
        return load_cifar10(root, split).images
    size = image_size or DEFAULTS[dataset].image_size
    return load_imagenette(root, split, size).images


def heldout_patches(dataset: PatchDataset, root: Path, patch_size: int, stride: int,
                    n_patches: int, seed: int = 0, image_size: int | None = None) -> torch.Tensor:
    """(n_patches, p*p*3) float32 in [0, 1]: distinct seeded grid patches of the held-out split.

    The same (dataset, patch size, stride, n, seed) always gives the same patches, so every
    dictionary is measured on the same ones.
    """
    images = load_images(dataset, root, DEFAULTS[dataset].heldout_split, image_size)
    sampler = PatchSampler(images, patch_size, stride, torch.Generator().manual_seed(seed))
    return sampler.sample(min(n_patches, sampler.total), replace=False)
