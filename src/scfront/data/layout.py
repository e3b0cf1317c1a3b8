"""Image-folder layouts ``<split>/<class>/<file>``: locating, listing and validating them.

A listing is the ordered list of image files of one split with their labels: class index
(position of the class folder in the expected class list), then file name, which is the order
docs/architecture.md §2 fixes for folder datasets. Its :meth:`FolderListing.digest` (names, sizes and
modification times) keys the decoded-array cache, so any added, removed, replaced or touched file
invalidates the cache without reading the images.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from scfront.errors import DatasetError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Sorted Imagenette wnids; label = index in this order (shared/datasets/README.md).
IMAGENETTE_CLASSES: tuple[str, ...] = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)


@dataclass(frozen=True)
class FolderSpec:
    """What one folder dataset must look like: its split and class folder names, file suffixes."""

    name: str
    splits: tuple[str, ...]
    classes: tuple[str, ...]
    suffixes: tuple[str, ...]  # lower-case, with the dot

    def pattern(self, split: str = "{split}") -> str:
        return f"{split}/<class>/*{self.suffixes[0]}"


CIFAR10_FOLDERS = FolderSpec("cifar10", ("train", "test"), CIFAR10_CLASSES, (".png",))
IMAGENETTE_FOLDERS = FolderSpec(
    "imagenette", ("train", "val"), IMAGENETTE_CLASSES, (".jpeg", ".jpg")
)
FOLDER_SPECS = {spec.name: spec for spec in (CIFAR10_FOLDERS, IMAGENETTE_FOLDERS)}


@dataclass(frozen=True)
class FolderListing:
    """The image files of one split, in contract order.

    Attributes:
        root: the split folder (``.../<split>``).
        files: paths relative to ``root`` (``<class>/<file>``), ordered by label then file name.
        labels: class index of each file.
        sizes, mtimes_ns: file size in bytes and modification time of each file.
        classes: class folder names, label order.
    """

    root: Path
    files: tuple[str, ...]
    labels: tuple[int, ...]
    sizes: tuple[int, ...]
    mtimes_ns: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def paths(self) -> list[str]:
        return [os.path.join(self.root, name) for name in self.files]

    def counts(self) -> list[int]:
        """Number of files per class, label order."""
        out = [0] * len(self.classes)
        for label in self.labels:
            out[label] += 1
        return out

    def digest(self) -> str:
        """sha256 of the listing (relative name, size, mtime per file): the cache key."""
        h = hashlib.sha256()
        for name, size, mtime in zip(self.files, self.sizes, self.mtimes_ns):
            h.update(f"{name}\t{size}\t{mtime}\n".encode("utf-8"))
        return h.hexdigest()


def _check_split(split: str, spec: FolderSpec) -> None:
    if split not in spec.splits:
        raise DatasetError(
            f"unknown {spec.name} split {split!r}; choose one of {', '.join(spec.splits)}"
        )


def looks_like_folder_dataset(path: Path, spec: FolderSpec) -> bool:
    return any((path / split).is_dir() for split in spec.splits)


def resolve_dataset_dir(root: str | Path, name: str) -> Path:
    """The folder of dataset ``name`` (holding its split folders) given ``root``.

    ``root`` may be the dataset folder itself (``.../cifar10``) or the data root that holds it
    (``.../datasets``, containing ``cifar10/``); both are accepted (docs/architecture.md §2).
    """
    if name not in FOLDER_SPECS:
        raise DatasetError(f"unknown folder dataset {name!r}; known: {', '.join(FOLDER_SPECS)}")
    spec = FOLDER_SPECS[name]
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a directory")
    if (root / name).is_dir():
        return root / name
    if looks_like_folder_dataset(root, spec):
        return root
    splits = ",".join(spec.splits)
    raise DatasetError(
        f"no {name} dataset under {root}: expected {root}/{name}/{{{splits}}}/<class>/"
        f"*{spec.suffixes[0]} or {root}/{{{splits}}}/<class>/*{spec.suffixes[0]}"
    )


def list_split(dataset_dir: str | Path, split: str, spec: FolderSpec) -> FolderListing:
    """List and validate ``dataset_dir/split``: exactly the expected class folders, none empty.

    Files whose suffix is not one of ``spec.suffixes`` (and hidden files) are ignored.
    """
    _check_split(split, spec)
    split_dir = Path(dataset_dir) / split
    if not split_dir.is_dir():
        raise DatasetError(
            f"missing folder {split_dir}: expected {spec.name} images as "
            f"{Path(dataset_dir) / spec.pattern(split)}"
        )
    found = sorted(
        e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")
    )
    _check_classes(split_dir, found, spec.classes)
    files: list[str] = []
    labels: list[int] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    for label, cls in enumerate(spec.classes):
        entries = _image_entries(split_dir / cls, spec.suffixes)
        if not entries:
            raise DatasetError(
                f"class folder {split_dir / cls} holds no {'/'.join(spec.suffixes)} images"
            )
        for name, size, mtime in entries:
            files.append(f"{cls}/{name}")
            labels.append(label)
            sizes.append(size)
            mtimes.append(mtime)
    return FolderListing(
        split_dir, tuple(files), tuple(labels), tuple(sizes), tuple(mtimes), spec.classes
    )


def _image_entries(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Sorted ``(name, size, mtime_ns)`` of the non-hidden files in ``folder`` with a suffix in
    ``suffixes`` (case-insensitive)."""
    # Listing through a directory descriptor makes each stat a one-component fstatat lookup:
    # stat-ing 60,000 files is most of a cached load, so this matters (where the OS allows it).
    by_fd = os.scandir in os.supports_fd
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if by_fd else -1
    out = []
    try:
        with os.scandir(fd if by_fd else folder) as it:
            for entry in it:
                name = entry.name
                if name.lower().endswith(suffixes) and not name.startswith("."):
                    stat = entry.stat()
                    out.append((name, stat.st_size, stat.st_mtime_ns))
    finally:
        if by_fd:
            os.close(fd)
    out.sort()
    return out


def _check_classes(split_dir: Path, found: Sequence[str], expected: Sequence[str]) -> None:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise DatasetError(
            f"wrong class folders in {split_dir} ({'; '.join(parts)}): expected exactly "
            f"{', '.join(expected)}"
        )
