"""Registry names, atom grid pictures and the ``scfront dictionary`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scfront.cli import main
from scfront.dictionary.core import Dictionary
from scfront.dictionary.npz import save_dictionary
from scfront.dictionary.plot import atom_grid, normalised_tiles, plot_atoms
from scfront.dictionary.registry import (SHIPPED, available_dictionaries, get_dictionary,
                                         shipped_path)
from scfront.errors import CheckpointError


def test_shipped_dictionaries_are_small_unit_norm_files() -> None:
    for name in SHIPPED:
        path = shipped_path(name)
        if not path.is_file():
            continue  # a shipped file still being learned is reported by available_dictionaries
        assert path.stat().st_size < 1_000_000
        dictionary = get_dictionary(name)
        norms = dictionary.atoms.flatten(1).norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
        assert dictionary.meta["method"] in ("faithful", "fast")
        assert dictionary.meta["source"] == f"scfront:{name}"
    assert "cifar10" in available_dictionaries()
    assert get_dictionary("cifar10").atoms.shape == (500, 3, 4, 4)


def test_names_paths_and_errors(tmp_path: Path) -> None:
    assert get_dictionary("dct4").n_atoms == 48
    assert get_dictionary("dct2").atoms.shape == (12, 3, 2, 2)
    path = save_dictionary(Dictionary(torch.eye(12).reshape(12, 2, 2, 3).permute(0, 3, 1, 2)),
                           tmp_path / "mine.npz")
    assert get_dictionary(str(path)).n_atoms == 12
    with pytest.raises(CheckpointError, match="unknown dictionary"):
        get_dictionary("cifar100")
    with pytest.raises(CheckpointError, match="does not exist"):
        get_dictionary(str(tmp_path / "absent.npz"))


def test_atom_grid_normalises_each_atom() -> None:
    atoms = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    atoms[3] = 0.7  # a constant atom is drawn mid-grey
    dictionary = Dictionary(atoms)
    tiles = normalised_tiles(dictionary)
    for k in (0, 1, 2, 4):
        atom = atoms[k].permute(1, 2, 0)
        assert torch.allclose(tiles[k], (atom - atom.min()) / (atom.max() - atom.min()))
    assert torch.all(tiles[3] == 0.5)
    grid = atom_grid(dictionary, columns=3)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    assert np.allclose(grid[4:6, 4:6], tiles[4].numpy())  # atom 4: row 1, column 1


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot_atoms(get_dictionary("dct4"), tmp_path / "grid.png", title="dct4")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_cli_show_and_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["dictionary", "show", "dct4", "--plot", str(tmp_path / "dct.png")]) == 0
    out = capsys.readouterr().out
    assert "48 of 4x4x3" in out and "flat atoms   1" in out
    assert (tmp_path / "dct.png").is_file()
    (tmp_path / "bad.npz").write_bytes(b"nope")
    assert main(["dictionary", "show", str(tmp_path / "bad.npz")]) == 2
    assert "not an npz" in capsys.readouterr().err
    assert main(["dictionary", "learn", "--out", str(tmp_path / "x.npz"), "--atoms", "0",
                 "--data-root", str(tmp_path)]) == 2
    assert "n_atoms must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_learn_and_compare_on_cifar10(data_root: Path, tmp_path: Path, capsys) -> None:
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    out = tmp_path / "tiny.npz"
    with threadpool_limits(limits=1):
        assert main(["dictionary", "learn", "--method", "fast", "--data-root", str(data_root),
                     "--out", str(out), "--atoms", "20", "--steps", "3", "--batch-size", "64",
                     "--fista-iterations", "3"]) == 0
        assert main(["dictionary", "compare", f"tiny={out}", "dct4", "--data-root",
                     str(data_root), "--n-patches", "100", "--out-dir", str(tmp_path)]) == 0
    learned = get_dictionary(str(out))
    assert learned.n_atoms == 20 and learned.meta["dataset"] == "cifar10"
    assert "$SCFRONT_DATA" in learned.meta["command"]  # no absolute path in the file
    report = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["label"] for row in report["dictionaries"]] == ["tiny", "dct4"]
    assert report["context"]["n_patches"] == 100 and report["context"]["split"] == "test"
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| tiny | fast | 20 |" in markdown and "Lowest held-out objective" in markdown
