"""The samples shipped for `scfront demo`: size, format, and equality with the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


from scfront.data import eval_subset_indices, load_cifar10
from scfront.errors import DatasetError
from scfront.reproduction.sample import SAMPLE_SIZE, SAMPLES, load_sample, shipped_sample_path, write_sample


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
    with pytest.raises(DatasetError, match="not a scfront cifar10 sample"):
        load_sample(tmp_path / "partial.npz")


def test_shipped_imagenette_sample_is_small_and_equals_the_val_images(data_root: Path) -> None:
    from scfront.data.imagenette import load_imagenette

    path = shipped_sample_path("imagenette")
    assert path.is_file() and path.stat().st_size <= 2_000_000  # the limit for the package
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["encoded", "image_size", "indices", "labels", "offsets", "subset_seed"]
    sample = load_sample(dataset="imagenette")
    n = SAMPLES["imagenette"].size
    assert sample.images.shape == (n, 3, 160, 160) and sample.subset_seed == 0
    val = load_imagenette(data_root, "val")
    assert torch.equal(sample.indices, eval_subset_indices(len(val), n, 0))
    # decoded from the dataset's own JPEG bytes exactly as the loader decodes the files
    assert torch.equal(sample.images, val.images[sample.indices])
    assert torch.equal(sample.labels, val.labels[sample.indices])


def test_bad_imagenette_sample_files(data_root: Path, tmp_path: Path) -> None:
    path = write_sample(data_root, tmp_path / "s.npz", n=3, dataset="imagenette")
    assert load_sample(path, dataset="imagenette").images.shape == (3, 3, 160, 160)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "cut.npz", **{**arrays, "offsets": arrays["offsets"][::-1]})
    with pytest.raises(DatasetError, match="do not cut 'encoded' into files"):
        load_sample(tmp_path / "cut.npz", dataset="imagenette")
    bad = arrays["encoded"].copy()
    bad[: arrays["offsets"][1]] = 0  # the first file's bytes zeroed: not an image any more
    np.savez(tmp_path / "zeroed.npz", **{**arrays, "encoded": bad})
    with pytest.raises(DatasetError, match=r"cannot decode image .*zeroed.npz\[0\]"):
        load_sample(tmp_path / "zeroed.npz", dataset="imagenette")
    with pytest.raises(DatasetError, match="no sample is shipped for dataset 'mnist'"):
        load_sample(dataset="mnist")
