"""Fixtures for the attack tests: a small MLP trained in about a second on synthetic images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scfront.data import load_synthetic


def tiny_mlp(num_classes: int = 10) -> nn.Module:
    """(N, 3, 8, 8) in [0, 1] -> logits (N, num_classes); deterministic initialisation."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # test-only: the parameter initialisers draw from the global RNG
        model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, num_classes))
    finally:
        torch.random.set_rng_state(gen_state)
    return model


@pytest.fixture(scope="session")
def toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    """64 held-out synthetic images (64, 3, 8, 8) float in [0, 1] and labels (64,)."""
    ds = load_synthetic(64, image_size=8, seed=1)
    return ds.images.float() / 255.0, ds.labels


@pytest.fixture(scope="session")
def toy_model() -> nn.Module:
    """The tiny MLP trained with Adam for 150 full-batch steps on 512 synthetic images (eval)."""
    ds = load_synthetic(512, image_size=8, seed=0)
    x, y = ds.images.float() / 255.0, ds.labels
    model = tiny_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures are set up before the per-test thread fixture
    try:
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(before)
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model
