"""Fixtures of the data tests: the real splits, loaded once per session through the user cache
(so the first-time decode is paid once per machine, not per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scfront.data import ImageDataset, load_cifar10, load_imagenette


@pytest.fixture(scope="session")
def cifar10_test(data_root: Path) -> ImageDataset:
    return load_cifar10(data_root, "test")


@pytest.fixture(scope="session")
def cifar10_train(data_root: Path) -> ImageDataset:
    return load_cifar10(data_root, "train")


@pytest.fixture(scope="session")
def imagenette_root(data_root: Path) -> Path:
    if not (data_root / "imagenette").is_dir():
        pytest.skip(f"imagenette not found in {data_root}")
    return data_root / "imagenette"


@pytest.fixture(scope="session")
def imagenette_val(imagenette_root: Path) -> ImageDataset:
    return load_imagenette(imagenette_root, "val")
