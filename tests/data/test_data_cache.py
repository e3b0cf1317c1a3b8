"""The decoded-array cache: hit on reload, invalidated by any change of the PNG files.

Runs on a small temporary copy of real CIFAR-10 PNGs with a temporary ``SCFRONT_CACHE``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import scfront.data.folders as folders
from scfront.data import load_cifar10
from scfront.data.layout import CIFAR10_CLASSES

PER_CLASS = 3


@pytest.fixture()
def small_cifar(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp/cifar10/test/<class>/`` with the first PER_CLASS real PNGs of each class."""
    for cls in CIFAR10_CLASSES:
        src = data_root / "cifar10" / "test" / cls
        dst = tmp_path / "cifar10" / "test" / cls
        dst.mkdir(parents=True)
        for name in sorted(os.listdir(src))[:PER_CLASS]:
            shutil.copy2(src / name, dst / name)
    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture()
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of files each call to the decoder gets."""
    calls: list[int] = []
    real = folders.decode_images

    def counting(paths, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(folders, "decode_images", counting)
    return calls


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "cache" / "datasets").glob("*.npy"))


def _pil(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def test_second_load_hits_the_cache(small_cifar: Path, decode_calls: list[int]) -> None:
    first = load_cifar10(small_cifar, "test")
    assert decode_calls == [10 * PER_CLASS]
    files = _cache_files(small_cifar)
    assert len(files) == 1 and files[0].name.startswith("cifar10-test-32px-")
    cached = np.load(files[0], allow_pickle=False)
    assert np.array_equal(cached, first.images.numpy())
    second = load_cifar10(small_cifar / "cifar10", "test")
    assert decode_calls == [10 * PER_CLASS]  # no second decode
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_changed_added_removed_files_invalidate(small_cifar: Path, decode_calls: list[int]) -> None:
    base = load_cifar10(small_cifar, "test")
    cat = small_cifar / "cifar10" / "test" / "cat"
    target = sorted(cat.iterdir())[1]
    # Replace the content with another real image (a different size on disk), keep the name.
    donor = sorted((small_cifar / "cifar10" / "test" / "ship").iterdir())[0]
    shutil.copyfile(donor, target)
    changed = load_cifar10(small_cifar, "test")
    assert len(decode_calls) == 2
    index = 3 * PER_CLASS + 1  # cat is class 3; the second file of its folder
    assert np.array_equal(changed.images[index].numpy(), _pil(donor))
    assert not np.array_equal(changed.images[index].numpy(), base.images[index].numpy())
    assert len(_cache_files(small_cifar)) == 1  # the superseded array was deleted

    # Same bytes, new modification time: still a different listing.
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_cifar10(small_cifar, "test")
    assert len(decode_calls) == 3

    shutil.copyfile(donor, cat / "zz_extra.png")
    added = load_cifar10(small_cifar, "test")
    assert len(added) == 10 * PER_CLASS + 1 and added.labels[index + 2] == 3
    (cat / "zz_extra.png").unlink()
    target.unlink()
    removed = load_cifar10(small_cifar, "test")
    assert len(removed) == 10 * PER_CLASS - 1
    assert len(decode_calls) == 5


def test_unreadable_or_wrong_cache_is_redecoded(small_cifar: Path, decode_calls: list[int],
                                                caplog: pytest.LogCaptureFixture) -> None:
    good = load_cifar10(small_cifar, "test")
    (path,) = _cache_files(small_cifar)
    path.write_bytes(b"not a npy file")
    again = load_cifar10(small_cifar, "test")
    assert torch.equal(again.images, good.images) and len(decode_calls) == 2
    assert "ignoring unreadable cache file" in caplog.text
    np.save(path, np.zeros((2, 3, 32, 32), np.uint8))  # readable, wrong shape
    assert torch.equal(load_cifar10(small_cifar, "test").images, good.images)
    assert len(decode_calls) == 3
    # an object array is never unpickled from the cache
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert torch.equal(load_cifar10(small_cifar, "test").images, good.images)
    assert len(decode_calls) == 4


def test_use_cache_false_writes_nothing(small_cifar: Path, decode_calls: list[int]) -> None:
    load_cifar10(small_cifar, "test", use_cache=False)
    load_cifar10(small_cifar, "test", use_cache=False)
    assert len(decode_calls) == 2 and _cache_files(small_cifar) == []


def test_unwritable_cache_only_costs_speed(small_cifar: Path, decode_calls: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = small_cifar / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SCFRONT_CACHE", str(blocker))
    dataset = load_cifar10(small_cifar, "test")
    assert len(dataset) == 10 * PER_CLASS and len(decode_calls) == 1


def test_process_pool_decode_matches_serial(small_cifar: Path) -> None:
    from scfront.data.decode import DecodeMode, decode_images
    from scfront.data.layout import CIFAR10_FOLDERS, list_split

    paths = list_split(small_cifar / "cifar10", "test", CIFAR10_FOLDERS).paths()
    # Repeat the files so the pool path (several chunks, two processes) is taken.
    many = paths * 90
    pooled = decode_images(many, 32, DecodeMode.EXACT, workers=2)
    serial = np.stack([_pil(Path(p)) for p in paths])
    assert np.array_equal(pooled, np.concatenate([serial] * 90))


def test_process_pool_resize_matches_serial(small_cifar: Path) -> None:
    from scfront.data.decode import DecodeMode, decode_file, decode_images
    from scfront.data.layout import CIFAR10_FOLDERS, list_split

    paths = list_split(small_cifar / "cifar10", "test", CIFAR10_FOLDERS).paths() * 5  # 150 files
    pooled = decode_images(paths, 20, DecodeMode.RESIZE_CROP, workers=2)
    serial = np.stack([decode_file(p, 20, DecodeMode.RESIZE_CROP) for p in paths[:30]])
    assert pooled.shape == (150, 3, 20, 20)
    assert np.array_equal(pooled, np.concatenate([serial] * 5))
