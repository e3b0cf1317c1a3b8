"""The inner maximisation of PGD-AT and TRADES, and the three training objectives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scfront.config import TrainConfig
from scfront.training.adversarial import initial_perturbation, linf_ascent, training_loss

EPS = 8 / 255


def _linear_model() -> nn.Module:
    torch.manual_seed(0)  # test-only
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_random_starts_are_in_the_ball_and_reproducible() -> None:
    x, _ = _batch()
    pgd = TrainConfig(method="pgd_at")
    a = initial_perturbation(pgd, x, torch.Generator().manual_seed(3))
    b = initial_perturbation(pgd, x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= EPS + 1e-7 and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > EPS / 4  # spread over the ball, not at the centre
    trades = initial_perturbation(TrainConfig(method="trades"), x, torch.Generator().manual_seed(3))
    assert (trades - x).abs().max() < 0.01 and (trades - x).abs().max() > 0
    assert initial_perturbation(TrainConfig(), x, torch.Generator()) is None


def test_linf_ascent_stays_in_the_ball_and_raises_the_loss() -> None:
    model = _linear_model()
    x, y = _batch()
    loss = lambda v: F.cross_entropy(model(v), y, reduction="sum")  # noqa: E731
    x_adv = linf_ascent(loss, x, x.clone(), EPS, 1 / 255, 10)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert loss(x_adv) > loss(x)
    # One step of size ε from x is FGSM: x + ε·sign(∇), clipped to [0, 1].
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(probe), probe)
    fgsm = (x + EPS * grad.sign()).clamp(0, 1)
    torch.testing.assert_close(linf_ascent(loss, x, x.clone(), EPS, EPS, 1), fgsm)
    assert all(p.grad is None for p in model.parameters())


def test_objectives() -> None:
    model = _linear_model()
    x, y = _batch()
    gen = torch.Generator().manual_seed(0)
    natural = TrainConfig()
    loss, logits = training_loss(natural, model, model, x, y, None)
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))
    pgd = TrainConfig(method="pgd_at", attack_steps=3)
    loss_adv, logits_adv = training_loss(pgd, model, model, x, y, initial_perturbation(pgd, x, gen))
    assert loss_adv > loss  # the adversarial batch is harder
    trades = TrainConfig(method="trades", attack_steps=3, trades_beta=6.0)
    loss_t, logits_t = training_loss(trades, model, model, x, y, initial_perturbation(trades, x, gen))
    torch.testing.assert_close(logits_t, model(x))  # accuracy is measured on clean inputs
    assert loss_t >= loss - 1e-6  # CE plus a non-negative KL term
    assert model.training
