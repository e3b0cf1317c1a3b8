"""The official CIFAR-10 python release (batches folder and tarball), read without unsafe
unpickling; tiny fake releases in the real byte format (see conftest.write_fake_batches)."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_cifar_release import CLASSES, py2_pickle, write_fake_batches

from scfront.data import find_cifar10, load_cifar10
from scfront.data.cifar10 import Cifar10Format
from scfront.data.cifar_batches import unpickle_batch
from scfront.errors import DatasetError


def _expected_images(rows: np.ndarray) -> np.ndarray:
    # Independent per-pixel reading of the documented row layout: 1024 R, 1024 G, 1024 B values,
    # each plane row-major.
    n = rows.shape[0]
    out = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            for y in range(32):
                out[i, c, y, :] = rows[i, c * 1024 + y * 32 : c * 1024 + y * 32 + 32]
    return out


def _make_tarball(tmp_path: Path) -> tuple[Path, dict]:
    written = write_fake_batches(tmp_path / "src" / "cifar-10-batches-py")
    tarball = tmp_path / "release" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return tarball, written


def test_fake_batches_match_the_standard_unpickler(tmp_path: Path) -> None:
    written = write_fake_batches(tmp_path)
    data = (tmp_path / "test_batch").read_bytes()
    with warnings.catch_warnings():  # numpy 2 warns about the numpy.core name numpy 1 wrote
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = pickle.loads(data, encoding="bytes")
    ours = unpickle_batch(data, "test_batch")
    assert np.array_equal(ours["data"], reference[b"data"])
    assert np.array_equal(ours["data"], written["test_rows"])
    assert ours["labels"] == reference[b"labels"] == written["test_labels"]
    assert ours["filenames"] == reference[b"filenames"]


@pytest.mark.parametrize("layout", ["batches_dir", "parent", "cifar10_parent"])
def test_load_python_batches_in_official_order(tmp_path: Path, layout: str) -> None:
    target = {
        "batches_dir": tmp_path / "cifar-10-batches-py",
        "parent": tmp_path / "cifar-10-batches-py",
        "cifar10_parent": tmp_path / "cifar10" / "cifar-10-batches-py",
    }[layout]
    written = write_fake_batches(target)
    root = target if layout == "batches_dir" else tmp_path
    assert find_cifar10(root).format is Cifar10Format.BATCHES
    train, test = load_cifar10(root, "train"), load_cifar10(root, "test")
    assert train.classes == [c.decode() for c in CLASSES]
    assert train.images.shape == (30, 3, 32, 32) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images.numpy(), _expected_images(written["train_rows"]))
    assert train.labels.tolist() == written["train_labels"]
    assert np.array_equal(test.images.numpy(), _expected_images(written["test_rows"]))
    assert test.labels.tolist() == written["test_labels"] and test.labels.dtype == torch.int64
    image, label = test[2]
    assert image.dtype == torch.float32 and label == written["test_labels"][2]
    assert torch.equal(image, test.images[2].float() / 255)


def test_tarball_is_md5_checked_then_read(tmp_path: Path) -> None:
    tarball, written = _make_tarball(tmp_path)
    # The official checksum does not match this tiny archive: refused before any unpickling.
    with pytest.raises(DatasetError, match="md5"):
        load_cifar10(tarball.parent, "test")
    md5 = hashlib.md5(tarball.read_bytes()).hexdigest()
    assert find_cifar10(tarball.parent).format is Cifar10Format.TARBALL
    for root in (tarball.parent, tarball):
        test = load_cifar10(root, "test", expected_md5=md5)
        assert np.array_equal(test.images.numpy(), _expected_images(written["test_rows"]))
    assert len(load_cifar10(tarball, "train", expected_md5=md5)) == 30


def test_code_execution_pickles_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_batches(folder)
    # Protocol 0: os.system("touch <marker>") on load with a normal unpickler.
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(DatasetError, match="os.system is not allowed"):
        load_cifar10(folder, "test")
    assert not marker.exists()
    builtins_eval = b"\x80\x02cbuiltins\neval\nU\x041+1\x85R."
    with pytest.raises(DatasetError, match="builtins.eval"):
        unpickle_batch(builtins_eval, "x")


def test_object_arrays_and_array_subclasses_are_refused() -> None:
    obj_dtype = (b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.")
    with pytest.raises(DatasetError, match="dtype"):
        unpickle_batch(obj_dtype, "x")
    subclass = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R."
    with pytest.raises(DatasetError, match="subtype"):
        unpickle_batch(subclass, "x")


def test_malformed_batches_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_batches(folder)
    bad_rows = {b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(py2_pickle(bad_rows))
    with pytest.raises(DatasetError, match=r"test_batch: 'data' must be a uint8 array \(n, 3072\)"):
        load_cifar10(folder, "test")
    bad_labels = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}
    (folder / "test_batch").write_bytes(py2_pickle(bad_labels))
    with pytest.raises(DatasetError, match="'labels' must be a list of 2 ints in"):
        load_cifar10(folder, "test")
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x01(U\x04data")  # truncated
    with pytest.raises(DatasetError, match="not a valid CIFAR-10 python batch"):
        load_cifar10(folder, "test")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing file .*data_batch_3"):
        load_cifar10(folder, "train")
