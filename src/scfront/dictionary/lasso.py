"""Sparse coding of patches: the lasso problem of dictionary learning.

For a patch x (dim,) and a dictionary D (n_atoms, dim) with one atom per row, the code is

    alpha* = argmin_a  0.5 ||x - a D||_2^2 + lam ||a||_1          (Mairal et al. 2009, the loss l)

with ``lam`` the ``alpha`` of scikit-learn's ``MiniBatchDictionaryLearning`` (its LARS solver
divides the penalty by n_features because ``LassoLars`` averages the squared error over the
rows of the regression, so both describe this same objective).

Two solvers, one per use:
- :func:`lars_codes`: scikit-learn's ``lasso_lars`` (exact up to floating point): the reference
  solver of every held-out measurement, so that dictionaries are compared on equal terms.
- :func:`fista_codes`: a fixed number of FISTA iterations (Beck & Teboulle 2009) on whole
  batches in torch: approximate, fast, used inside the fast learner.
"""

from __future__ import annotations

import numpy as np
import torch

from scfront.errors import InputError


def _check(patches: torch.Tensor, atoms: torch.Tensor) -> None:
    if patches.ndim != 2 or atoms.ndim != 2 or patches.shape[1] != atoms.shape[1]:
        raise InputError(
            f"patches (n, dim) and flat atoms (n_atoms, dim) must agree, got "
            f"{tuple(patches.shape)} and {tuple(atoms.shape)}"
        )


def lasso_objective(patches: torch.Tensor, atoms: torch.Tensor, codes: torch.Tensor,
                    lam: float) -> torch.Tensor:
    """(n,) per-patch objective 0.5 ||x - a D||^2 + lam ||a||_1, in the dtype of the inputs.

    Args:
        patches: (n, dim) float; atoms: (n_atoms, dim) float (flat rows, any order as long as
            the patches use the same); codes: (n, n_atoms) float.
    """
    _check(patches, atoms)
    residual = patches - codes @ atoms
    return 0.5 * residual.pow(2).sum(1) + lam * codes.abs().sum(1)


def lars_codes(patches: torch.Tensor, atoms: torch.Tensor, lam: float,
               max_iter: int = 1000) -> torch.Tensor:
    """(n, n_atoms) float64 exact lasso codes by scikit-learn's LARS (``lasso_lars``).

    Args:
        patches: (n, dim) float; atoms: (n_atoms, dim) float; lam: penalty (> 0).
        max_iter: LARS steps per patch (scikit-learn's ``transform_max_iter`` default).
    """
    from sklearn.decomposition import sparse_encode

    _check(patches, atoms)
    if lam <= 0:
        raise InputError(f"the lasso penalty must be positive, got {lam}")
    x = patches.detach().cpu().to(torch.float64).numpy()
    d = atoms.detach().cpu().to(torch.float64).numpy()
    codes = sparse_encode(x, d, algorithm="lasso_lars", alpha=lam, max_iter=max_iter)
    return torch.from_numpy(np.ascontiguousarray(codes))


def soft_threshold(z: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """sign(z) max(|z| - threshold, 0): the proximal operator of threshold * ||.||_1."""
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0.0)


def fista_codes(patches: torch.Tensor, atoms: torch.Tensor, lam: float, iterations: int,
                lipschitz: float | None = None) -> torch.Tensor:
    """(n, n_atoms) approximate lasso codes after ``iterations`` FISTA steps.

    The start is the best one-atom code (the atom of largest |<x, d_j>|, its coefficient soft
    thresholded), not zero: raw patches are dominated by their mean, which one near-flat atom
    carries, and on coherent dictionaries (hundreds of near-flat atoms, Lipschitz constant in
    the hundreds) FISTA from zero spends its first tens of steps spreading that mass over all of
    them. On the shipped CIFAR-10 dictionary this start puts 10 steps within 1 % of the exact
    objective, where 80 steps from zero remain 1 % above it.

    The gradient of the smooth part is ``-(x - a D) D^T``. It is formed through the residual
    (two products with D, ``2 n n_atoms dim`` operations) rather than through the Gram matrix
    (``n n_atoms^2``): 5x fewer operations for 500 atoms of dimension 48. Its Lipschitz constant
    is the largest eigenvalue of ``D D^T`` (computed here unless given). Everything stays in the
    dtype and device of ``patches``.

    Args:
        patches: (n, dim) float; atoms: (n_atoms, dim) float, same dtype and device.
        lam: penalty; iterations: number of FISTA steps (the objective gap falls as O(1/k^2)).
        lipschitz: optional precomputed largest eigenvalue of ``D D^T``.
    """
    _check(patches, atoms)
    if lipschitz is None:
        # The non-zero eigenvalues of D D^T and D^T D agree; the latter is dim x dim.
        lipschitz = float(torch.linalg.eigvalsh((atoms.T @ atoms).double()).max())
    step = 1.0 / max(lipschitz, 1e-12)
    threshold = lam * step
    correlation = patches @ atoms.T
    best = correlation.abs().argmax(1, keepdim=True)
    value = correlation.gather(1, best)
    value = (value - value.clamp(-lam, lam)) / atoms.pow(2).sum(1)[best].clamp_min(1e-12)
    codes = torch.zeros_like(correlation).scatter_(1, best, value)
    point = codes
    t = 1.0
    for _ in range(iterations):
        residual = patches - point @ atoms
        moved = torch.addmm(point, residual, atoms.T, alpha=step)  # gradient step
        new_codes = moved - moved.clamp(-threshold, threshold)  # soft threshold
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        # Nesterov extrapolation: new + ((t - 1) / t_next) (new - old).
        point = torch.lerp(codes, new_codes, 1.0 + (t - 1.0) / t_next)
        codes, t = new_codes, t_next
    return codes
