"""The CIFAR-10 sample shipped for `scfront demo`: size, format, and equality with the test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


from scfront.data import eval_subset_indices, load_cifar10
from scfront.errors import DatasetError
from scfront.reproduction.sample import SAMPLE_SIZE, load_sample, shipped_sample_path, write_sample


def test_shipped_sample_format() -> None:
    path = shipped_sample_path()
    assert path.is_file() and path.stat().st_size <= 1_000_000
    with np.load(path, allow_pickle=False) as npz:  # no object arrays: readable without pickle
        assert sorted(npz.files) == ["images", "indices", "labels", "subset_seed"]
    sample = load_sample()
    assert sample.images.shape == (SAMPLE_SIZE, 3, 32, 32) and sample.images.dtype == torch.uint8
    assert sample.subset_seed == 0
    # the first images of the fixed evaluation subset (docs/evaluation.md §2), so demo = evaluation prefix
    assert torch.equal(sample.indices, eval_subset_indices(10000, SAMPLE_SIZE, 0))
    assert sample.labels.min() >= 0 and sample.labels.max() <= 9
    assert len(set(sample.labels.tolist())) == 10


def test_shipped_sample_equals_the_test_images(data_root: Path) -> None:
    test = load_cifar10(data_root, "test")
    sample = load_sample()
    assert torch.equal(sample.images, test.images[sample.indices])
    assert torch.equal(sample.labels, test.labels[sample.indices])


def test_write_sample_roundtrip(data_root: Path, tmp_path: Path) -> None:
    path = write_sample(data_root, tmp_path / "s.npz", n=5, seed=3)
    sample = load_sample(path)
    test = load_cifar10(data_root, "test")
    assert torch.equal(sample.indices, eval_subset_indices(len(test), 5, 3))
    assert torch.equal(sample.images, test.images[sample.indices]) and sample.subset_seed == 3


def test_bad_sample_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_sample(tmp_path / "absent.npz")
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2),
             indices=np.zeros(2), subset_seed=np.int64(0))
    with pytest.raises(DatasetError, match="expected images"):
        load_sample(tmp_path / "wrong.npz")
    np.savez(tmp_path / "partial.npz", images=np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match="not a scfront sample"):
        load_sample(tmp_path / "partial.npz")
