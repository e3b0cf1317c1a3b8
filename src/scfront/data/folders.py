"""Loading one split of a ``<split>/<class>/<file>`` image folder, through the array cache."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from scfront.data import cache
from scfront.data.dataset import ImageDataset
from scfront.data.decode import DecodeMode, decode_images
from scfront.data.layout import FolderListing, FolderSpec, list_split

log = logging.getLogger(__name__)


def load_folder_split(
    dataset_dir: Path,
    split: str,
    spec: FolderSpec,
    size: int,
    mode: DecodeMode,
    *,
    use_cache: bool = True,
) -> ImageDataset:
    """Split ``split`` of the folder dataset at ``dataset_dir`` as an :class:`ImageDataset`.

    Order: class index, then file name (docs/architecture.md §2). Images are ``size`` x ``size`` (``mode``
    says whether files must already have that size or are resized and cropped to it). The
    decoded array is cached (see :mod:`scfront.data.cache`) unless ``use_cache`` is False.
    """
    listing = list_split(dataset_dir, split, spec)
    shape = (len(listing), 3, size, size)
    path = cache.cache_path(spec.name, split, size, listing.root, listing.digest())
    array = cache.load_cached(path, shape) if use_cache else None
    if array is None:
        start = time.perf_counter()
        array = decode_images(listing.paths(), size, mode, desc=f"{spec.name}/{split}")
        log.info("decoded %d images of %s in %.1f s", len(listing), listing.root,
                 time.perf_counter() - start)
        if use_cache and cache.store(path, array):
            log.info("cached them in %s", path)
    else:
        log.debug("loaded %s from cache %s", listing.root, path)
    images = torch.from_numpy(np.ascontiguousarray(array))
    labels = torch.tensor(listing.labels, dtype=torch.int64)
    return ImageDataset(images, labels, listing.classes, name=f"{spec.name}/{split}")


def is_cached(listing: FolderListing, spec: FolderSpec, size: int) -> bool:
    """Whether ``listing`` (a split as it is now) has a cache file at ``size`` pixels."""
    split = listing.root.name
    return cache.cache_path(spec.name, split, size, listing.root, listing.digest()).is_file()
