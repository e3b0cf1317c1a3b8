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
from scfront.errors import ConfigError


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


def _targeted_distances(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, classes by decreasing clean logit (N, K), closed-form Linf distance to the boundary
    between y and each class (N, K), inf at y) of a linear model whose box is not binding."""
    with torch.no_grad():
        z = model(x)
    w = model[1].weight.detach()
    y, order = z.argmax(1), z.sort(1, descending=True).indices
    gap = z.gather(1, y[:, None]) - z  # z_y − z_l
    dist = gap / (w[y][:, None, :] - w[None, :, :]).abs().sum(2).clamp_min(1e-12)
    dist[torch.arange(x.shape[0]), y] = float("inf")
    return y, order, dist


def _two_target_model() -> nn.Module:
    """A linear 4-class model on (3, 2, 2) inputs near 0.5: class 0 wins, class 1 is the most
    likely wrong class but its boundary is far (‖w_1‖₁ small, distance ≈ 0.33), class 2 is second
    but near (‖w_2‖₁ large, ≈ 0.08), class 3 is out of reach. Crossing one boundary along its
    Linf direction leaves the other margins unchanged (w_1 ⟂ w_2 in sign pattern)."""
    lin = nn.Linear(12, 4)
    signs = torch.tensor([1.0, -1.0] * 6)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([torch.zeros(12), torch.full((12,), 0.05), signs, torch.zeros(12)]))
        lin.bias.copy_(torch.tensor([0.0, -0.5, -1.0, -5.0]))
    return nn.Sequential(nn.Flatten(), lin).eval()


def test_fab_t_crosses_the_boundary_of_the_requested_target_on_a_linear_model() -> None:
    """A linear model is its own linearisation: FAB-T reaches the target's hyperplane in one step
    (η = 1.05 times its distance) and lands in the target class; targets run in clean-logit
    order, each on the points no earlier target broke."""
    model = _two_target_model()
    x = 0.45 + 0.1 * torch.rand(16, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    y, order, dist = _targeted_distances(model, x)
    rows = torch.arange(16)
    assert bool((y == 0).all()) and bool((order[:, 1] == 1).all()) and bool((order[:, 2] == 2).all())
    d1, d2 = dist[rows, 1], dist[rows, 2]
    first = create_attack("fab-t", eps=1.0, steps=5, n_target_classes=1)(model, x, y)
    with torch.no_grad():
        assert bool((model(first.x_adv).argmax(1) == 1).all())  # the requested class
    assert torch.allclose(first.extra["distance"].float(), 1.05 * d1, rtol=1e-4)
    eps = 0.15  # beyond the first target's boundary, within the second's
    assert bool((d1 > eps + 0.02).all()) and bool((1.05 * d2 < eps - 0.02).all())
    one = create_attack("fab-t", eps=eps, steps=5, n_target_classes=1)(model, x, y)
    two = create_attack("fab-t", eps=eps, steps=5, n_target_classes=2)(model, x, y)
    assert not bool(one.success.any()) and bool(two.success.all())
    with torch.no_grad():
        assert bool((model(two.x_adv).argmax(1) == 2).all())
    assert torch.allclose(two.extra["distance"].float(), 1.05 * d2, rtol=1e-4)
    # more targets than the model has wrong classes: the extra ones are skipped
    many = create_attack("fab-t", eps=eps, steps=5, n_target_classes=9)(model, x, y)
    assert torch.equal(many.x_adv, two.x_adv)


def test_fab_t_on_a_natural_model_breaks_points_into_the_first_target(toy_model, toy_data) -> None:
    x, y = toy_data[0][:32], toy_data[1][:32]
    with torch.no_grad():
        target = toy_model(x).sort(1, descending=True).indices[:, 1]
    result = create_attack("fab-t", eps=0.1, steps=20, n_target_classes=1)(toy_model, x, y)
    with torch.no_grad():
        pred = toy_model(result.x_adv).argmax(1)
    broken = result.success
    assert int(broken.sum()) >= 16
    assert float((pred[broken] == target[broken]).float().mean()) >= 0.9


class _CountingModel(nn.Module):
    """Records the rows of every forward pass that builds a graph and counts backward passes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows, self.backward = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if out.requires_grad:
            self.rows += x.shape[0]
            out.register_hook(self._count)
        return out

    def _count(self, grad: torch.Tensor) -> None:
        self.backward += 1


def test_fab_t_needs_one_backward_pass_per_iteration_and_exits_early(toy_model, toy_data) -> None:
    x, y = toy_data[0][:16], toy_data[1][:16]
    counted = _CountingModel(toy_model)
    create_attack("fab-t", eps=0.001, steps=5, n_target_classes=2)(counted, x, y)  # nothing breaks
    assert counted.backward == 2 * 5  # one gradient of f_t − f_y per iteration and target
    assert counted.rows == 2 * 5 * 16
    untargeted = _CountingModel(toy_model)
    create_attack("fab", eps=0.001, steps=5)(untargeted, x, y)
    assert untargeted.backward == 5 * 10  # the full Jacobian: one pass per class
    # a large ball: every point breaks within the first target, the other eight cost nothing
    early = _CountingModel(toy_model)
    result = create_attack("fab-t", eps=0.3, steps=20, n_target_classes=9)(early, x, y)
    assert bool(result.success.all()) and early.rows < 16 * 20


def test_fab_t_is_deterministic_and_its_restarts_start_at_random_points(toy_model, toy_data) -> None:
    x, y = toy_data[0][:16], toy_data[1][:16]
    attack = create_attack("fab-t", eps=0.09, steps=10, n_target_classes=2, restarts=2)
    a = attack(toy_model, x, y, generator=torch.Generator().manual_seed(0))
    b = attack(toy_model, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    other_seed = attack(toy_model, x, y, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.x_adv, other_seed.x_adv)  # the second run of a target starts at random
    single = create_attack("fab-t", eps=0.09, steps=10, n_target_classes=2)  # the first starts at x
    s0 = single(toy_model, x, y, generator=torch.Generator().manual_seed(0))
    s1 = single(toy_model, x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s0.x_adv, s1.x_adv)
    assert 0 < int(s0.success.sum()) <= int(a.success.sum()) < 16
    with pytest.raises(ConfigError, match="eot_samples must be 1"):
        create_attack("fab-t", eot_samples=2)
    with pytest.raises(ConfigError, match="n_target_classes"):
        create_attack("fab-t", n_target_classes=0)
