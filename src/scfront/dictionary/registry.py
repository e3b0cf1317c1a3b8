"""Dictionaries by name: the ones shipped with scfront, the DCT bases, or an npz path.

Shipped files live in ``scfront/assets/dictionaries/`` and are produced by
``scfront dictionary learn`` (the exact commands are in results/dictionaries/README.md):

- ``cifar10``: the faithful (scikit-learn) learner on the CIFAR-10 training set, 500 atoms of
  4x4x3 at stride 2, alpha 1: the dictionary the paper's method uses by default.
- ``cifar10_fast``: the fast torch learner, same sizes.
- ``imagenette``: the faithful learner on Imagenette at 160x160, 1000 atoms of 8x8x3 at
  stride 4, alpha 0.5, 10,000 steps of 5.
- ``dct<p>`` (e.g. ``dct4``): the orthonormal 3-D DCT-II basis of p x p x 3 patches, computed
  on the fly (the paper's DCT ablation is ``dct4``).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from scfront.dictionary.core import Dictionary
from scfront.dictionary.dct import dct_dictionary
from scfront.dictionary.npz import load_dictionary
from scfront.errors import CheckpointError

SHIPPED: dict[str, str] = {
    "cifar10": "cifar10.npz",
    "cifar10_fast": "cifar10_fast.npz",
    "imagenette": "imagenette.npz",
}
_DCT = re.compile(r"dct(\d+)")


def shipped_path(name: str) -> Path:
    """Path of the shipped dictionary file ``name`` (which may be absent from a build)."""
    if name not in SHIPPED:
        raise CheckpointError(f"no shipped dictionary {name!r}; known: {', '.join(SHIPPED)}")
    return Path(str(resources.files("scfront") / "assets" / "dictionaries" / SHIPPED[name]))


def available_dictionaries() -> list[str]:
    """Names accepted by :func:`get_dictionary` (shipped files present, plus ``dct4``)."""
    return [name for name in SHIPPED if shipped_path(name).is_file()] + ["dct4"]


def get_dictionary(name_or_path: str | Path) -> Dictionary:
    """A shipped dictionary by name, a DCT basis (``dct<p>``), or an npz file by path.

    Raises:
        CheckpointError: an unknown name, a missing file, or a file that is not a dictionary.
    """
    text = str(name_or_path)
    match = _DCT.fullmatch(text)
    if match:
        return dct_dictionary(int(match.group(1)))
    if text in SHIPPED:
        path = shipped_path(text)
        if not path.is_file():
            raise CheckpointError(f"shipped dictionary {text!r} is missing from this installation "
                                  f"(expected {path.name} in scfront/assets/dictionaries)")
        dictionary = load_dictionary(path)
        return Dictionary(dictionary.atoms, {**dictionary.meta, "source": f"scfront:{text}"})
    path = Path(text)
    if path.suffix == ".npz" or path.exists():
        return load_dictionary(path)
    raise CheckpointError(
        f"unknown dictionary {text!r}: give an .npz path or one of {', '.join(SHIPPED)}, dct4"
    )
