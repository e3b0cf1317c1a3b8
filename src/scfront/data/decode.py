"""Decoding many small image files into one uint8 array, in parallel, with a progress bar.

Decoding the 60,000 CIFAR-10 PNGs with PIL costs about 150 us each, so the first load of the
folder layout takes seconds; a process pool splits it over the cores (threads do not help: PIL's
PNG path holds the GIL long enough that two threads are slower than one). Results are cached by
:mod:`scfront.data.cache`, so this runs once per machine and listing.

This module must not import torch: worker processes import it, and they should start quickly.
"""

from __future__ import annotations

import enum
import io
import logging
import multiprocessing
import os
import sys
import zlib
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Sequence

import numpy as np
from PIL import Image, PngImagePlugin
from tqdm.auto import tqdm

from scfront.errors import DatasetError

log = logging.getLogger(__name__)

_MAX_WORKERS = 8
# PIL signals undecodable input with these (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError
)
_LOSSLESS_TO_RGB = frozenset({"RGB", "L", "P"})
_LOSSY_TO_RGB = frozenset({"RGBA", "LA", "PA", "CMYK"})


class DecodeMode(str, enum.Enum):
    EXACT = "exact"  # the file must already be image_size x image_size: lossless, no resampling
    RESIZE_CROP = "resize_crop"  # shorter side to image_size (bilinear), then center crop


# Below this many files a process pool costs more to start than it saves (a tiny PNG decodes in
# ~0.15 ms, a 224x224 JPEG plus its resize takes ~2 ms).
_SERIAL_BELOW = {DecodeMode.EXACT: 2048, DecodeMode.RESIZE_CROP: 128}
_MIN_CHUNK = {DecodeMode.EXACT: 256, DecodeMode.RESIZE_CROP: 16}


def default_workers() -> int:
    """Cores available to this process (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS))


def _resize_crop(image: Image.Image, size: int) -> Image.Image:
    # torchvision's Resize(size) + CenterCrop(size) arithmetic (truncated long side, rounded
    # offsets), the preprocessing of the original Imagenette pipeline.
    w, h = image.size
    if (w, h) == (size, size):
        return image
    if w <= h:
        new_w, new_h = size, max(size, int(size * h / w))
    else:
        new_w, new_h = max(size, int(size * w / h)), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def decode_file(path: str, size: int, mode: DecodeMode) -> np.ndarray:
    """One image file as a (3, size, size) uint8 array (RGB)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from None
    return decode_bytes(data, size, mode, path)


def decode_bytes(data: bytes, size: int, mode: DecodeMode, name: str = "image.jpeg") -> np.ndarray:
    """The bytes of one image file (PNG, JPEG, ...) as a (3, size, size) uint8 array (RGB),
    decoded exactly as :func:`decode_file` decodes the file; ``name`` is the file's name (its
    suffix picks the PNG fast path) and is used in error messages."""
    try:
        with _open(data, name) as image:
            _check_image(name, image, size, mode)  # from the header: before decoding anything
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            if mode is DecodeMode.RESIZE_CROP:
                rgb = _resize_crop(rgb, size)
            pixels = np.frombuffer(rgb.tobytes(), dtype=np.uint8)
    except DatasetError:
        raise
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"cannot decode image {name}: {exc}") from None
    return np.ascontiguousarray(pixels.reshape(size, size, 3).transpose(2, 0, 1))


def _open(data: bytes, name: str) -> Image.Image:
    # For the 60,000 tiny CIFAR-10 PNGs, per-file overhead is most of the cost: reading the file
    # in one call and going straight to the PNG parser (no format probing) saves about 25%.
    buffer = io.BytesIO(data)
    if name.lower().endswith(".png"):
        return PngImagePlugin.PngImageFile(buffer)
    return Image.open(buffer)


def _check_image(path: str, image: Image.Image, size: int, mode: DecodeMode) -> None:
    if image.mode not in _LOSSLESS_TO_RGB | _LOSSY_TO_RGB:
        raise DatasetError(f"{path}: unsupported image mode {image.mode}")
    if mode is not DecodeMode.EXACT:
        return
    if image.size != (size, size):
        raise DatasetError(
            f"{path}: expected a {size}x{size} image, got {image.size[0]}x{image.size[1]}"
        )
    if image.mode in _LOSSY_TO_RGB:
        # Dropping alpha or converting CMYK changes pixels: not a lossless dataset file.
        raise DatasetError(f"{path}: expected an RGB image, got mode {image.mode}")


def _decode_chunk(paths: Sequence[str], size: int, mode: DecodeMode) -> np.ndarray:
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_file(path, size, mode)
    return out


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds and never re-imports the caller's __main__; the
    # workers only run PIL and numpy, so forking a process that holds torch threads is safe.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def decode_images(
    paths: Sequence[str],
    size: int,
    mode: DecodeMode,
    *,
    workers: int | None = None,
    desc: str = "decoding",
) -> np.ndarray:
    """Decode ``paths`` in order into an (N, 3, size, size) uint8 array (RGB, values 0..255).

    Uses a pool of ``workers`` processes (default: the available cores) unless there are only a
    few files. A file that cannot be decoded, or has the wrong size in ``EXACT`` mode, raises
    :class:`DatasetError` naming it.
    """
    n = len(paths)
    workers = default_workers() if workers is None else max(1, workers)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    with tqdm(total=n, desc=desc, unit="img", disable=None, leave=False) as bar:
        if workers == 1 or n < _SERIAL_BELOW[mode]:
            for i, path in enumerate(paths):
                out[i] = decode_file(path, size, mode)
                bar.update(1)
            return out
        # ~8 chunks per worker: balanced load, frequent progress, little pickling overhead.
        chunk = max(_MIN_CHUNK[mode], -(-n // (8 * workers)))
        starts = list(range(0, n, chunk))
        log.debug("decoding %d files with %d processes, %d per task", n, workers, chunk)
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures: dict[Future[np.ndarray], int] = {
                pool.submit(_decode_chunk, list(paths[s : s + chunk]), size, mode): s
                for s in starts
            }
            try:
                for future in as_completed(futures):
                    start = futures[future]
                    block = future.result()
                    out[start : start + len(block)] = block
                    bar.update(len(block))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return out
