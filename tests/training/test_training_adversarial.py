"""The inner maximisation of PGD-AT and TRADES (the attack suite's PGD), and the three objectives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scfront.attacks.pgd import PGD
from scfront.config import TrainConfig, TrainMethod
from scfront.training.adversarial import _kl_from, initial_perturbation, inner_attack, training_loss

EPS = 8 / 255


class _ModeProbe(nn.Module):
    """A linear classifier that records the mode of each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)  # test-only: layer init
        self.linear = nn.Linear(3 * 8 * 8, 10)
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.linear(x.flatten(1))


def _linear_model() -> nn.Module:
    torch.manual_seed(0)  # test-only
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _reference_ascent(loss_fn, x: torch.Tensor, start: torch.Tensor, eps: float, step: float,
                      steps: int) -> torch.Tensor:
    """Madry et al.'s inner loop written out: last iterate of ``x' ← clip(x' + step·sign(∇))``."""
    lower, upper = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = start.clone()
    for _ in range(steps):
        probe = x_adv.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(probe), probe)
        x_adv = torch.minimum(torch.maximum(x_adv + step * grad.sign(), lower), upper)
    return x_adv


def test_the_inner_attack_is_the_suites_pgd_with_the_training_settings() -> None:
    config = TrainConfig(method="pgd_at", attack_eps=4 / 255, attack_step=0.5 / 255, attack_steps=7)
    attack = inner_attack(config)
    assert isinstance(attack, PGD) and attack.name == "pgd-linf"
    assert attack.threat.eps == 4 / 255 and attack.effective_step_size == 0.5 / 255
    assert attack.steps == 7 and attack.random_start


def test_config_strings_are_enums_once_built() -> None:
    assert TrainConfig(method="trades").method is TrainMethod.TRADES


def test_random_starts_are_in_the_ball_and_reproducible() -> None:
    x, _ = _batch()
    pgd = TrainConfig(method="pgd_at")
    a = initial_perturbation(pgd, x, torch.Generator().manual_seed(3))
    b = initial_perturbation(pgd, x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= EPS + 1e-7 and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > EPS / 4  # spread over the ball, not at the centre
    # the attack suite's own random start, drawn for the whole batch
    torch.testing.assert_close(a, inner_attack(pgd).threat.random_start(x, torch.Generator().manual_seed(3)),
                               rtol=0, atol=0)
    trades = initial_perturbation(TrainConfig(method="trades"), x, torch.Generator().manual_seed(3))
    assert (trades - x).abs().max() < 0.01 and (trades - x).abs().max() > 0
    assert initial_perturbation(TrainConfig(), x, torch.Generator()) is None


def test_pgd_at_crafts_the_last_iterate_of_madrys_loop() -> None:
    model = _linear_model()
    x, y = _batch(64)
    config = TrainConfig(method="pgd_at", attack_steps=10)
    start = initial_perturbation(config, x, torch.Generator().manual_seed(0))
    loss = lambda v: F.cross_entropy(model(v), y, reduction="sum")  # noqa: E731
    expected = _reference_ascent(loss, x, start, EPS, 1 / 255, 10)
    x_adv = inner_attack(config).ascend(model, x, y, start, keep_first=False)
    # same algorithm; the projection's rounding (x + clip(x' - x)) may move a coordinate by an ulp
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-6)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert loss(x_adv) > loss(start)
    # An evaluation keeps the first misclassified iterate instead: a different point for some.
    first = inner_attack(config).ascend(model, x, y, start)
    assert not torch.allclose(first, x_adv, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_one_step_of_size_eps_is_fgsm() -> None:
    model = _linear_model()
    x, y = _batch()
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(probe), y, reduction="sum"), probe)
    fgsm = (x + EPS * grad.sign()).clamp(0, 1)
    attack = inner_attack(TrainConfig(method="pgd_at", attack_step=EPS, attack_steps=1))
    torch.testing.assert_close(attack.ascend(model, x, y, x.clone(), keep_first=False), fgsm)


def test_objectives_and_the_modes_they_craft_in() -> None:
    model = _ModeProbe()
    x, y = _batch()
    gen = torch.Generator().manual_seed(0)
    natural = TrainConfig()
    loss, logits = training_loss(natural, model, model, x, y, None)
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))
    pgd = TrainConfig(method="pgd_at", attack_steps=3)
    model.modes.clear()
    loss_adv, logits_adv = training_loss(pgd, model, model, x, y, initial_perturbation(pgd, x, gen))
    assert loss_adv > loss  # the adversarial batch is harder
    assert model.modes == [True] * 4  # crafted in train mode (3 steps), then the training forward
    trades = TrainConfig(method="trades", attack_steps=3, trades_beta=6.0)
    model.modes.clear()
    loss_t, logits_t = training_loss(trades, model, model, x, y, initial_perturbation(trades, x, gen))
    assert model.modes == [False] * 4 + [True] * 2  # target + 3 steps in eval mode, then training
    torch.testing.assert_close(logits_t, model(x))  # accuracy is measured on clean inputs
    assert loss_t >= loss - 1e-6  # CE plus a non-negative KL term
    assert model.training
    with pytest.raises(ValueError, match="needs a start"):
        training_loss(pgd, model, model, x, y, None)


def test_trades_inner_loss_raises_the_kl_term() -> None:
    model = _linear_model().train()
    x, y = _batch()
    config = TrainConfig(method="trades", attack_steps=5)
    start = initial_perturbation(config, x, torch.Generator().manual_seed(4))
    with torch.no_grad():
        target = F.softmax(model(x), dim=1)
    kl = lambda v: F.kl_div(F.log_softmax(model(v), dim=1), target, reduction="sum")  # noqa: E731
    expected = _reference_ascent(kl, x, start, EPS, 1 / 255, 5)
    x_adv = inner_attack(config).ascend(model, x, y, start, loss_fn=_kl_from(target), keep_first=False)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-6)
    assert kl(x_adv) > kl(start)
