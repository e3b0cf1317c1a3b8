"""APGD checkpoints and FAB geometry, against closed forms and slow references."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from torch import nn

from scfront.attacks import create_attack
from scfront.attacks.apgd import checkpoints
from scfront.attacks.fab import project_hyperplane_linf


@pytest.mark.parametrize("steps", [1, 5, 40, 100, 250])
def test_apgd_checkpoints_follow_the_paper(steps: int) -> None:
    p = [Fraction(0), Fraction(22, 100)]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)))
    expected = sorted({math.ceil(pj * steps) for pj in p[1:] if math.ceil(pj * steps) <= steps})
    assert checkpoints(steps) == expected
    if steps == 100:
        assert expected == [22, 41, 57, 70, 80, 87, 93, 99]


def _reference_hyperplane(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> float:
    """Slow reference: bisection on the Linf radius t of the reachable change of ⟨w, δ⟩."""
    r = -(float(w @ p) + float(b))
    s = torch.sign(r * w)
    room = torch.where(s > 0, 1 - p, p)

    def reach(t: float) -> float:
        return float((w.abs() * torch.clamp(room, max=t) * (s != 0)).sum())

    a, c = 0.0, 1.0
    for _ in range(200):
        m = 0.5 * (a + c)
        a, c = (m, c) if reach(m) < abs(r) else (a, m)
    return c


def test_hyperplane_projection_is_minimal_feasible_and_in_box() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(8, 12, generator=g, dtype=torch.float64)
    w = torch.randn(8, 12, generator=g, dtype=torch.float64)
    b = -(w * p).sum(1) + 0.3 * torch.randn(8, generator=g, dtype=torch.float64)
    b[0] = -(w[0] * p[0]).sum() + 1e3  # unreachable within the box
    d = project_hyperplane_linf(p, w, b)
    z = p + d
    assert bool(((z >= -1e-12) & (z <= 1 + 1e-12)).all())
    residual = (w * z).sum(1) + b
    assert torch.allclose(residual[1:], torch.zeros(7, dtype=torch.float64), atol=1e-9)
    for i in range(1, 8):
        assert float(d[i].abs().max()) == pytest.approx(_reference_hyperplane(p[i], w[i], b[i]), abs=1e-9)
    # unreachable: every coordinate goes to the face that reduces the residual most
    assert float(residual[0]) > 0 and torch.allclose(z[0], (w[0] < 0).double())


def _linear_model(seed: int, classes: int = 4) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(12, classes)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(classes, 12, generator=g))
        lin.bias.copy_(0.1 * torch.randn(classes, generator=g))
    return nn.Sequential(nn.Flatten(), lin).eval()


def test_fab_finds_the_minimal_linf_perturbation_of_a_linear_model() -> None:
    model = _linear_model(0)
    g = torch.Generator().manual_seed(1)
    x = 0.45 + 0.1 * torch.rand(16, 3, 2, 2, generator=g)  # away from the box faces
    with torch.no_grad():
        y = model(x).argmax(1)
        z = model(x)
    w = model[1].weight.detach()
    # closed form: min over l≠y of (z_y − z_l) / ‖w_y − w_l‖₁ (the box is not binding here)
    opt = torch.stack([
        min((z[i, y[i]] - z[i, l]) / (w[y[i]] - w[l]).abs().sum() for l in range(4) if l != y[i])
        for i in range(16)
    ])
    assert float(opt.max()) < 0.4  # box not binding
    result = create_attack("fab", eps=1.0, steps=30)(model, x, y)
    assert bool(result.success.all())
    dist = result.extra["distance"].float()
    assert bool((dist >= opt * (1 - 1e-4)).all())  # nothing beats the optimum
    assert bool((dist <= opt * 1.06).all()), (dist / opt).max()


def test_fab_respects_eps_and_lowers_accuracy(toy_model, toy_data) -> None:
    x, y = toy_data
    x, y = x[:16], y[:16]
    small = create_attack("fab", eps=0.02, steps=10)(toy_model, x, y)
    large = create_attack("fab", eps=0.15, steps=10)(toy_model, x, y)
    assert float(small.extra["distance"].max()) <= 0.02 + 1e-6
    assert int(large.success.sum()) > int(small.success.sum())
