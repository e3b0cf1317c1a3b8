"""CIFAR-10 (Krizhevsky 2009): 32x32 RGB, 10 classes, 50,000 train / 10,000 test images.

Two on-disk forms are read:

- the folder layout ``{train,test}/<class>/*.png`` of the shared data (lossless PNG export of
  the official release): order = class index, then file name (docs/architecture.md §2); the decoded arrays
  are cached (:mod:`scfront.data.cache`);
- the official python release, as ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``
  (md5-checked): official order.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from scfront.data.cifar_batches import BATCHES_DIR, META_FILE, TARBALL_MD5, TARBALL_NAME, \
    read_python_release
from scfront.data.dataset import ImageDataset
from scfront.data.decode import DecodeMode
from scfront.data.folders import load_folder_split
from scfront.data.layout import CIFAR10_FOLDERS, looks_like_folder_dataset
from scfront.errors import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_SIZE = 32


class Cifar10Format(str, enum.Enum):
    FOLDERS = "folders"  # {train,test}/<class>/*.png
    BATCHES = "batches"  # cifar-10-batches-py/
    TARBALL = "tarball"  # cifar-10-python.tar.gz


@dataclass(frozen=True)
class Cifar10Source:
    format: Cifar10Format
    path: Path  # the dataset folder, the batches folder, or the tarball


def _source_in(folder: Path) -> Cifar10Source | None:
    if looks_like_folder_dataset(folder, CIFAR10_FOLDERS):
        return Cifar10Source(Cifar10Format.FOLDERS, folder)
    if (folder / META_FILE).is_file():
        return Cifar10Source(Cifar10Format.BATCHES, folder)
    if (folder / BATCHES_DIR).is_dir():
        return Cifar10Source(Cifar10Format.BATCHES, folder / BATCHES_DIR)
    if (folder / TARBALL_NAME).is_file():
        return Cifar10Source(Cifar10Format.TARBALL, folder / TARBALL_NAME)
    return None


def find_cifar10(root: str | Path) -> Cifar10Source:
    """Where CIFAR-10 is under ``root``.

    ``root`` may be the dataset itself (a folder with ``train/`` and ``test/``, a
    ``cifar-10-batches-py`` folder, the tarball) or a data root holding it, directly or in a
    ``cifar10/`` folder. When several forms are present, the first in this order wins: the
    folder layout, the batches folder, the tarball (in ``root`` before ``root/cifar10``).
    """
    root = Path(root).expanduser()
    if root.is_file():
        if root.name.endswith(".tar.gz"):
            return Cifar10Source(Cifar10Format.TARBALL, root)
        raise DatasetError(f"{root} is a file; expected a folder or {TARBALL_NAME}")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist")
    for folder in (root, root / "cifar10"):
        if folder.is_dir() and (source := _source_in(folder)) is not None:
            return source
    raise DatasetError(
        f"no CIFAR-10 under {root}: expected {root}/cifar10/{{train,test}}/<class>/*.png, "
        f"{root}/{{train,test}}/<class>/*.png, {root}/{BATCHES_DIR}/ or {root}/{TARBALL_NAME}"
    )


def load_cifar10(
    root: str | Path, split: str, *, use_cache: bool = True, expected_md5: str = TARBALL_MD5
) -> ImageDataset:
    """CIFAR-10 split ``split`` ("train" or "test") found under ``root`` (see
    :func:`find_cifar10`).

    Returns an :class:`ImageDataset`: ``images`` (N, 3, 32, 32) uint8, ``labels`` (N,) int64,
    ``classes`` the 10 names; items are ``(float32 (3, 32, 32) in [0, 1], int)``.
    ``expected_md5`` is the checksum a tarball must have (the official one by default).
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown cifar10 split {split!r}; choose one of {', '.join(SPLITS)}")
    source = find_cifar10(root)
    log.debug("cifar10/%s from %s (%s)", split, source.path, source.format.value)
    if source.format is Cifar10Format.FOLDERS:
        return load_folder_split(source.path, split, CIFAR10_FOLDERS, IMAGE_SIZE,
                                 DecodeMode.EXACT, use_cache=use_cache)
    images, labels, classes = read_python_release(source.path, split, expected_md5)
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), classes,
                        name=f"cifar10/{split}")
