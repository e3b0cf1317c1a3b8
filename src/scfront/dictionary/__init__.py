"""Patch dictionaries: extraction, learning (scikit-learn-faithful and fast torch), the DCT
basis, the original npz file format, quality metrics and atom plots (docs/method.md §1).

- :class:`Dictionary`: atoms (n_atoms, 3, p, p) float32.
- :func:`load_dictionary` / :func:`save_dictionary`: the original npz format, read safely.
- :func:`get_dictionary`: a shipped dictionary by name ("cifar10", "cifar10_fast",
  "imagenette"), a DCT basis ("dct4") or an npz path.
- :func:`extract_patches`, :class:`PatchSampler`: (h, w, c)-flattened patches.
- :func:`learn_faithful`, :func:`learn_fast`, :func:`dct_dictionary`: the learners.
- :func:`heldout_objective`, :func:`mutual_coherence`, :func:`count_flat_atoms`: metrics.
- :func:`plot_atoms`: the atom grid as a PNG.

Names are imported lazily (PEP 562) so that ``scfront --help`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_EXPORTS = {
    "Dictionary": "scfront.dictionary.core",
    "load_dictionary": "scfront.dictionary.npz",
    "save_dictionary": "scfront.dictionary.npz",
    "get_dictionary": "scfront.dictionary.registry",
    "available_dictionaries": "scfront.dictionary.registry",
    "extract_patches": "scfront.dictionary.patches",
    "PatchSampler": "scfront.dictionary.patches",
    "dct_dictionary": "scfront.dictionary.dct",
    "FaithfulSettings": "scfront.dictionary.faithful",
    "learn_faithful": "scfront.dictionary.faithful",
    "FastSettings": "scfront.dictionary.fast",
    "learn_fast": "scfront.dictionary.fast",
    "heldout_objective": "scfront.dictionary.metrics",
    "mutual_coherence": "scfront.dictionary.metrics",
    "count_flat_atoms": "scfront.dictionary.metrics",
    "dictionary_stats": "scfront.dictionary.metrics",
    "plot_atoms": "scfront.dictionary.plot",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary
    from scfront.dictionary.dct import dct_dictionary
    from scfront.dictionary.faithful import FaithfulSettings, learn_faithful
    from scfront.dictionary.fast import FastSettings, learn_fast
    from scfront.dictionary.metrics import (count_flat_atoms, dictionary_stats,
                                            heldout_objective, mutual_coherence)
    from scfront.dictionary.npz import load_dictionary, save_dictionary
    from scfront.dictionary.patches import PatchSampler, extract_patches
    from scfront.dictionary.plot import plot_atoms
    from scfront.dictionary.registry import available_dictionaries, get_dictionary


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
