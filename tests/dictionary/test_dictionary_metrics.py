"""Metrics on matrices whose answers are known in closed form."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from scfront.dictionary.core import Dictionary
from scfront.dictionary.dct import dct_dictionary
from scfront.dictionary.lasso import fista_codes, lars_codes, lasso_objective, soft_threshold
from scfront.dictionary.metrics import (count_flat_atoms, count_near_duplicates,
                                        dictionary_stats, heldout_objective, mutual_coherence)
from scfront.dictionary.npz import load_dictionary

def from_rows(rows: list[list[float]], p: int = 1) -> Dictionary:
    return Dictionary.from_flat(torch.tensor(rows, dtype=torch.float32), p, 3)


def test_coherence_of_known_matrices() -> None:
    assert mutual_coherence(from_rows([[1, 0, 0], [0, 1, 0], [0, 0, 1]])) == 0.0
    angle = 0.3
    pair = from_rows([[1, 0, 0], [math.cos(angle), math.sin(angle), 0]])
    assert abs(mutual_coherence(pair) - math.cos(angle)) < 1e-6
    # Sign and scale do not matter: -2 d is the same direction as d.
    assert abs(mutual_coherence(from_rows([[1, 2, 3], [-2, -4, -6], [3, -1, 0]])) - 1.0) < 1e-6
    assert mutual_coherence(dct_dictionary()) < 1e-6


def test_flat_atom_count() -> None:
    rows = [[1, 1, 1], [-1, -1, -1.1], [1, 1, 0.2], [1, 0, 0], [1, -1, 0]]
    # |cos| with (1, 1, 1)/sqrt 3: 1, 0.9997, 0.853, 0.577, 0
    assert count_flat_atoms(from_rows(rows)) == 2
    assert count_flat_atoms(from_rows(rows), threshold=0.5) == 4
    assert count_flat_atoms(dct_dictionary()) == 1


def test_near_duplicate_count() -> None:
    rows = [[1, 0, 0], [0.999, 0.01, 0], [0, 1, 0], [0, -1, 0.05], [0, 0, 1], [1, 1, 1]]
    assert count_near_duplicates(from_rows(rows)) == 4
    assert count_near_duplicates(dct_dictionary()) == 0


def test_reference_has_265_flat_atoms(reference_dir: Path) -> None:
    path = reference_dir / "dictionaries" / "cifar10_ps4_n500.npz"
    stats = dictionary_stats(load_dictionary(path))
    assert stats.flat_atoms == 265
    assert stats.coherence > 0.999


def test_heldout_objective_of_orthonormal_basis_is_soft_thresholding() -> None:
    dictionary = dct_dictionary()
    patches = torch.rand(300, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam = 0.4
    coefficients = patches @ dictionary.flat().double().T
    shrunk = soft_threshold(coefficients, lam)
    expected = (0.5 * (coefficients - shrunk).pow(2).sum(1) + lam * shrunk.abs().sum(1)).mean()
    result = heldout_objective(dictionary, patches, lam)
    assert abs(result.objective - float(expected)) < 1e-5
    assert abs(result.objective - (result.reconstruction + lam * result.l1)) < 1e-9
    assert result.n_patches == 300


def test_lars_is_optimal_and_fista_converges_to_it() -> None:
    generator = torch.Generator().manual_seed(1)
    atoms = torch.randn(30, 12, generator=generator, dtype=torch.float64)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    patches = torch.rand(40, 12, generator=generator, dtype=torch.float64)
    lam = 0.2
    exact = lars_codes(patches, atoms, lam)
    # Optimality (KKT): |D (x - D^T a)| <= lam everywhere, = lam sign(a) on the support.
    correlation = (patches - exact @ atoms) @ atoms.T
    assert float(correlation.abs().max()) <= lam + 1e-8
    support = exact.abs() > 1e-10
    assert torch.allclose(correlation[support], lam * exact[support].sign(), atol=1e-8)
    approximate = fista_codes(patches, atoms, lam, iterations=400)
    gap = (lasso_objective(patches, atoms, approximate, lam)
           - lasso_objective(patches, atoms, exact, lam))
    assert float(gap.max()) < 1e-6 and float(gap.min()) > -1e-8
