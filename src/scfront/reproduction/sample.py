"""The CIFAR-10 test sample shipped with scfront (``scfront/assets/samples``), for ``scfront demo``.

The sample is the first ``n`` images of the fixed evaluation subset (docs/evaluation.md §2:
``randperm(10000, seed 0)[:n]``), so an evaluation of the sample equals the evaluation of the
first ``n`` subset images. File: npz with ``images`` (n, 3, 32, 32) uint8, ``labels`` (n,) int64,
``indices`` (n,) int64 (positions in the test set, contract order) and ``subset_seed`` ().
Read with ``np.load(allow_pickle=False)``.

Written by ``python -m scfront.reproduction.sample --data-root DIR``.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from scfront.errors import DatasetError
from scfront.io import atomic_write_bytes

SAMPLE_NAME = "cifar10_test_sample.npz"
SAMPLE_SIZE = 200
KEYS = ("images", "labels", "indices", "subset_seed")


@dataclass(frozen=True)
class Sample:
    """images (n, 3, 32, 32) uint8; labels (n,) int64; indices (n,) int64 into the test set."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    subset_seed: int


def shipped_sample_path() -> Path:
    return Path(str(resources.files("scfront").joinpath("assets", "samples", SAMPLE_NAME)))


def load_sample(path: str | Path | None = None) -> Sample:
    """The shipped sample (or the npz at ``path``), checked for shapes and value types."""
    path = Path(path) if path is not None else shipped_sample_path()
    if not path.is_file():
        raise DatasetError(f"sample file {path} does not exist (reinstall scfront, or write it with "
                           "`python -m scfront.reproduction.sample --data-root DIR`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in KEYS}
    except (KeyError, ValueError, OSError) as exc:
        raise DatasetError(f"{path} is not a scfront sample file ({exc})") from None
    images, labels, indices = arrays["images"], arrays["labels"], arrays["indices"]
    n = images.shape[0]
    if images.dtype != np.uint8 or images.shape[1:] != (3, 32, 32) or labels.shape != (n,) \
            or indices.shape != (n,):
        raise DatasetError(f"{path}: expected images (n, 3, 32, 32) uint8 with n labels and indices, "
                           f"got {images.shape} {images.dtype}, {labels.shape}, {indices.shape}")
    return Sample(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)),
                  torch.from_numpy(indices.astype(np.int64)), int(arrays["subset_seed"]))


def write_sample(data_root: str | Path, path: str | Path, n: int = SAMPLE_SIZE, seed: int = 0) -> Path:
    """Write the first ``n`` images of the evaluation subset of seed ``seed`` to ``path``."""
    from scfront.data import eval_subset_indices, load_cifar10

    test = load_cifar10(data_root, "test")
    index = eval_subset_indices(len(test), n, seed)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=test.images[index].numpy(), labels=test.labels[index].numpy(),
                        indices=index.numpy(), subset_seed=np.int64(seed))
    return atomic_write_bytes(Path(path), buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scfront.reproduction.sample",
                                     description="Write the CIFAR-10 test sample shipped with scfront.")
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding cifar10/")
    parser.add_argument("--out", type=Path, default=None, help=f"default: the package's {SAMPLE_NAME}")
    parser.add_argument("--n", type=int, default=SAMPLE_SIZE, help=f"images (default {SAMPLE_SIZE})")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of the subset (default 0)")
    args = parser.parse_args(argv)
    path = write_sample(args.data_root, args.out or shipped_sample_path(), args.n, args.subset_seed)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
