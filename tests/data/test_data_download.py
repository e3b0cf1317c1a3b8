"""Verification and safe extraction of the CIFAR-10 release tarball (no network used)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fake_cifar_release import write_fake_batches

from scfront.data import load_cifar10
from scfront.data.download import download_file, extract_cifar10
from scfront.errors import DatasetError


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tarball(tmp_path: Path, extra: list[tarfile.TarInfo] | None = None) -> Path:
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_fake_batches(src)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(src, arcname="cifar-10-batches-py")
        for info in extra or []:
            data = b"evil" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_extract_verified_tarball(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path)
    folder = extract_cifar10(tarball, tmp_path / "out", expected_md5=_md5(tarball))
    assert folder == tmp_path / "out" / "cifar-10-batches-py"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batches.meta"] + [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:  # byte-identical to what was packed
        assert (folder / name).read_bytes() == (tmp_path / "src" / "cifar-10-batches-py" / name).read_bytes()
    from_folder = load_cifar10(tmp_path / "out", "test")
    from_tarball = load_cifar10(tarball, "test", expected_md5=_md5(tarball))
    assert np.array_equal(from_folder.images.numpy(), from_tarball.images.numpy())


def test_md5_mismatch_extracts_nothing(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path)
    with pytest.raises(DatasetError, match="md5 .* does not match the expected c58f3010"):
        extract_cifar10(tarball, tmp_path / "out")  # the official md5
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("member", ["../escape", "cifar-10-batches-py/../../escape", "/tmp/abs",
                                    "other/file", "link", "cifar-10-batches-py"])
def test_unsafe_members_are_refused(tmp_path: Path, member: str) -> None:
    info = tarfile.TarInfo(member if member != "link" else "cifar-10-batches-py/link")
    if member == "link":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tarball = _tarball(tmp_path, [info])
    out = tmp_path / "deep" / "out"
    with pytest.raises(DatasetError, match="refusing archive member"):
        extract_cifar10(tarball, out, expected_md5=_md5(tarball))
    assert not (tmp_path / "deep" / "escape").exists() and not (tmp_path / "escape").exists()
    assert not out.exists()  # members are all checked before anything is written


def test_not_a_tarball_and_no_http(tmp_path: Path) -> None:
    bogus = tmp_path / "cifar-10-python.tar.gz"
    bogus.write_bytes(b"definitely not gzip")
    with pytest.raises(DatasetError, match="cannot read .* as a gzip tar archive"):
        extract_cifar10(bogus, tmp_path / "out", expected_md5=_md5(bogus))
    with pytest.raises(DatasetError, match="non-https"):
        download_file("http://example.com/x.tar.gz", tmp_path / "x", "0" * 32)
