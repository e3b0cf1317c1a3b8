"""The official CIFAR-10 python release: ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``.

Each batch file is a Python 2 pickle of a dict ``{data: uint8 ndarray (n, 3072), labels: [int],
filenames: [str], batch_label: str}``; a row holds the 1024 red, then green, then blue values of
a 32x32 image in row-major order. Unpickling can run arbitrary code, so the batches are read with
:class:`RestrictedUnpickler`, which resolves only the three globals an ndarray needs and refuses
everything else; the result is then checked for the expected types, shapes and dtypes.
The tarball is checked against the md5 published on the CIFAR-10 page before anything is read,
and its members are read in memory (never extracted by this module).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from scfront.errors import DatasetError

BATCHES_DIR = "cifar-10-batches-py"
TARBALL_NAME = "cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"  # https://www.cs.toronto.edu/~kriz/cifar.html
SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
META_FILE = "batches.meta"
_ROW = 3 * 32 * 32


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy's own _reconstruct is ndarray.__new__(subtype, ...): accept plain ndarrays only, so
    # a pickle cannot make numpy instantiate some other subclass.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    # Only the plain numeric dtypes the batches use; an object dtype would let the pickle feed
    # arbitrary (though still restricted) objects into an array.
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str) or spec[:1] not in ("u", "i", "f", "b"):
        raise pickle.UnpicklingError(f"refusing numpy dtype {spec!r}")
    return np.dtype(spec, bool(align), bool(copy))


# (module, name) -> the object it resolves to. numpy 1 writes numpy.core.multiarray, numpy 2
# numpy._core.multiarray: the same function under two names.
_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, bytes, numbers and numeric ndarrays, nothing else.

    Python 2 strings are returned as ``bytes`` (``encoding="bytes"``), as the batches need.
    """

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 batch"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR-10 batch")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def unpickle_batch(data: bytes, where: str) -> dict[str, Any]:
    """The dict of one batch file (keys as ``str``); DatasetError if not a valid batch pickle."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as exc:
        raise DatasetError(f"{where} is not a valid CIFAR-10 python batch: {exc}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def parse_batch(data: bytes, where: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 3, 32, 32) uint8, labels (n,) int64)`` of one batch file's bytes."""
    batch = unpickle_batch(data, where)
    pixels, labels = batch.get("data"), batch.get("labels")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 \
            or pixels.shape[1] != _ROW:
        got = (f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray)
               else type(pixels).__name__)
        raise DatasetError(f"{where}: 'data' must be a uint8 array (n, {_ROW}), got {got}")
    if not isinstance(labels, list) or len(labels) != pixels.shape[0] \
            or not all(isinstance(v, int) and 0 <= v < n_classes for v in labels):
        raise DatasetError(
            f"{where}: 'labels' must be a list of {pixels.shape[0]} ints in [0, {n_classes})"
        )
    images = np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32))
    return images, np.asarray(labels, dtype=np.int64)


def parse_meta(data: bytes, where: str) -> list[str]:
    meta = unpickle_batch(data, where)
    names = meta.get("label_names")
    if not isinstance(names, list) or not names \
            or not all(isinstance(v, (bytes, str)) for v in names):
        raise DatasetError(f"{where}: 'label_names' must be a non-empty list of strings")
    return [_text(v) for v in names]


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    actual = md5_file(path)
    if actual != expected:
        raise DatasetError(f"{path}: md5 {actual} does not match the expected {expected} "
                           "(incomplete download or a different file)")


def _read_files(source: Path, names: list[str], expected_md5: str) -> dict[str, bytes]:
    """Bytes of each batch file ``name`` from a batches folder or the release tarball."""
    if source.is_dir():
        out = {}
        for name in names:
            path = source / name
            if not path.is_file():
                raise DatasetError(f"missing file {path} (expected the CIFAR-10 python release "
                                   f"files {', '.join(names)} in {source})")
            out[name] = path.read_bytes()
        return out
    verify_md5(source, expected_md5)
    wanted = {f"{BATCHES_DIR}/{name}": name for name in names}
    out = {}
    try:
        with tarfile.open(source, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        out[wanted[member.name]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {source} as a gzip tar archive: {exc}") from None
    missing = [f"{BATCHES_DIR}/{n}" for n in names if n not in out]
    if missing:
        raise DatasetError(f"{source} lacks {', '.join(missing)}")
    return out


def read_python_release(
    source: Path, split: str, expected_md5: str = TARBALL_MD5
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and class names of ``split`` from a batches folder or the tarball.

    Returns ``(images (N, 3, 32, 32) uint8, labels (N,) int64, classes)`` in the official order
    (batch 1..5 for train, each batch in file order). ``expected_md5`` applies to a tarball.
    """
    if split not in SPLIT_FILES:
        raise DatasetError(f"unknown cifar10 split {split!r}; choose one of train, test")
    files = _read_files(Path(source), [META_FILE, *SPLIT_FILES[split]], expected_md5)
    classes = parse_meta(files[META_FILE], f"{source}/{META_FILE}")
    parts = [parse_batch(files[name], f"{source}/{name}", len(classes))
             for name in SPLIT_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, classes
