"""``scfront data info`` and ``scfront data download`` argument handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from scfront.cli import main


def test_info_on_the_shared_data(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "cifar10: " in out and "(image folders)" in out
    assert "train: 50000 images" in out and "test: 10000 images" in out
    assert "airplane 1000, automobile 1000" in out and "truck 5000" in out
    if (data_root / "imagenette").is_dir():
        assert "train: 4000 images" in out and "val: 1500 images" in out


def test_info_reports_cache_status_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from scfront.data import load_cifar10
    from scfront.data.layout import CIFAR10_CLASSES

    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))
    for cls in CIFAR10_CLASSES:
        (tmp_path / "cifar10" / "test" / cls).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "cifar10" / "test" / cls / "a.png")
    assert main(["data", "info", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test: 10 images, not cached at 32px" in out
    assert "train: unusable: missing folder" in out and "imagenette: not found" in out
    load_cifar10(tmp_path, "test")
    assert main(["data", "info", "--data-root", str(tmp_path)]) == 0
    assert "test: 10 images, cached at 32px" in capsys.readouterr().out


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--data-root", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "download", "--dataset", "imagenette", "--dest", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["data", "download"])  # --dest is required
