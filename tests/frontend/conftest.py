"""Fixtures of the frontend tests: the reference CIFAR-10 dictionary and a few real images."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scfront.dictionary.core import Dictionary


def read_reference_dictionary(path: Path, patch_size: int) -> Dictionary:
    """The `dict` array of an original npz, read without unpickling (the file holds an object)."""
    with zipfile.ZipFile(path) as archive, archive.open("dict.npy") as handle:
        rows = np.lib.format.read_array(handle, allow_pickle=False)
    return Dictionary.from_flat(torch.from_numpy(rows), patch_size)


@pytest.fixture(scope="session")
def cifar_dictionary(reference_dir: Path) -> Dictionary:
    return read_reference_dictionary(reference_dir / "dictionaries" / "cifar10_ps4_n500.npz", 4)


@pytest.fixture(scope="session")
def cifar_images(data_root: Path) -> torch.Tensor:
    """(10, 3, 32, 32) float32 in [0, 1]: the first test image (by file name) of each class."""
    images = []
    for class_dir in sorted((data_root / "cifar10" / "test").iterdir()):
        first = sorted(class_dir.glob("*.png"))[0]
        array = np.asarray(Image.open(first).convert("RGB"), dtype=np.uint8)
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(images).float() / 255.0


@pytest.fixture()
def small_dictionary() -> Dictionary:
    """8 random unit-norm 2x2x3 atoms, for closed-form checks on tiny inputs."""
    g = torch.Generator().manual_seed(3)
    atoms = torch.randn(8, 3, 2, 2, generator=g)
    atoms = atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return Dictionary(atoms)
