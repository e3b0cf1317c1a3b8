"""The original learner: scikit-learn's online dictionary learning, driven step by step.

docs/method.md §1: ``MiniBatchDictionaryLearning(n_components=500, alpha=1.0, batch_size=5,
fit_algorithm='lars', transform_algorithm='omp')`` fitted on raw patches of the training images
(no centering, no normalisation) for 1000 mini-batch steps of 5 patches. That count followed the
old ``n_iter`` parameter; scikit-learn >= 1.4 counts ``max_iter`` in epochs over all patches, so
this module calls ``partial_fit`` once per step instead. The old ``fit`` did three more things
that ``partial_fit`` alone would not, and which are reproduced here:

1. Initialisation from the SVD of *all* training patches (``partial_fit`` would use the SVD of
   its first 5 patches): the top right singular vectors scaled by their singular values, padded
   with zero atoms up to ``n_atoms``, passed as ``dict_init``. The SVD is computed on a seeded
   sample and its singular values are scaled by sqrt(total / sample) to match the full patch
   matrix (the scale decides how strongly the first LARS steps use these atoms).
2. Batches were consecutive slices of the shuffled patch matrix: here a seeded draw of
   ``steps * batch_size`` distinct patches (cycled if the image set has fewer).
3. Atoms were rescaled to unit L2 norm after every update; current scikit-learn only projects
   them into the unit ball, so the final atoms are rescaled to unit norm (the file format and the
   encoder's L1-norm thresholds assume unit atoms).

Everything random comes from ``seed``: a ``torch.Generator`` for the patch draws and scikit-learn's
own ``RandomState(seed)`` for its dead-atom resampling. No global random state is touched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from scfront.dictionary.core import Dictionary
from scfront.dictionary.patches import PatchSampler, require_positive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaithfulSettings:
    """Settings of the original learner; defaults are the paper's CIFAR-10 dictionary."""

    n_atoms: int = 500
    patch_size: int = 4
    stride: int = 2
    alpha: float = 1.0
    batch_size: int = 5
    steps: int = 1000
    seed: int = 0
    init_patches: int = 200_000  # seeded sample for the SVD initialisation

    def __post_init__(self) -> None:
        require_positive("faithful learner", self,
                         ("n_atoms", "patch_size", "stride", "batch_size", "steps", "init_patches",
                          "alpha"))


def svd_initialisation(sampler: PatchSampler, n_atoms: int, n_patches: int) -> np.ndarray:
    """(n_atoms, dim) float64: S V^T of the patch matrix, rows beyond its rank set to zero.

    The singular values of a uniform sample of ``m`` rows out of ``M`` are about sqrt(m / M)
    times those of all rows, hence the rescaling.
    """
    n_patches = min(n_patches, sampler.total)
    sample = sampler.sample(n_patches, replace=False).to(torch.float64)
    _, singular, vh = torch.linalg.svd(sample, full_matrices=False)
    scaled = (singular * (sampler.total / n_patches) ** 0.5)[:, None] * vh
    init = np.zeros((n_atoms, sampler.dim), dtype=np.float64)
    rank = min(n_atoms, scaled.shape[0])
    init[:rank] = scaled[:rank].numpy()
    return init


def learn_faithful(images: torch.Tensor, settings: FaithfulSettings = FaithfulSettings(),
                   progress: Callable[[int], None] | None = None) -> Dictionary:
    """Learn a dictionary exactly as the original code did (see the module docstring).

    Args:
        images: (N, 3, H, W) uint8 in [0, 255] or float in [0, 1]: the training images.
        settings: learner settings; ``progress(k)`` is called after every ``k`` finished steps.

    Returns:
        A :class:`Dictionary` of ``n_atoms`` unit-norm atoms; ``meta`` records the settings, the
        scikit-learn version, the number of patches used and the wall time in seconds.
    """
    import sklearn
    from sklearn.decomposition import MiniBatchDictionaryLearning

    start, cpu_start = time.perf_counter(), time.process_time()
    generator = torch.Generator().manual_seed(settings.seed)
    sampler = PatchSampler(images, settings.patch_size, settings.stride, generator)
    init = svd_initialisation(sampler, settings.n_atoms, settings.init_patches)
    learner = MiniBatchDictionaryLearning(
        n_components=settings.n_atoms, alpha=settings.alpha, batch_size=settings.batch_size,
        fit_algorithm="lars", transform_algorithm="omp", dict_init=init,
        random_state=settings.seed,
    )
    needed = settings.steps * settings.batch_size
    order = sampler.indices(min(needed, sampler.total), replace=False)
    for step in range(settings.steps):
        # Consecutive slices of the shuffled patches, cycling like the old gen_batches.
        positions = torch.arange(step * settings.batch_size,
                                 (step + 1) * settings.batch_size) % order.shape[0]
        batch = sampler.gather(order[positions]).to(torch.float64).numpy()
        learner.partial_fit(batch)
        if progress is not None:
            progress(1)
    components = np.asarray(learner.components_, dtype=np.float64)
    norms = np.linalg.norm(components, axis=1)
    rescaled = int(np.sum(np.abs(norms - 1.0) > 1e-6))
    components = components / np.maximum(norms, 1e-12)[:, None]
    seconds = time.perf_counter() - start
    log.info("faithful learner: %d steps in %.1f s (%d atoms rescaled to unit norm)",
             settings.steps, seconds, rescaled)
    meta = {
        "method": "faithful",
        "settings": asdict(settings),
        "sklearn": {"n_components": settings.n_atoms, "alpha": settings.alpha,
                    "batch_size": settings.batch_size, "fit_algorithm": "lars",
                    "transform_algorithm": "omp", "partial_fit_steps": settings.steps,
                    "version": sklearn.__version__},
        "patches_used": int(min(needed, sampler.total)),
        "atoms_rescaled_to_unit_norm": rescaled,
        "seconds": round(seconds, 2),
        # CPU time of this process: comparable across runs on a shared, loaded machine.
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
    }
    rows = torch.from_numpy(components.astype(np.float32))
    return Dictionary.from_flat(rows, settings.patch_size, int(images.shape[1]), meta)
