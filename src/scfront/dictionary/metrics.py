"""Quality measures of a dictionary: held-out sparse coding objective, coherence, flat atoms.

- Held-out objective: mean over patches of ``0.5 ||x - a D||^2 + lam ||a||_1`` with ``a`` the
  exact lasso code from scikit-learn's LARS (:func:`scfront.dictionary.lasso.lars_codes`), the
  same solver for every dictionary. Lower is better: the dictionary explains unseen patches with
  fewer, smaller coefficients at the penalty it was learned for.
- Mutual coherence: ``max_{i != j} |<d_i, d_j>| / (||d_i|| ||d_j||)`` (1 for duplicated atoms,
  0 for an orthogonal basis).
- Flat atoms: atoms whose |cosine| with the constant patch exceeds 0.9. docs/method.md §1
  records 265 of 500 for the shipped CIFAR-10 dictionary: many nearly redundant atoms.
- Near-duplicate atoms: atoms that have another atom with |cosine| > 0.99 (wasted atoms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from scfront.dictionary.core import Dictionary
from scfront.dictionary.lasso import lars_codes, lasso_objective

FLAT_COSINE = 0.9
DUPLICATE_COSINE = 0.99


def _unit_rows(dictionary: Dictionary) -> torch.Tensor:
    flat = dictionary.flat().to(torch.float64)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mutual_coherence(dictionary: Dictionary) -> float:
    """Largest |cosine| between two different atoms; 0.0 for a single atom."""
    if dictionary.n_atoms < 2:
        return 0.0
    unit = _unit_rows(dictionary)
    cosines = (unit @ unit.T).abs()
    cosines.fill_diagonal_(0.0)
    return float(cosines.max())


def count_near_duplicates(dictionary: Dictionary, threshold: float = DUPLICATE_COSINE) -> int:
    """Number of atoms having at least one other atom with |cosine| > ``threshold``."""
    if dictionary.n_atoms < 2:
        return 0
    unit = _unit_rows(dictionary)
    cosines = (unit @ unit.T).abs()
    cosines.fill_diagonal_(0.0)
    return int((cosines.max(dim=1).values > threshold).sum())


def flat_cosines(dictionary: Dictionary) -> torch.Tensor:
    """(n_atoms,) float64 |cosine| of every atom with the constant (flat) patch."""
    flat_patch = torch.full((dictionary.dim,), dictionary.dim ** -0.5, dtype=torch.float64)
    return (_unit_rows(dictionary) @ flat_patch).abs()


def count_flat_atoms(dictionary: Dictionary, threshold: float = FLAT_COSINE) -> int:
    """Number of atoms with |cosine| > ``threshold`` with the constant patch."""
    return int((flat_cosines(dictionary) > threshold).sum())


@dataclass(frozen=True)
class HeldOutObjective:
    """Mean lasso objective over held-out patches and its parts (all per patch)."""

    objective: float
    reconstruction: float  # 0.5 ||x - a D||^2
    l1: float  # ||a||_1 (the penalty is lam times this)
    nonzeros: float  # mean number of non-zero coefficients
    lam: float
    n_patches: int


def heldout_codes(dictionary: Dictionary, patches: torch.Tensor,
                  lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact LARS codes (n, n_atoms) and per-patch objectives (n,) of ``patches``, float64."""
    atoms = dictionary.flat().to(torch.float64)
    x = patches.to(torch.float64)
    codes = lars_codes(x, atoms, lam)
    return codes, lasso_objective(x, atoms, codes, lam)


def heldout_objective(dictionary: Dictionary, patches: torch.Tensor, lam: float,
                      per_patch: list[float] | None = None) -> HeldOutObjective:
    """Sparse coding objective of ``dictionary`` on ``patches`` with exact (LARS) codes.

    Args:
        patches: (n, dim) float in [0, 1], rows in (h, w, c) order like ``dictionary.flat()``.
        lam: the lasso penalty (1.0 for the paper's CIFAR-10 dictionary, 0.5 for Imagenette).
        per_patch: if given, receives the n per-patch objectives (for paired comparisons).
    """
    codes, values = heldout_codes(dictionary, patches, lam)
    if per_patch is not None:
        per_patch.extend(values.tolist())
    x = patches.to(torch.float64)
    residual = 0.5 * (x - codes @ dictionary.flat().to(torch.float64)).pow(2).sum(1)
    return HeldOutObjective(
        objective=float(values.mean()),
        reconstruction=float(residual.mean()),
        l1=float(codes.abs().sum(1).mean()),
        nonzeros=float((codes != 0).sum(1).to(torch.float64).mean()),
        lam=lam,
        n_patches=int(x.shape[0]),
    )


@dataclass(frozen=True)
class DictionaryStats:
    """Data-free statistics printed by ``scfront dictionary show``."""

    n_atoms: int
    patch_size: int
    channels: int
    l1_min: float
    l1_max: float
    l2_min: float
    l2_max: float
    coherence: float
    flat_atoms: int
    near_duplicates: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def dictionary_stats(dictionary: Dictionary) -> DictionaryStats:
    l1 = dictionary.l1_norms
    l2 = dictionary.atoms.flatten(1).norm(dim=1)
    return DictionaryStats(
        n_atoms=dictionary.n_atoms,
        patch_size=dictionary.patch_size,
        channels=dictionary.channels,
        l1_min=float(l1.min()),
        l1_max=float(l1.max()),
        l2_min=float(l2.min()),
        l2_max=float(l2.max()),
        coherence=mutual_coherence(dictionary),
        flat_atoms=count_flat_atoms(dictionary),
        near_duplicates=count_near_duplicates(dictionary),
    )
