"""Read and write the dictionary files of the original implementation (npz).

Format (../shared/reference/README.md): a zip archive holding ``dict.npy``, an (n_atoms, dim)
float array with one atom per row flattened in (height, width, channel) order of a p x p x 3
patch (dim = 3 p^2), and optionally ``params.npy``. The original wrote ``params`` as a pickled
0-d object array of the scikit-learn parameters.

Files are untrusted input: only ``dict.npy`` is decoded, with ``allow_pickle=False``; a pickled
``params`` is never unpickled, only its presence is recorded. scfront writes ``params`` as a
0-d unicode array holding a JSON string, which needs no pickle to read back.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scfront.dictionary.core import Dictionary
from scfront.errors import CheckpointError
from scfront.io import atomic_write

# A dictionary of 10,000 atoms of 16x16x3 in float64 is 61 MB; anything far larger is not a
# dictionary, and refusing it early protects against decompression bombs.
_MAX_MEMBER_BYTES = 512 * 1024 * 1024
CHANNELS = 3


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    info = archive.getinfo(name)
    if info.file_size > _MAX_MEMBER_BYTES:
        raise CheckpointError(
            f"{path}: {name} is {info.file_size} bytes, too large for a dictionary")
    try:
        with archive.open(info) as handle:
            # read_array needs a seekable file for some headers; the member is small.
            return np.lib.format.read_array(io.BytesIO(handle.read()), allow_pickle=False)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {name} is not a plain numeric array ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: {name} is corrupt ({exc})") from None


def _read_params(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """Provenance from ``params.npy`` when it is plain JSON text; never unpickles."""
    if "params.npy" not in archive.namelist():
        return {}
    try:
        params = _read_member(archive, "params.npy", path)
    except CheckpointError:
        # The reference files store a pickled object here: noted, deliberately left unread.
        return {"params": "present but not read (pickled object array)"}
    if params.dtype.kind != "U" or params.ndim != 0:
        return {"params": f"present but not read ({params.dtype} array of shape {params.shape})"}
    try:
        decoded = json.loads(str(params[()]))
    except json.JSONDecodeError:
        return {"params": "present but not read (not JSON)"}
    return decoded if isinstance(decoded, dict) else {"params": decoded}


def load_dictionary(path: str | Path) -> Dictionary:
    """Load an npz dictionary file of the original format (or one written by scfront).

    Returns:
        A :class:`Dictionary` with float32 atoms (n_atoms, 3, p, p); ``meta`` holds the JSON
        ``params`` of scfront files plus ``source`` (the path) and ``stored_dtype``.

    Raises:
        CheckpointError: missing or corrupt file, no ``dict`` array, an array that is not 2-D
            numeric with ``dim = 3 p^2``, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"dictionary file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            if "dict.npy" not in archive.namelist():
                raise CheckpointError(
                    f"{path}: no 'dict' array (found {', '.join(archive.namelist()) or 'nothing'})"
                )
            rows = _read_member(archive, "dict.npy", path)
            meta = _read_params(archive, path)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path}: not an npz (zip) file") from None
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise CheckpointError(f"{path}: 'dict' must be 2-D (n_atoms, dim), got shape {rows.shape}")
    if rows.dtype.kind not in "fiu":
        raise CheckpointError(f"{path}: 'dict' must hold real numbers, got {rows.dtype}")
    dim = rows.shape[1]
    patch = math.isqrt(dim // CHANNELS)
    if patch < 1 or CHANNELS * patch * patch != dim:
        raise CheckpointError(
            f"{path}: atom dimension {dim} is not 3*p*p for a square p x p x 3 patch"
        )
    if not np.isfinite(rows).all():
        raise CheckpointError(f"{path}: 'dict' contains NaN or infinite values")
    meta = {**meta, "source": str(path), "stored_dtype": str(rows.dtype)}
    return Dictionary.from_flat(torch.from_numpy(rows.astype(np.float32)), patch, CHANNELS, meta)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def save_dictionary(dictionary: Dictionary, path: str | Path) -> Path:
    """Write ``dictionary`` as an npz of the original format, atomically.

    ``dict`` is float32 (n_atoms, 3 p^2) in (h, w, c) row order; ``params`` is ``dictionary.meta``
    as a JSON string in a 0-d unicode array (no pickle). Returns the path written.
    """
    if dictionary.channels != CHANNELS:
        raise CheckpointError(
            f"the npz format holds {CHANNELS}-channel patches, got {dictionary.channels} channels"
        )
    rows = dictionary.flat().numpy().astype(np.float32)
    params = np.array(json.dumps(dictionary.meta, sort_keys=True, default=str))

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("dict.npy", _npy_bytes(rows))
            archive.writestr("params.npy", _npy_bytes(params))

    return atomic_write(path, write)
