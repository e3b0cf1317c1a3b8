"""Both learners on tiny problems: determinism, unit atoms, lower objective."""

from __future__ import annotations

import pytest
import torch

from scfront.dictionary.fast import FastSettings, initial_atoms, learn_fast
from scfront.dictionary.faithful import FaithfulSettings, learn_faithful
from scfront.dictionary.core import Dictionary
from scfront.dictionary.metrics import heldout_objective
from scfront.dictionary.patches import PatchSampler

def blocky_images(n: int, seed: int) -> torch.Tensor:
    """(n, 3, 16, 16) uint8 images of coloured 4x4 blocks plus noise: structured patches."""
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.rand(n, 3, 4, 4, generator=generator)
    images = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)
    images = images + 0.05 * torch.randn(images.shape, generator=generator)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def test_faithful_learner_is_deterministic_with_a_seed() -> None:
    images = blocky_images(40, seed=0)
    settings = FaithfulSettings(n_atoms=24, steps=15, seed=3, init_patches=500)
    first = learn_faithful(images, settings)
    again = learn_faithful(images, settings)
    other = learn_faithful(images, FaithfulSettings(n_atoms=24, steps=15, seed=4, init_patches=500))
    assert first.atoms.shape == (24, 3, 4, 4)
    assert torch.equal(first.atoms, again.atoms)
    assert not torch.equal(first.atoms, other.atoms)
    assert torch.allclose(first.atoms.flatten(1).norm(dim=1), torch.ones(24), atol=1e-5)
    assert first.meta["patches_used"] == 75 and first.meta["sklearn"]["fit_algorithm"] == "lars"


def test_fast_learner_lowers_the_heldout_objective() -> None:
    train, held_out = blocky_images(100, seed=1), blocky_images(20, seed=2)
    settings = FastSettings(n_atoms=32, steps=25, batch_size=128, fista_iterations=10, seed=5)
    sampler = PatchSampler(train, 4, 2, torch.Generator().manual_seed(settings.seed))
    start = Dictionary.from_flat(initial_atoms(sampler, settings.n_atoms), 4, 3)
    learned = learn_fast(train, settings)
    patches = PatchSampler(held_out, 4, 2, torch.Generator().manual_seed(0)).sample(200)
    before = heldout_objective(start, patches, settings.alpha).objective
    after = heldout_objective(learned, patches, settings.alpha).objective
    assert after < 0.99 * before
    assert torch.allclose(learned.atoms.flatten(1).norm(dim=1), torch.ones(32), atol=1e-5)
    assert learned.meta["patches_seen"] == 25 * 128


def test_fast_learner_is_deterministic_with_a_seed() -> None:
    train = blocky_images(20, seed=3)
    settings = FastSettings(n_atoms=16, steps=12, batch_size=64, fista_iterations=5,
                            resample_every=3, seed=1)
    first = learn_fast(train, settings)
    assert torch.equal(first.atoms, learn_fast(train, settings).atoms)
    other = learn_fast(train, FastSettings(n_atoms=16, steps=12, batch_size=64,
                                           fista_iterations=5, resample_every=3, seed=2))
    assert not torch.equal(first.atoms, other.atoms)
