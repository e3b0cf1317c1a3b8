"""The DCT basis of the ablation (docs/method.md §8, item 6).

An orthonormal separable 3-D DCT-II of a p x p x c patch: atom (u, v, w) is
``a[w, i, j] = C_p[u, i] * C_p[v, j] * C_c[w, ch]`` with the orthonormal 1-D DCT-II matrix
``C_n[k, t] = s_k cos(pi (2t + 1) k / (2n))``, ``s_0 = sqrt(1/n)``, ``s_k = sqrt(2/n)``. The
p*p*c atoms form an orthonormal basis (a complete, not overcomplete, dictionary): 48 atoms for
4x4x3 patches. Atoms are ordered by total frequency u + v + w, then lexicographically, so the
constant (DC) atom comes first.
"""

from __future__ import annotations

import math

import torch

from scfront.dictionary.core import Dictionary
from scfront.errors import InputError


def dct_matrix(n: int) -> torch.Tensor:
    """(n, n) float64 orthonormal DCT-II matrix; row k is the k-th basis vector."""
    if n < 1:
        raise InputError(f"DCT size must be positive, got {n}")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * t + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] = math.sqrt(1.0 / n)
    return matrix


def dct_dictionary(patch_size: int = 4, channels: int = 3) -> Dictionary:
    """The orthonormal 3-D DCT-II basis as a :class:`Dictionary`.

    Returns:
        atoms (p*p*c, c, p, p) float32 with unit L2 norm and pairwise zero inner products.
    """
    spatial = dct_matrix(patch_size)
    spectral = dct_matrix(channels)
    # basis[u, v, w, ch, i, j] = C_p[u, i] C_p[v, j] C_c[w, ch]
    basis = torch.einsum("ui,vj,wc->uvwcij", spatial, spatial, spectral)
    freqs = [(u + v + w, u, v, w) for u in range(patch_size) for v in range(patch_size)
             for w in range(channels)]
    order = sorted(freqs)
    atoms = torch.stack([basis[u, v, w] for _, u, v, w in order])
    meta = {"method": "dct", "patch_size": patch_size, "channels": channels}
    return Dictionary(atoms.to(torch.float32), meta)
