"""Nearest differently-labelled starting points: exact against brute force, and misclassified."""

from __future__ import annotations

import torch
from torch import nn

from scfront.attacks.blackbox.oracle import Oracle
from scfront.attacks.blackbox.starts import StartPool, blend_search, misclassified_starts, nearest_other_label


def _linear(seed: int = 0, side: int = 8) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * side * side, 10))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(10, 3 * side * side, generator=gen) * 0.1)
        model[1].bias.zero_()
    return model.eval()


def test_nearest_other_label_matches_brute_force():
    gen = torch.Generator().manual_seed(1)
    pool_images = (torch.rand(300, 3, 8, 8, generator=gen) * 255).round().to(torch.uint8)
    pool_labels = torch.randint(0, 10, (300,), generator=gen)
    x = torch.rand(25, 3, 8, 8, generator=gen)
    y = torch.randint(0, 10, (25,), generator=gen)
    pool = StartPool(pool_images, chunk=64)  # several chunks, to test the running top-k merge
    index, dist = nearest_other_label(x, y, pool, pool_labels)
    floats = pool_images.double() / 255
    brute = ((x.double()[:, None] - floats[None]) ** 2).flatten(2).sum(2).sqrt()
    brute[pool_labels[None, :] == y[:, None]] = float("inf")
    best_dist, best_index = brute.min(1)
    assert torch.equal(index, best_index)
    assert torch.allclose(dist, best_dist, rtol=0, atol=1e-6)  # pool pixels are float32 k/255
    assert (pool_labels[index] != y).all()


def test_no_candidate_gives_minus_one():
    pool = StartPool(torch.rand(5, 3, 4, 4))
    index, dist = nearest_other_label(torch.rand(2, 3, 4, 4), torch.tensor([3, 3]), pool, torch.full((5,), 3))
    assert (index == -1).all() and torch.isinf(dist).all()


def test_starts_are_misclassified_and_from_the_pool():
    model = _linear()
    gen = torch.Generator().manual_seed(2)
    pool_images = torch.rand(200, 3, 8, 8, generator=gen)
    x = torch.rand(20, 3, 8, 8, generator=gen)
    y = model(x).argmax(1)
    oracle = Oracle(model)
    starts, found = misclassified_starts(oracle, x, y, StartPool(pool_images), gen)
    assert found.all()
    assert (model(starts).argmax(1) != y).all()
    # each start is a pool image: the nearest one the model labels differently
    pool_pred = model(pool_images).argmax(1)
    d = ((x[:, None] - pool_images[None]) ** 2).flatten(2).sum(2)
    d[pool_pred[None, :] == y[:, None]] = float("inf")
    assert torch.equal(starts, pool_images[d.argmin(1)])


def test_blend_search_stays_adversarial_and_gets_closer():
    model = _linear(3)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(10, 3, 8, 8, generator=gen)
    y = model(x).argmax(1)
    starts, found = misclassified_starts(Oracle(model), x, y, None, gen)
    assert found.all()
    near = blend_search(Oracle(model), x, y, starts)
    assert (model(near).argmax(1) != y).all()
    assert ((near - x).flatten(1).norm(dim=1) <= (starts - x).flatten(1).norm(dim=1) + 1e-6).all()
