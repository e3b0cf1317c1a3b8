"""On-disk cache of decoded image arrays (``.npy``, read with ``allow_pickle=False``).

Location: ``$SCFRONT_CACHE`` if set, else ``~/.cache/scfront``; arrays live in its ``datasets/``
folder (the data folders themselves are read-only). A cache file is named after the dataset,
split, image size, a hash of the dataset folder's path and the listing digest
(:meth:`scfront.data.layout.FolderListing.digest`: names, sizes, modification times), so a
changed file, or any other preprocessing, selects another file: stale arrays are never returned.
When a new array is stored, older arrays of the same folder, split and size are deleted.
Files are written atomically (:func:`scfront.io.atomic_write`), so an interrupted decode never
leaves a torn cache file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from scfront.io import atomic_write

log = logging.getLogger(__name__)

# Bump when decoding changes in a way that changes pixels (e.g. another resampling filter).
CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$SCFRONT_CACHE``, else ``~/.cache/scfront``."""
    env = os.environ.get("SCFRONT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scfront"


def _folder_tag(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:10]


def cache_path(dataset: str, split: str, size: int, folder: Path, digest: str) -> Path:
    """Where the decoded array of ``folder`` (a split folder) with listing ``digest`` lives."""
    key = hashlib.sha256(f"v{CACHE_VERSION}:{digest}".encode("utf-8")).hexdigest()[:20]
    prefix = f"{dataset}-{split}-{size}px-{_folder_tag(folder)}"
    return cache_dir() / "datasets" / f"{prefix}-{key}.npy"


def load_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached uint8 array at ``path`` if it exists and has ``shape``; None otherwise."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("ignoring unreadable cache file %s (%s)", path, exc)
        return None
    if array.dtype != np.uint8 or tuple(array.shape) != shape:
        log.warning("ignoring cache file %s: %s %s, expected uint8 %s", path, array.dtype,
                    tuple(array.shape), shape)
        return None
    return array


def store(path: Path, array: np.ndarray) -> bool:
    """Write ``array`` to ``path`` atomically and delete superseded siblings; False on failure.

    A cache that cannot be written (read-only home, full disk) only costs speed, so it is
    logged, not raised.
    """
    try:
        atomic_write(path, lambda tmp: _save_npy(tmp, array))
    except OSError as exc:
        log.warning("could not write cache file %s (%s); the next load decodes again", path, exc)
        return False
    prefix = path.name.rsplit("-", 1)[0] + "-"
    for old in path.parent.glob(f"{prefix}*.npy"):
        if old != path:
            old.unlink(missing_ok=True)
    return True


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
