"""Dataset selection from a DataConfig, the training subset and the fixed evaluation subset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scfront.config import DataConfig, DatasetName
from scfront.data import ImageDataset, eval_subset, eval_subset_indices, load_dataset
from scfront.errors import ConfigError, DatasetError


def test_eval_subset_indices_is_the_design_formula() -> None:
    for n_total, n, seed in [(10_000, 1000, 0), (10_000, 32, 3), (7, 7, 1)]:
        expected = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]
        got = eval_subset_indices(n_total, n, seed)
        assert torch.equal(got, expected) and got.dtype == torch.int64
    assert len(set(eval_subset_indices(10_000, 1000).tolist())) == 1000
    with pytest.raises(DatasetError, match="cannot select 11 evaluation images from a set of 10"):
        eval_subset_indices(10, 11)


def test_eval_subset_values() -> None:
    ds = load_dataset(DataConfig(dataset=DatasetName.SYNTHETIC), None, "test")
    images, labels = eval_subset(ds, 50, seed=2)
    index = eval_subset_indices(len(ds), 50, 2)
    assert images.dtype == torch.float32 and images.shape == (50, 3, 32, 32)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    for j in (0, 17, 49):
        assert torch.equal(images[j], ds[int(index[j])][0]) and int(labels[j]) == ds[int(index[j])][1]


def test_synthetic_splits_and_train_limit() -> None:
    config = DataConfig(dataset=DatasetName.SYNTHETIC, image_size=16, train_limit=100,
                        subset_seed=4)
    train = load_dataset(config, None, "train")
    full = load_dataset(DataConfig(dataset=DatasetName.SYNTHETIC, image_size=16), None, "train")
    test = load_dataset(config, None, "test")
    assert len(full) == 2048 and len(train) == 100 and len(test) == 512  # no limit on test
    keep = torch.randperm(2048, generator=torch.Generator().manual_seed(4))[:100].sort().values
    assert torch.equal(train.images, full.images[keep]) and torch.equal(train.labels, full.labels[keep])
    assert not torch.equal(test.images[:100], full.images[:100])
    assert train.images.shape[2:] == (16, 16)


def test_cifar10_through_config(cifar10_test: ImageDataset, data_root: Path) -> None:
    test = load_dataset(DataConfig(), data_root, "test")
    assert torch.equal(test.images, cifar10_test.images)
    with pytest.raises(ConfigError, match="data.image_size must be 32 for cifar10"):
        load_dataset(DataConfig(image_size=64), data_root, "test")
    with pytest.raises(DatasetError, match="needs a data root"):
        load_dataset(DataConfig(), None, "test")


def test_imagenette_test_means_val(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from scfront.data.layout import IMAGENETTE_CLASSES

    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))
    for split, n in (("train", 3), ("val", 1)):
        for k, wnid in enumerate(IMAGENETTE_CLASSES):
            folder = tmp_path / "imagenette" / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 30), (k * 20, i * 50, 100)).save(folder / f"x{i}.JPEG")
    config = DataConfig(dataset=DatasetName.IMAGENETTE, image_size=24, train_limit=7)
    test = load_dataset(config, tmp_path, "test")
    assert len(test) == 10 and test.images.shape == (10, 3, 24, 24)
    assert len(load_dataset(config, tmp_path, "train")) == 7
