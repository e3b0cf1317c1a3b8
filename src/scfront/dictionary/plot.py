"""Atom grid pictures: every atom as a small RGB tile, min-max normalised on its own.

Each atom (3, p, p) is mapped to [0, 1] by ``(a - min a) / (max a - min a)`` (a constant atom is
drawn mid-grey), then tiles are laid out row by row in atom order with a one-pixel white border.
Drawn with matplotlib's Agg canvas directly (no pyplot global state, no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from scfront.dictionary.core import Dictionary
from scfront.errors import InputError
from scfront.io import atomic_write


def normalised_tiles(dictionary: Dictionary) -> torch.Tensor:
    """(n_atoms, p, p, c) float32 in [0, 1]: each atom min-max normalised independently."""
    atoms = dictionary.atoms.permute(0, 2, 3, 1)
    low = atoms.flatten(1).min(1).values[:, None, None, None]
    high = atoms.flatten(1).max(1).values[:, None, None, None]
    span = high - low
    tiles = (atoms - low) / span.clamp_min(1e-12)
    return torch.where(span > 1e-12, tiles, torch.full_like(tiles, 0.5))


def atom_grid(dictionary: Dictionary, columns: int | None = None) -> np.ndarray:
    """(rows * (p + 1) + 1, columns * (p + 1) + 1, c) float in [0, 1]: the tiled mosaic."""
    n, p = dictionary.n_atoms, dictionary.patch_size
    columns = columns or math.ceil(math.sqrt(n))
    if columns < 1:
        raise InputError(f"the atom grid needs at least one column, got {columns}")
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (p + 1) + 1, columns * (p + 1) + 1, dictionary.channels))
    tiles = normalised_tiles(dictionary).numpy()
    for index in range(n):
        r, c = divmod(index, columns)
        top, left = 1 + r * (p + 1), 1 + c * (p + 1)
        grid[top: top + p, left: left + p] = tiles[index]
    return grid


def plot_atoms(dictionary: Dictionary, path: str | Path, columns: int | None = None,
               title: str | None = None) -> Path:
    """Save the atom grid of ``dictionary`` as a PNG at ``path`` (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = atom_grid(dictionary, columns)
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)
    height, width = grid.shape[:2]
    scale = max(1.0, 800.0 / max(height, width))  # about 800 pixels on the longer side
    figure = Figure(figsize=(width * scale / 100.0, height * scale / 100.0 + (0.4 if title else 0)),
                    dpi=100)
    FigureCanvasAgg(figure)
    title_pixels = 40 if title else 0
    axes = figure.add_axes((0.0, 0.0, 1.0, height * scale / (height * scale + title_pixels)))
    axes.imshow(grid, interpolation="nearest")
    axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=10, y=0.995)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
