"""The original npz format: round trip, (h, w, c) order, safe loading, bad files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scfront.dictionary.core import Dictionary
from scfront.dictionary.npz import load_dictionary, save_dictionary
from scfront.errors import CheckpointError


def random_dictionary(n: int = 7, p: int = 3, seed: int = 0) -> Dictionary:
    atoms = torch.randn(n, 3, p, p, generator=torch.Generator().manual_seed(seed))
    atoms = atoms / atoms.flatten(1).norm(dim=1)[:, None, None, None]
    return Dictionary(atoms, {"method": "test", "numbers": [1, 2.5], "nested": {"a": "b"}})


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    return path


def test_round_trip_is_identical(tmp_path: Path) -> None:
    dictionary = random_dictionary()
    path = save_dictionary(dictionary, tmp_path / "d.npz")
    loaded = load_dictionary(path)
    assert torch.equal(loaded.atoms, dictionary.atoms)
    assert loaded.meta["method"] == "test" and loaded.meta["nested"] == {"a": "b"}
    assert loaded.sha256() == dictionary.sha256()
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_rows_are_flattened_height_width_channel(tmp_path: Path) -> None:
    dictionary = random_dictionary(n=3, p=2, seed=1)
    path = save_dictionary(dictionary, tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as data:  # readable by plain numpy, no pickle
        rows = data["dict"]
        params = json.loads(str(data["params"][()]))
    atoms = dictionary.atoms.numpy()
    manual = np.array([[atoms[k, c, i, j] for i in range(2) for j in range(2) for c in range(3)]
                       for k in range(3)], dtype=np.float32)
    assert rows.dtype == np.float32
    assert np.array_equal(rows, manual)
    assert params["method"] == "test"


def test_reference_dictionary_loads_without_unpickling(reference_dir: Path, monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("load_dictionary must never unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    dictionary = load_dictionary(reference_dir / "dictionaries" / "cifar10_ps4_n500.npz")
    assert dictionary.flat().shape == (500, 48)
    assert dictionary.atoms.shape == (500, 3, 4, 4)
    l1 = dictionary.l1_norms
    assert 4.72 <= float(l1.min()) < 4.73 and 6.92 < float(l1.max()) <= 6.93
    assert torch.allclose(dictionary.atoms.flatten(1).norm(dim=1), torch.ones(500), atol=1e-5)
    assert "not read" in dictionary.meta["params"]
    assert dictionary.meta["stored_dtype"] == "float64"


@pytest.mark.parametrize("case,match", [
    ("missing", "does not exist"),
    ("garbage", "not an npz"),
    ("truncated", "not an npz|corrupt"),
    ("no_dict", "no 'dict'"),
    ("wrong_dim", "not 3\\*p\\*p"),
    ("one_dim", "2-D"),
    ("nan", "NaN"),
    ("object", "not a plain numeric array"),
    ("strings", "real numbers"),
])
def test_bad_files_raise_checkpoint_error(tmp_path: Path, case: str, match: str) -> None:
    path = tmp_path / "bad.npz"
    good = np.ones((4, 48))
    if case == "garbage":
        path.write_bytes(b"this is not a zip file at all")
    elif case == "truncated":
        write_npz(path, dict=good)
        path.write_bytes(path.read_bytes()[:120])
    elif case == "no_dict":
        write_npz(path, other=good)
    elif case == "wrong_dim":
        write_npz(path, dict=np.ones((4, 47)))
    elif case == "one_dim":
        write_npz(path, dict=np.ones(48))
    elif case == "nan":
        bad = good.copy()
        bad[2, 5] = np.nan
        write_npz(path, dict=bad)
    elif case == "object":
        write_npz(path, dict=np.array([{"a": 1}], dtype=object))
    elif case == "strings":
        write_npz(path, dict=np.array([["x"] * 48]))
    with pytest.raises(CheckpointError, match=match):
        load_dictionary(path)


def test_save_refuses_non_rgb(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="3-channel"):
        save_dictionary(Dictionary(torch.ones(2, 1, 4, 4)), tmp_path / "gray.npz")
