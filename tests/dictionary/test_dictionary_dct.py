"""The DCT basis against scipy's orthonormal n-D DCT-II."""

from __future__ import annotations

import pytest
import scipy.fft
import torch

from scfront.dictionary.dct import dct_dictionary, dct_matrix


@pytest.mark.parametrize("p,c", [(4, 3), (2, 1), (3, 3), (8, 3)])
def test_basis_is_orthonormal(p: int, c: int) -> None:
    dictionary = dct_dictionary(p, c)
    flat = dictionary.atoms.flatten(1).double()
    assert dictionary.n_atoms == p * p * c
    assert torch.allclose(flat @ flat.T, torch.eye(p * p * c, dtype=torch.float64), atol=1e-6)


def test_first_atom_is_constant_and_default_is_48_atoms() -> None:
    dictionary = dct_dictionary()
    assert dictionary.atoms.shape == (48, 3, 4, 4)
    assert torch.allclose(dictionary.atoms[0], torch.full((3, 4, 4), 48 ** -0.5))


def test_coefficients_match_scipy_dctn() -> None:
    p, c = 4, 3
    patch = torch.rand(c, p, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.from_numpy(scipy.fft.dctn(patch.numpy(), type=2, norm="ortho"))  # (w, u, v)
    coefficients = dct_dictionary(p, c).atoms.double().flatten(1) @ patch.flatten()
    # Documented order: total frequency u + v + w, then (u, v, w) lexicographically.
    order = sorted((u + v + w, u, v, w) for u in range(p) for v in range(p) for w in range(c))
    in_order = torch.stack([expected[w, u, v] for _, u, v, w in order])
    assert torch.allclose(coefficients, in_order, atol=1e-6)
    assert torch.allclose(dct_matrix(5), torch.from_numpy(scipy.fft.dct(
        torch.eye(5, dtype=torch.float64).numpy(), type=2, norm="ortho", axis=0)), atol=1e-12)
