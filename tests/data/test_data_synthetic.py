"""The synthetic dataset: the ImageDataset contract, determinism, and that it is learnable."""

from __future__ import annotations

import pytest
import torch

from scfront.data import ImageDataset, load_synthetic
from scfront.errors import DatasetError


def test_contract_and_balance() -> None:
    ds = load_synthetic(103, image_size=16, num_classes=5, seed=3)
    assert isinstance(ds, ImageDataset) and len(ds) == 103
    assert ds.images.shape == (103, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.classes == [f"class{i}" for i in range(5)]
    counts = ds.counts()
    assert sum(counts) == 103 and max(counts) - min(counts) <= 1
    image, label = ds[7]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) <= float(image.max()) <= 1.0 and label == int(ds.labels[7])


def test_deterministic_in_seed() -> None:
    a, b, c = load_synthetic(64, seed=0), load_synthetic(64, seed=0), load_synthetic(64, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_learnable_across_seeds() -> None:
    # Class means estimated on one seed classify another seed's images (nearest mean).
    train, test = load_synthetic(500, seed=0), load_synthetic(200, seed=1)
    x_train = train.images.flatten(1).float()
    means = torch.stack([x_train[train.labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(test.images.flatten(1).float(), means).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.95
    # ... while the images are not trivially identical within a class (there is noise).
    same_class = test.images[test.labels == 0].float()
    assert same_class.std(0).mean() > 10


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 4, "image_size": 2}, {"n": 4, "num_classes": 1},
                                    {"n": 2.5}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(DatasetError, match="load_synthetic"):
        load_synthetic(**kwargs)
