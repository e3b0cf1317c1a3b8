"""PGD.continue_from: k steps, then k more from where they stopped, are one run of 2k steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scfront.attacks.registry import create_attack, with_params
from scfront.errors import InputError
from scfront.sampling import RowGenerators


@pytest.mark.parametrize("name", ["pgd-linf", "pgd-l2"])
def test_continuing_a_run_equals_a_run_with_twice_the_steps(name: str, toy_model: nn.Module,
                                                            toy_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = toy_data
    x, y = x[:32], y[:32]
    attack = create_attack(name, eps=0.15 if name == "pgd-linf" else 1.5, steps=4)
    generators = RowGenerators.seeded(0, "continue", rows=range(32))
    first = attack(toy_model, x, y, generator=generators)
    doubled = with_params(attack, steps=8)(toy_model, x, y, generator=RowGenerators.seeded(0, "continue",
                                                                                           rows=range(32)))
    robust = (~first.success).nonzero().squeeze(1)
    assert 0 < robust.numel() < 32  # some points left for the second half, some broken already
    more = attack.continue_from(toy_model, x[robust], y[robust], first.x_adv[robust])
    # the same iterates: the same verdicts, the same points (up to batched-kernel rounding)
    assert torch.equal(first.success | _scatter(more.success, robust, 32), doubled.success)
    assert torch.allclose(more.x_adv, doubled.x_adv[robust], atol=1e-6)
    assert attack.threat.contains(more.x_adv, x[robust]).all()


def _scatter(values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=values.dtype)
    out[rows] = values
    return out


def test_continue_from_needs_one_point_per_image(toy_model: nn.Module,
                                                 toy_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = toy_data
    attack = create_attack("pgd-linf", steps=2)
    with pytest.raises(InputError, match="points to continue from"):
        attack.continue_from(toy_model, x[:4], y[:4], x[:3])
