"""The test samples shipped with scfront (``scfront/assets/samples``), for ``scfront demo``.

One sample per dataset (:data:`SAMPLES`), each the first ``n`` images of that dataset's fixed
evaluation subset (docs/evaluation.md §2: ``randperm(len(test split), seed 0)[:n]``), so an
evaluation of the sample equals the evaluation of the first ``n`` subset images:

- ``cifar10``: 200 CIFAR-10 test images (567 KB), stored as pixels: ``images`` (n, 3, 32, 32)
  uint8.
- ``imagenette``: 150 images of the Imagenette val split (about 1.5 MB), stored as the bytes of
  the dataset's own JPEG files (``encoded`` uint8, the files one after another, ``offsets``
  (n + 1,) int64 where each file starts and the last one ends) and decoded when loaded exactly
  as the dataset loader decodes them (resize the shorter side to ``image_size``, center crop),
  which is 6x smaller than their pixels. ``image_size`` () int64.

Both files also hold ``labels`` (n,) int64, ``indices`` (n,) int64 (positions in the test split,
contract order) and ``subset_seed`` (); they are read with ``np.load(allow_pickle=False)``.

Written by ``python -m scfront.reproduction.sample --dataset NAME --data-root DIR``.
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

COMMON_KEYS = ("labels", "indices", "subset_seed")


@dataclass(frozen=True)
class SampleSpec:
    """A shipped sample: its file name, size, the test split it comes from, how it is stored.

    Attributes:
        file: name under ``scfront/assets/samples``. size: images it holds.
        split: the dataset split the indices point into. image_size: H = W of its images.
        encoded: stored as the dataset's image files (decoded on load) instead of pixels.
    """

    file: str
    size: int
    split: str
    image_size: int
    encoded: bool


SAMPLES: dict[str, SampleSpec] = {
    "cifar10": SampleSpec("cifar10_test_sample.npz", 200, "test", 32, encoded=False),
    "imagenette": SampleSpec("imagenette_val_sample.npz", 150, "val", 160, encoded=True),
}
# The CIFAR-10 sample's name and size, as before there were two.
SAMPLE_NAME = SAMPLES["cifar10"].file
SAMPLE_SIZE = SAMPLES["cifar10"].size


@dataclass(frozen=True)
class Sample:
    """images (n, 3, H, W) uint8; labels (n,) int64; indices (n,) int64 into the test split."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    subset_seed: int


def _spec(dataset: str) -> SampleSpec:
    if dataset not in SAMPLES:
        raise DatasetError(f"no sample is shipped for dataset {dataset!r}; samples: {', '.join(SAMPLES)}")
    return SAMPLES[dataset]


def shipped_sample_path(dataset: str = "cifar10") -> Path:
    return Path(str(resources.files("scfront").joinpath("assets", "samples", _spec(dataset).file)))


def _decode(encoded: np.ndarray, offsets: np.ndarray, size: int, path: Path) -> np.ndarray:
    from scfront.data.decode import DecodeMode, decode_bytes

    n = offsets.shape[0] - 1
    if encoded.dtype != np.uint8 or encoded.ndim != 1 or n < 0 or offsets[0] != 0 \
            or offsets[-1] != encoded.shape[0] or np.any(np.diff(offsets) <= 0):
        raise DatasetError(f"{path}: 'offsets' do not cut 'encoded' into files")
    blob = encoded.tobytes()
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i in range(n):
        out[i] = decode_bytes(blob[offsets[i]:offsets[i + 1]], size, DecodeMode.RESIZE_CROP, f"{path}[{i}]")
    return out


def load_sample(path: str | Path | None = None, dataset: str = "cifar10") -> Sample:
    """The shipped sample of ``dataset`` (or the npz at ``path``), checked for shapes and types."""
    spec = _spec(dataset)
    path = Path(path) if path is not None else shipped_sample_path(dataset)
    if not path.is_file():
        raise DatasetError(f"sample file {path} does not exist (reinstall scfront, or write it with "
                           f"`python -m scfront.reproduction.sample --dataset {dataset} --data-root DIR`)")
    keys = COMMON_KEYS + (("encoded", "offsets", "image_size") if spec.encoded else ("images",))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in keys}
    except (KeyError, ValueError, OSError) as exc:
        raise DatasetError(f"{path} is not a scfront {dataset} sample file ({exc})") from None
    if spec.encoded:
        size = int(arrays["image_size"])
        images = _decode(arrays["encoded"], arrays["offsets"].astype(np.int64), size, path)
    else:
        size, images = spec.image_size, arrays["images"]
    labels, indices = arrays["labels"], arrays["indices"]
    n = images.shape[0]
    if images.dtype != np.uint8 or images.shape[1:] != (3, size, size) or labels.shape != (n,) \
            or indices.shape != (n,):
        raise DatasetError(f"{path}: expected images (n, 3, {size}, {size}) uint8 with n labels and indices, "
                           f"got {images.shape} {images.dtype}, {labels.shape}, {indices.shape}")
    return Sample(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)),
                  torch.from_numpy(indices.astype(np.int64)), int(arrays["subset_seed"]))


def write_sample(data_root: str | Path, path: str | Path, n: int | None = None, seed: int = 0,
                 dataset: str = "cifar10") -> Path:
    """Write the first ``n`` (default: the shipped size) images of ``dataset``'s evaluation
    subset of seed ``seed`` to ``path``."""
    from scfront.data import eval_subset_indices

    spec = _spec(dataset)
    n = spec.size if n is None else n
    buffer = io.BytesIO()
    if not spec.encoded:
        from scfront.data import load_cifar10

        test = load_cifar10(data_root, spec.split)
        index = eval_subset_indices(len(test), n, seed)
        np.savez_compressed(buffer, images=test.images[index].numpy(), labels=test.labels[index].numpy(),
                            indices=index.numpy(), subset_seed=np.int64(seed))
    else:
        from scfront.data.layout import IMAGENETTE_FOLDERS, list_split, resolve_dataset_dir

        listing = list_split(resolve_dataset_dir(data_root, IMAGENETTE_FOLDERS.name), spec.split, IMAGENETTE_FOLDERS)
        index = eval_subset_indices(len(listing), n, seed)
        paths, labels = listing.paths(), listing.labels
        files = [Path(paths[i]).read_bytes() for i in index.tolist()]
        offsets = np.cumsum([0] + [len(f) for f in files], dtype=np.int64)
        np.savez(buffer, encoded=np.frombuffer(b"".join(files), dtype=np.uint8), offsets=offsets,
                 image_size=np.int64(spec.image_size), labels=np.asarray([labels[i] for i in index.tolist()],
                                                                          dtype=np.int64),
                 indices=index.numpy(), subset_seed=np.int64(seed))
    written = atomic_write_bytes(Path(path), buffer.getvalue())
    written.chmod(0o644)  # a package asset: readable by everyone who installs it
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scfront.reproduction.sample",
                                     description="Write a test sample shipped with scfront.")
    parser.add_argument("--dataset", choices=sorted(SAMPLES), default="cifar10")
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding cifar10/ (and imagenette/)")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's sample file")
    parser.add_argument("--n", type=int, default=None, help="images (default: the shipped size)")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of the subset (default 0)")
    args = parser.parse_args(argv)
    path = write_sample(args.data_root, args.out or shipped_sample_path(args.dataset), args.n,
                        args.subset_seed, args.dataset)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
