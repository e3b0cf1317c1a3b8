"""A writer of CIFAR-10 python batches in the official byte format (Python 2 cPickle), for tests."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- Python 2 pickles
# The official batches were written by Python 2 cPickle (protocol 2) from numpy 1.x: strings as
# BINSTRING opcodes (Python 3 cannot produce those for bytes), arrays through
# numpy.core.multiarray._reconstruct. These few opcodes reproduce that byte format exactly.
def _py2_str(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _py2_tuple(items: list[bytes]) -> bytes:
    if 1 <= len(items) <= 3:
        return b"".join(items) + bytes([0x84 + len(items)])
    return b"(" + b"".join(items) + b"t"


def _py2_array(array: np.ndarray) -> bytes:
    assert array.dtype == np.uint8
    dtype = (b"cnumpy\ndtype\n" + _py2_tuple([_py2_str(b"u1"), _py2_int(0), _py2_int(1)]) + b"R"
             + _py2_tuple([_py2_int(3), _py2_str(b"|"), b"N", b"N", b"N",
                           b"J" + struct.pack("<i", -1), b"J" + struct.pack("<i", -1),
                           _py2_int(0)]) + b"b")
    shape = _py2_tuple([_py2_int(n) for n in array.shape])
    state = _py2_tuple([_py2_int(1), shape, dtype, b"\x89", _py2_str(array.tobytes())])
    # _reconstruct(ndarray, (0,), b"b"), then BUILD with (version, shape, dtype, fortran, raw)
    args = _py2_tuple([b"cnumpy\nndarray\n", _py2_tuple([_py2_int(0)]), _py2_str(b"b")])
    return b"cnumpy.core.multiarray\n_reconstruct\n" + args + b"R" + state + b"b"


def _py2_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, np.ndarray):
        return _py2_array(value)
    if isinstance(value, list):
        return b"]" + (b"(" + b"".join(_py2_value(v) for v in value) + b"e" if value else b"")
    if isinstance(value, dict):
        body = b"".join(_py2_value(k) + _py2_value(v) for k, v in value.items())
        return b"}" + (b"(" + body + b"u" if value else b"")
    raise TypeError(type(value))


def py2_pickle(value: Any) -> bytes:
    """``value`` (dicts, lists, bytes, ints, uint8 arrays) pickled as Python 2 cPickle did."""
    return b"\x80\x02" + _py2_value(value) + b"."


CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
           b"ship", b"truck"]


def write_fake_batches(folder: Path, per_batch: int = 6, seed: int = 0) -> dict[str, Any]:
    """A tiny ``cifar-10-batches-py`` in ``folder``: 5 train batches and a test batch of
    ``per_batch`` random images each, plus ``batches.meta``. Returns the arrays written
    (``train_rows``/``test_rows`` (n, 3072) uint8 and ``train_labels``/``test_labels``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"train_rows": [], "train_labels": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        files = [f"img_{name}_{i}.png".encode() for i in range(per_batch)]
        batch = {b"batch_label": f"{name} of 6".encode(), b"labels": labels, b"data": rows,
                 b"filenames": files}
        (folder / name).write_bytes(py2_pickle(batch))
        if name == "test_batch":
            out["test_rows"], out["test_labels"] = rows, labels
        else:
            out["train_rows"].append(rows)
            out["train_labels"] += labels
    out["train_rows"] = np.concatenate(out["train_rows"])
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CLASSES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return out
