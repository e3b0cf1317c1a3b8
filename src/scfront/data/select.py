"""Choosing data from a configuration: the dataset, its training subset, the evaluation subset."""

from __future__ import annotations

from pathlib import Path

import torch

from scfront.config import DataConfig, DatasetName
from scfront.data.cifar10 import IMAGE_SIZE as CIFAR10_SIZE
from scfront.data.cifar10 import load_cifar10
from scfront.data.dataset import ImageDataset
from scfront.data.imagenette import load_imagenette
from scfront.data.synthetic import load_synthetic
from scfront.errors import ConfigError, DatasetError

# (size, seed) of the synthetic splits; train_limit still applies to the training split.
SYNTHETIC_SPLITS = {"train": (2048, 0), "test": (512, 1)}
# Generic code asks for "train" / "test"; Imagenette calls its held-out split "val".
_IMAGENETTE_SPLIT = {"train": "train", "test": "val", "val": "val"}


def load_dataset(data_config: DataConfig, root: str | Path | None, split: str) -> ImageDataset:
    """The ``split`` ("train" or "test") of ``data_config.dataset`` under ``root``.

    For the training split with ``data_config.train_limit`` set, a seeded random subset of that
    many images (``torch.Generator`` seeded with ``data_config.subset_seed``), kept in dataset
    order. Imagenette's "val" split is returned for "test". ``root`` is ignored (may be None)
    for the synthetic dataset.
    """
    name = data_config.dataset  # a DatasetName: DataConfig converts it when built
    if name is DatasetName.SYNTHETIC:
        if split not in SYNTHETIC_SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of train, test")
        # Different seeds per split, same class patterns (see scfront.data.synthetic).
        size, seed = SYNTHETIC_SPLITS[split]
        dataset = load_synthetic(size, data_config.image_size, seed=seed)
    elif root is None:
        raise DatasetError(f"{name.value} needs a data root (--data-root or SCFRONT_DATA)")
    elif name is DatasetName.CIFAR10:
        if data_config.image_size != CIFAR10_SIZE:
            raise ConfigError(f"data.image_size must be {CIFAR10_SIZE} for cifar10, got "
                              f"{data_config.image_size}")
        dataset = load_cifar10(root, split)
    else:
        if split not in _IMAGENETTE_SPLIT:
            raise DatasetError(
                f"unknown imagenette split {split!r}; choose one of train, test, val"
            )
        dataset = load_imagenette(root, _IMAGENETTE_SPLIT[split], data_config.image_size)
    limit = data_config.train_limit
    if split == "train" and limit is not None and limit < len(dataset):
        if limit < 1:
            raise ConfigError(f"data.train_limit must be >= 1 or none, got {limit}")
        gen = torch.Generator().manual_seed(data_config.subset_seed)
        keep = torch.randperm(len(dataset), generator=gen)[:limit].sort().values
        dataset = dataset.subset(keep)
    return dataset


def eval_subset_indices(n_total: int, n: int, seed: int = 0) -> torch.Tensor:
    """The fixed evaluation subset (docs/evaluation.md §2): ``randperm(n_total, seed)[:n]``, (n,) int64.

    Every model and attack is measured on these indices of the test set in contract order.
    """
    if n < 1 or n > n_total:
        raise DatasetError(f"cannot select {n} evaluation images from a set of {n_total}")
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


def eval_subset(dataset: ImageDataset, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (n, 3, H, W) float32 in [0, 1], labels (n,) int64)`` at
    :func:`eval_subset_indices`, in that (random) order."""
    index = eval_subset_indices(len(dataset), n, seed)
    return dataset.images[index].to(torch.float32).div_(255.0), dataset.labels[index].clone()
