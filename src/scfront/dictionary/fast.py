"""A fast online dictionary learner in torch that sees far more patches than the original.

Same objective as the original learner, ``min_D mean_x min_a 0.5 ||x - a D||^2 + lam ||a||_1``
over unit-norm atoms (Mairal, Bach, Ponce, Sapiro 2009, "Online dictionary learning for sparse
coding"), but on mini-batches of thousands of patches, with the whole batch coded at once:

1. Sparse coding: ``fista_iterations`` FISTA steps from the best one-atom code
   (:func:`fista_codes`), batched matrix products instead of one LARS path per patch.
2. Sufficient statistics ``A = E[a a^T]`` and ``B = E[x a^T]`` as weighted running means: the
   weight of a new batch is ``max(1 / t, 1 / memory)``, an exact mean over the first ``memory``
   batches, then exponential forgetting of the early, poorly coded batches (Mairal et al.
   likewise down-weight the first iterations, whose codes used a poor dictionary).
3. Dictionary update: one pass of block coordinate descent over the atoms on the surrogate
   ``0.5 Tr(D^T D A) - Tr(D^T B)`` (Mairal's Algorithm 2), each atom projected onto the unit
   sphere (the file format and the encoder's thresholds assume unit atoms).
4. Dead atoms (Mairal et al. purge unused atoms too): every ``resample_every`` steps, atoms
   whose share of ``trace(A)`` fell below ``dead_fraction / n_atoms`` are replaced by the
   worst-coded patches of the current batch (largest residual), normalised, and their
   statistics reset. Natural patches are mostly flat; reseeding from random patches (as
   scikit-learn does) fills the dictionary with near-copies of a few patches, reseeding from
   the residuals spends atoms on what the code cannot yet explain.

Everything random comes from a ``torch.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from scfront.dictionary.core import Dictionary
from scfront.dictionary.lasso import fista_codes, lasso_objective
from scfront.dictionary.patches import PatchSampler, require_positive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastSettings:
    """Settings of the fast learner; defaults give a CIFAR-10 dictionary in a few CPU minutes."""

    n_atoms: int = 500
    patch_size: int = 4
    stride: int = 2
    alpha: float = 1.0
    batch_size: int = 2048
    steps: int = 400
    fista_iterations: int = 20
    memory: int = 100  # batches; the running statistics forget at rate 1 / memory after that
    resample_every: int = 10
    dead_fraction: float = 0.01
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        require_positive("fast learner", self,
                         ("n_atoms", "patch_size", "stride", "batch_size", "steps",
                          "fista_iterations", "memory", "resample_every", "alpha"))


def _normalise_rows(rows: torch.Tensor) -> torch.Tensor:
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


def initial_atoms(sampler: PatchSampler, n_atoms: int) -> torch.Tensor:
    """(n_atoms, dim) float32: random training patches scaled to unit norm (the first draw of
    ``sampler``, so a sampler seeded like the learner's reproduces its starting point)."""
    return _normalise_rows(sampler.sample(n_atoms))


def _update_atoms(atoms: torch.Tensor, a_stat: torch.Tensor, b_stat: torch.Tensor) -> None:
    """One block coordinate descent pass, in place (Mairal et al. 2009, Algorithm 2).

    atoms: (k, dim); a_stat: (k, k) = E[a a^T]; b_stat: (k, dim) = E[a x^T] (B transposed, so
    that row j is the statistic of atom j).
    """
    for j in range(atoms.shape[0]):
        weight = a_stat[j, j]
        if weight <= 1e-12:
            continue  # unused atom: left for dead-atom resampling
        update = atoms[j] + (b_stat[j] - a_stat[j] @ atoms) / weight
        atoms[j] = update / update.norm().clamp_min(1e-12)


def _resample_dead(atoms: torch.Tensor, a_stat: torch.Tensor, b_stat: torch.Tensor,
                   batch: torch.Tensor, residual_energy: torch.Tensor,
                   dead_fraction: float) -> int:
    """Replace atoms with a tiny share of trace(A) by the worst-coded patches; returns count."""
    usage = torch.diagonal(a_stat)
    dead = torch.nonzero(usage < dead_fraction * usage.sum() / atoms.shape[0]).flatten()
    count = min(int(dead.numel()), int(batch.shape[0]))
    if count == 0:
        return 0
    dead = dead[:count]
    worst = torch.topk(residual_energy, count).indices
    atoms[dead] = _normalise_rows(batch[worst])
    a_stat[dead, :] = 0.0
    a_stat[:, dead] = 0.0
    b_stat[dead] = 0.0
    return count


def learn_fast(images: torch.Tensor, settings: FastSettings = FastSettings(),
               progress: Callable[[int], None] | None = None) -> Dictionary:
    """Learn a dictionary with the fast online learner (see the module docstring).

    Args:
        images: (N, 3, H, W) uint8 in [0, 255] or float in [0, 1]: the training images.
        settings: learner settings; ``progress(k)`` is called after every ``k`` finished steps.

    Returns:
        A :class:`Dictionary` of ``n_atoms`` unit-norm atoms; ``meta`` records the settings, the
        patches seen, the running training objective and the wall time in seconds.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    generator = torch.Generator().manual_seed(settings.seed)
    sampler = PatchSampler(images, settings.patch_size, settings.stride, generator)
    device = torch.device(settings.device)
    atoms = initial_atoms(sampler, settings.n_atoms).to(device)
    k = settings.n_atoms
    a_stat = torch.zeros(k, k, device=device)
    b_stat = torch.zeros(k, sampler.dim, device=device)
    resampled = 0
    recent: list[float] = []
    for step in range(1, settings.steps + 1):
        batch = sampler.sample(settings.batch_size).to(device)
        codes = fista_codes(batch, atoms, settings.alpha, settings.fista_iterations)
        weight = max(1.0 / step, 1.0 / settings.memory)
        a_stat.mul_(1.0 - weight).add_(codes.T @ codes, alpha=weight / batch.shape[0])
        b_stat.mul_(1.0 - weight).add_(codes.T @ batch, alpha=weight / batch.shape[0])
        objective = lasso_objective(batch, atoms, codes, settings.alpha)
        recent = (recent + [float(objective.mean())])[-settings.memory:]
        _update_atoms(atoms, a_stat, b_stat)
        if step % settings.resample_every == 0 and step < settings.steps:
            residual = (batch - codes @ atoms).pow(2).sum(1)
            resampled += _resample_dead(atoms, a_stat, b_stat, batch, residual,
                                        settings.dead_fraction)
        if progress is not None:
            progress(1)
    seconds = time.perf_counter() - start
    log.info("fast learner: %d steps of %d patches in %.1f s, %d atoms resampled",
             settings.steps, settings.batch_size, seconds, resampled)
    meta = {
        "method": "fast",
        "settings": asdict(settings),
        "patches_seen": settings.steps * settings.batch_size,
        "atoms_resampled": resampled,
        "train_objective_recent": round(sum(recent) / len(recent), 5),
        "seconds": round(seconds, 2),
        # CPU time of this process: comparable across runs on a shared, loaded machine.
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
    }
    rows = atoms.to("cpu", torch.float32)
    return Dictionary.from_flat(rows, settings.patch_size, int(images.shape[1]), meta)
