"""Datasets as in-memory tensors, and fast batched augmentation.

- :func:`load_cifar10` (PNG folders, python batches or tarball), :func:`load_imagenette`,
  :func:`load_synthetic`; all return an :class:`ImageDataset` (``images`` uint8 (N, 3, H, W),
  ``labels`` int64 (N,), ``classes``; items ``(float32 (3, H, W) in [0, 1], int)``).
- :func:`load_dataset` picks one from a :class:`scfront.config.DataConfig`.
- :func:`eval_subset_indices` / :func:`eval_subset`: the fixed seeded evaluation subset.
- :func:`random_crop_flip` and :func:`batches`: augmentation and iteration on whole batches.

Names are imported lazily (PEP 562) so that ``scfront --help`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_EXPORTS = {
    "ImageDataset": "scfront.data.dataset",
    "load_cifar10": "scfront.data.cifar10",
    "find_cifar10": "scfront.data.cifar10",
    "load_imagenette": "scfront.data.imagenette",
    "load_synthetic": "scfront.data.synthetic",
    "load_dataset": "scfront.data.select",
    "eval_subset_indices": "scfront.data.select",
    "eval_subset": "scfront.data.select",
    "random_crop_flip": "scfront.data.augment",
    "batches": "scfront.data.augment",
    "Batches": "scfront.data.augment",
    "resolve_dataset_dir": "scfront.data.layout",
    "cache_dir": "scfront.data.cache",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scfront.data.augment import Batches, batches, random_crop_flip
    from scfront.data.cache import cache_dir
    from scfront.data.cifar10 import find_cifar10, load_cifar10
    from scfront.data.dataset import ImageDataset
    from scfront.data.imagenette import load_imagenette
    from scfront.data.layout import resolve_dataset_dir
    from scfront.data.select import eval_subset, eval_subset_indices, load_dataset
    from scfront.data.synthetic import load_synthetic


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
