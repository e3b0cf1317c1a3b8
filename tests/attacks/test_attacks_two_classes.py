"""Attacks on two-class models (the binary models of the binarization test): the DLR losses have
no third or fourth logit for their normaliser and fall back to the plain logit difference, the
targeted attacks have one target, and every attack of @autoattack runs and breaks easy points."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scfront.attacks.losses import dlr, dlr_targeted, margin
from scfront.attacks.registry import create_attack


def test_dlr_without_a_normaliser_is_the_logit_difference() -> None:
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.tensor([0, 1, 1, 0, 1])
    assert torch.equal(dlr(z, y), -margin(z, y))
    assert torch.allclose(dlr(z, y), -(z[torch.arange(5), y] - z[torch.arange(5), 1 - y]))
    assert torch.allclose(dlr_targeted(z, y, 1 - y), -(z[torch.arange(5), y] - z[torch.arange(5), 1 - y]))
    z3 = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    y3, t3 = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 0, 1, 1])
    expected = -(z3[torch.arange(4), y3] - z3[torch.arange(4), t3])
    assert torch.allclose(dlr_targeted(z3, y3, t3), expected)


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square", "pgd-linf"])
def test_every_autoattack_attack_breaks_a_two_class_linear_model(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 48, generator=gen))
        model[1].bias.zero_()
    x = torch.rand(6, 3, 4, 4, generator=gen)
    y = model(x).argmax(1)
    extra = {"queries": 200} if name == "square" else {"steps": 20}
    result = create_attack(name, eps=0.3, **extra)(model, x, y, generator=torch.Generator().manual_seed(1))
    assert bool(result.success.all())
