"""Imagenette: the shared subset's counts, labels and resizing, and resize-then-crop geometry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scfront.data import ImageDataset, load_imagenette
from scfront.data.decode import DecodeMode, decode_file
from scfront.data.layout import IMAGENETTE_CLASSES


@pytest.mark.slow  # first run decodes and resizes 1,500 JPEGs (cached afterwards)
def test_val_split(imagenette_val: ImageDataset, imagenette_root: Path) -> None:
    ds = imagenette_val
    assert len(ds) == 1500 and ds.counts() == [150] * 10
    assert ds.images.shape == (1500, 3, 160, 160) and ds.images.dtype == torch.uint8
    assert ds.classes == sorted(ds.classes) == list(IMAGENETTE_CLASSES)
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(150))
    files = [imagenette_root / "val" / wnid / name for wnid in IMAGENETTE_CLASSES
             for name in sorted(os.listdir(imagenette_root / "val" / wnid))]
    for i in torch.randperm(1500, generator=torch.Generator().manual_seed(0))[:10].tolist():
        with Image.open(files[i]) as image:  # the shared copy is 224x224: a plain resize
            assert image.size == (224, 224)
            expected = np.asarray(image.convert("RGB").resize((160, 160), Image.BILINEAR))
        assert np.array_equal(ds.images[i].numpy(), expected.transpose(2, 0, 1)), files[i]


def test_train_count_from_listing(imagenette_root: Path) -> None:
    # Decoding 4,000 JPEGs is left to the reproduction runs; the loader's listing gives N.
    from scfront.data.layout import IMAGENETTE_FOLDERS, list_split

    listing = list_split(imagenette_root, "train", IMAGENETTE_FOLDERS)
    assert len(listing) == 4000 and listing.counts() == [400] * 10


def test_small_copy_with_both_root_forms(tmp_path: Path, imagenette_root: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))
    for split in ("train", "val"):
        for wnid in IMAGENETTE_CLASSES:
            dst = tmp_path / "imagenette" / split / wnid
            dst.mkdir(parents=True)
            for name in sorted(os.listdir(imagenette_root / split / wnid))[:2]:
                os.symlink(imagenette_root / split / wnid / name, dst / name)
    train = load_imagenette(tmp_path, "train", image_size=48)
    val = load_imagenette(tmp_path / "imagenette", "val", image_size=48)
    assert train.images.shape == val.images.shape == (20, 3, 48, 48)
    assert train.labels.tolist() == [i // 2 for i in range(20)]
    image, label = val[5]
    assert image.dtype == torch.float32 and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert label == 2


@pytest.mark.parametrize("size_wh", [(90, 60), (60, 90)])
def test_resize_shorter_side_then_center_crop(tmp_path: Path, size_wh: tuple[int, int]) -> None:
    w, h = size_wh
    # Three vertical (or horizontal) bands; only the middle one survives the center crop.
    pixels = np.zeros((h, w, 3), np.uint8)
    if w > h:
        pixels[:, : w // 3] = (255, 0, 0)
        pixels[:, w // 3 : 2 * w // 3] = (0, 255, 0)
        pixels[:, 2 * w // 3 :] = (0, 0, 255)
    else:
        pixels[: h // 3] = (255, 0, 0)
        pixels[h // 3 : 2 * h // 3] = (0, 255, 0)
        pixels[2 * h // 3 :] = (0, 0, 255)
    path = tmp_path / "bands.png"
    Image.fromarray(pixels).save(path)
    out = decode_file(str(path), 20, DecodeMode.RESIZE_CROP)
    assert out.shape == (3, 20, 20) and out.dtype == np.uint8
    # shorter side 60 -> 20, longer 90 -> 30, crop the middle 20: columns 5..24 of 30, which
    # cover the whole green band (10..19) and parts of the red and blue ones, symmetrically.
    profile = out[:, 10, :] if w > h else out[:, :, 10]
    green = profile[1] > 200
    assert green[7:13].all() and not green[:3].any() and not green[-3:].any()
    assert (profile[0, :3] > 200).all() and (profile[2, -3:] > 200).all()
