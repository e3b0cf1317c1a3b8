"""CIFAR-10 from the real shared PNG folders: counts, contract order, pixel identity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import scfront.data.folders as folders
from scfront.data import ImageDataset, load_cifar10
from scfront.data.layout import CIFAR10_CLASSES


def _sorted_files(split_dir: Path) -> list[Path]:
    # Contract order, computed independently: class index, then file name.
    return [split_dir / cls / name for cls in CIFAR10_CLASSES
            for name in sorted(os.listdir(split_dir / cls))]


def _check_against_pil(dataset: ImageDataset, split_dir: Path, n: int, seed: int) -> None:
    files = _sorted_files(split_dir)
    assert len(files) == len(dataset)
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n]
    for i in pick.tolist():
        with Image.open(files[i]) as image:
            expected = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(dataset.images[i].numpy(), expected), files[i]
        assert int(dataset.labels[i]) == CIFAR10_CLASSES.index(files[i].parent.name)


def test_test_split(cifar10_test: ImageDataset, data_root: Path) -> None:
    ds = cifar10_test
    assert len(ds) == 10_000 and ds.images.shape == (10_000, 3, 32, 32)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.classes == list(CIFAR10_CLASSES)
    assert ds.counts() == [1000] * 10
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(1000))
    _check_against_pil(ds, data_root / "cifar10" / "test", n=200, seed=0)
    image, label = ds[1234]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and label == 1
    assert torch.equal(image, ds.images[1234].float() / 255)
    # the test set is not degenerate: its pixels span the full 8-bit range
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255


@pytest.mark.slow  # the first run decodes 50,000 PNGs (cached afterwards)
def test_train_split(cifar10_train: ImageDataset, data_root: Path) -> None:
    ds = cifar10_train
    assert len(ds) == 50_000 and ds.counts() == [5000] * 10
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(5000))
    _check_against_pil(ds, data_root / "cifar10" / "train", n=200, seed=1)


def test_both_root_forms_and_cache_hit(cifar10_test: ImageDataset, data_root: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached array should have been used")

    # After the session fixture, loading again must not decode anything.
    monkeypatch.setattr(folders, "decode_images", no_decoding)
    for root in (data_root, data_root / "cifar10", str(data_root / "cifar10")):
        again = load_cifar10(root, "test")
        assert torch.equal(again.images, cifar10_test.images)
        assert torch.equal(again.labels, cifar10_test.labels)
