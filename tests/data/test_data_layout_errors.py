"""Bad dataset folders fail with one DatasetError that names what was expected where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scfront.data import load_cifar10, load_imagenette, resolve_dataset_dir
from scfront.data.layout import CIFAR10_CLASSES, IMAGENETTE_CLASSES
from scfront.errors import DatasetError


def _png(path: Path, size: int = 32, mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def _cifar_tree(root: Path, classes=CIFAR10_CLASSES, splits=("train", "test"), per_class=2) -> Path:
    for split in splits:
        for label, cls in enumerate(classes):
            for i in range(per_class):
                _png(root / "cifar10" / split / cls / f"img_{i}.png", seed=label * 10 + i)
    return root


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))


def test_missing_root_and_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_cifar10(tmp_path / "nope", "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no CIFAR-10 under .*empty: expected .*cifar10/\{train,"
                                           r"test\}/<class>/\*\.png"):
        load_cifar10(tmp_path / "empty", "test")
    with pytest.raises(DatasetError, match="no imagenette dataset under"):
        load_imagenette(tmp_path / "empty", "val")
    with pytest.raises(DatasetError, match="no imagenette dataset under"):
        resolve_dataset_dir(tmp_path / "empty", "imagenette")


def test_unknown_split(tmp_path: Path) -> None:
    root = _cifar_tree(tmp_path, per_class=1)
    with pytest.raises(DatasetError, match="unknown cifar10 split 'val'; choose one of train, test"):
        load_cifar10(root, "val")
    with pytest.raises(DatasetError, match="unknown imagenette split 'test'"):
        load_imagenette(root, "test")


def test_missing_split_folder(tmp_path: Path) -> None:
    root = _cifar_tree(tmp_path, splits=("train",), per_class=1)
    assert len(load_cifar10(root, "train")) == 10
    with pytest.raises(DatasetError, match=r"missing folder .*cifar10/test: expected cifar10 "
                                           r"images as .*test/<class>/\*\.png"):
        load_cifar10(root, "test")


def test_wrong_class_folders(tmp_path: Path) -> None:
    classes = list(CIFAR10_CLASSES[:-1]) + ["trucks"]
    root = _cifar_tree(tmp_path, classes=classes, splits=("test",), per_class=1)
    with pytest.raises(DatasetError, match=r"wrong class folders in .*test \(missing truck; "
                                           r"unexpected trucks\): expected exactly airplane, "):
        load_cifar10(root, "test")


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _cifar_tree(tmp_path, splits=("test",), per_class=1)
    for path in (root / "cifar10" / "test" / "frog").iterdir():
        path.unlink()
    (root / "cifar10" / "test" / "frog" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"class folder .*test/frog holds no \.png images"):
        load_cifar10(root, "test")


def test_wrong_image_size_and_mode(tmp_path: Path) -> None:
    root = _cifar_tree(tmp_path, splits=("test",), per_class=1)
    bad = root / "cifar10" / "test" / "dog" / "img_0.png"
    _png(bad, size=28)
    with pytest.raises(DatasetError, match=r"dog/img_0\.png: expected a 32x32 image, got 28x28") as err:
        load_cifar10(root, "test")
    assert "cannot decode" not in str(err.value)  # one message, not a wrapped one
    _png(bad, mode="RGBA")
    with pytest.raises(DatasetError, match=r"img_0\.png: expected an RGB image, got mode RGBA"):
        load_cifar10(root, "test")
    _png(bad, mode="L")  # grey PNGs convert to RGB losslessly: accepted
    gray = load_cifar10(root, "test")
    dog = gray.images[gray.labels == 5][0]
    assert (dog[0] == dog[1]).all() and (dog[1] == dog[2]).all()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_png_is_named(tmp_path: Path, damage: str) -> None:
    root = _cifar_tree(tmp_path, splits=("test",), per_class=1)
    bad = root / "cifar10" / "test" / "ship" / "img_0.png"
    data = bad.read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x89PNG\r\n\x1a\n" + b"x" * 200,
                     "empty": b""}[damage])
    with pytest.raises(DatasetError, match=r"cannot decode image .*ship/img_0\.png"):
        load_cifar10(root, "test")


def test_imagenette_wrong_wnids(tmp_path: Path) -> None:
    for wnid in IMAGENETTE_CLASSES[:9]:
        _png(tmp_path / "imagenette" / "val" / wnid / "a.JPEG")
    with pytest.raises(DatasetError, match=r"wrong class folders .*val \(missing n03888257\)"):
        load_imagenette(tmp_path, "val", image_size=32)
