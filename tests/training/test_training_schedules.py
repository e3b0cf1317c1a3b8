"""Learning-rate schedules against PyTorch's own schedulers (independent implementations)."""

from __future__ import annotations

import pytest
import torch

from scfront.config import TrainConfig
from scfront.training.schedules import learning_rate


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_onecycle_matches_cycliclr_stepped_per_batch() -> None:
    config = TrainConfig(epochs=4, lr_max=0.05)
    steps = 6
    opt = _optimizer()
    reference = torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=0.0, max_lr=0.05, step_size_up=config.epochs * steps / 2,
        step_size_down=config.epochs * steps / 2, cycle_momentum=False)
    for epoch in range(config.epochs):
        for batch in range(steps):
            assert learning_rate(config, epoch, batch, steps) == pytest.approx(opt.param_groups[0]["lr"])
            opt.step()
            reference.step()


def test_onecycle_shape() -> None:
    config = TrainConfig(epochs=2, lr_max=0.02)
    rates = [learning_rate(config, e, b, 5) for e in range(2) for b in range(5)]
    assert rates[0] == 0.0 and max(rates) == pytest.approx(0.02) and rates.index(max(rates)) == 5
    assert all(a < b for a, b in zip(rates[:5], rates[1:6]))  # rising to the middle
    assert all(a > b for a, b in zip(rates[5:], rates[6:]))  # then falling


def test_step_schedule_matches_multisteplr_and_is_constant_within_epochs() -> None:
    config = TrainConfig(epochs=6, lr_max=0.01, schedule="step", lr_milestones=(2, 4), lr_gamma=0.1)
    opt = _optimizer()
    opt.param_groups[0]["lr"] = 0.01
    reference = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    for epoch in range(config.epochs):
        for batch in range(3):
            assert learning_rate(config, epoch, batch, 3) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()


def test_multiplicative_and_constant() -> None:
    mult = TrainConfig(epochs=5, lr_max=0.1, schedule="multiplicative", lr_gamma=0.9)
    assert [learning_rate(mult, e, 0, 1) for e in range(5)] == pytest.approx([0.1 * 0.9 ** e for e in range(5)])
    const = TrainConfig(epochs=3, lr_max=0.3, schedule="constant")
    assert {learning_rate(const, e, b, 4) for e in range(3) for b in range(4)} == {0.3}


def test_positions_outside_the_run_are_errors() -> None:
    config = TrainConfig(epochs=2)
    with pytest.raises(ValueError, match="outside the run"):
        learning_rate(config, 2, 0, 3)
