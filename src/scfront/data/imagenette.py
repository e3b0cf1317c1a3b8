"""Imagenette (fast.ai): 10 easy ImageNet classes, ``{train,val}/<wnid>/*.JPEG``.

The paper trains on Imagenette at 160x160 (docs/method.md §1: 8x8x3 atoms at stride 4). Images
are resized so the shorter side is ``image_size`` (bilinear, antialiased) and center-cropped to
``image_size`` x ``image_size``, once, at load time; the resulting uint8 arrays are cached.
The shared copy is a 4,000 / 1,500 subset re-encoded at 224x224 (shared/datasets/README.md),
not the imagenette2-160 release: results on it must say so.
"""

from __future__ import annotations

from pathlib import Path

from scfront.data.dataset import ImageDataset
from scfront.data.decode import DecodeMode
from scfront.data.folders import load_folder_split
from scfront.data.layout import IMAGENETTE_FOLDERS, resolve_dataset_dir
from scfront.errors import DatasetError
from scfront.validate import positive_int

SPLITS = IMAGENETTE_FOLDERS.splits
DEFAULT_IMAGE_SIZE = 160  # the paper's Imagenette resolution


def load_imagenette(
    root: str | Path, split: str, image_size: int = DEFAULT_IMAGE_SIZE, *, use_cache: bool = True
) -> ImageDataset:
    """Imagenette split ``split`` ("train" or "val") under ``root`` (the ``imagenette`` folder
    or the data root holding it).

    Returns an :class:`ImageDataset`: ``images`` (N, 3, image_size, image_size) uint8,
    ``labels`` (N,) int64 = index of the sorted wnid, ``classes`` the 10 wnids; order = label,
    then file name.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown imagenette split {split!r}; choose one of {', '.join(SPLITS)}")
    positive_int(image_size, "image_size", 8, error=DatasetError)
    dataset_dir = resolve_dataset_dir(root, IMAGENETTE_FOLDERS.name)
    return load_folder_split(dataset_dir, split, IMAGENETTE_FOLDERS, image_size,
                             DecodeMode.RESIZE_CROP, use_cache=use_cache)
