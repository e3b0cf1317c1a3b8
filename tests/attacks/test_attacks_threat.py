"""ThreatModel geometry: projections (against slow independent references), starts, steps."""

from __future__ import annotations

import math

import pytest
import torch

from scfront.attacks import Norm, ThreatModel
from scfront.attacks.projections import project_l1_box, project_l2_box
from scfront.errors import ConfigError, InputError

EPS = {Norm.LINF: 0.1, Norm.L2: 0.5, Norm.L1: 2.0}


def _points(seed: int, n: int = 16, shape: tuple[int, ...] = (3, 4, 4), scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g)
    x[:, 0, 0, 0] = 0.0  # exercise the box faces
    x[:, 0, 0, 1] = 1.0
    x_adv = x + scale * torch.randn(x.shape, generator=g)
    return x, x_adv


@pytest.mark.parametrize("norm", list(Norm))
def test_projection_lands_in_ball_and_box_and_is_idempotent(norm: Norm) -> None:
    threat = ThreatModel(norm, EPS[norm])
    x, x_adv = _points(0)
    p = threat.project(x_adv, x)
    assert bool(threat.contains(p, x).all())
    assert p.min() >= 0.0 and p.max() <= 1.0
    # far outside the ball: the projection lands on its boundary
    assert torch.allclose(threat.distance(p, x), torch.full((16,), EPS[norm], dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(threat.project(p, x), p, atol=1e-6)


@pytest.mark.parametrize("norm", list(Norm))
def test_projection_of_an_inside_point_is_identity(norm: Norm) -> None:
    threat = ThreatModel(norm, EPS[norm])
    x, _ = _points(1)
    g = torch.Generator().manual_seed(2)
    inside = threat.random_start(x, g)
    inside = x + 0.5 * (inside - x)  # strictly inside the ball, still in the box
    assert torch.equal(threat.project(inside, x), inside)


def _variational_gap(norm: Norm, eps: float, v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                     p: torch.Tensor, seed: int) -> float:
    """max over random feasible c of <v - p, c - p>: ≤ 0 iff p is the projection (convexity)."""
    g = torch.Generator().manual_seed(seed)
    worst = -math.inf
    for _ in range(200):
        c = lo + (hi - lo) * torch.rand(v.shape, generator=g, dtype=v.dtype)
        c = c * torch.rand((v.shape[0], 1), generator=g, dtype=v.dtype) ** 4  # some deep inside
        norm_c = torch.linalg.vector_norm(c, ord=norm.p, dim=1, keepdim=True)
        c = c * torch.clamp(eps / norm_c, max=1.0)  # scaling toward 0 keeps c in the box
        worst = max(worst, float(((v - p) * (c - p)).sum(dim=1).max()))
    return worst


def _reference_l1(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """Slow independent reference: bisection on the soft threshold θ, one example at a time."""
    out = []
    for vi, li, hi_i in zip(v, lo, hi):
        def delta(theta: float) -> torch.Tensor:
            return torch.clamp(torch.sign(vi) * torch.clamp(vi.abs() - theta, min=0), li, hi_i)
        if delta(0.0).abs().sum() <= eps:
            out.append(delta(0.0))
            continue
        a, b = 0.0, float(vi.abs().max())
        for _ in range(200):
            m = 0.5 * (a + b)
            a, b = (m, b) if delta(m).abs().sum() > eps else (a, m)
        out.append(delta(b))
    return torch.stack(out)


def _reference_l2(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """Slow reference: bisection on λ of the KKT form clip(v/(1+λ), lo, hi)."""
    out = []
    for vi, li, hi_i in zip(v, lo, hi):
        def delta(lam: float) -> torch.Tensor:
            return torch.clamp(vi / (1.0 + lam), li, hi_i)
        if delta(0.0).norm() <= eps:
            out.append(delta(0.0))
            continue
        a, b = 0.0, 1.0
        while delta(b).norm() > eps:
            b *= 2.0
        for _ in range(200):
            m = 0.5 * (a + b)
            a, b = (m, b) if delta(m).norm() > eps else (a, m)
        out.append(delta(b))
    return torch.stack(out)


@pytest.mark.parametrize("seed", range(4))
def test_l1_box_projection_matches_slow_reference_and_optimality(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 10, generator=g, dtype=torch.float64)
    v = 0.8 * torch.randn(6, 10, generator=g, dtype=torch.float64)
    lo, hi = -x, 1.0 - x
    eps = 1.5
    p = project_l1_box(v, lo, hi, eps)
    assert torch.allclose(p, _reference_l1(v, lo, hi, eps), atol=1e-9)
    assert _variational_gap(Norm.L1, eps, v, lo, hi, p, seed) <= 1e-9
    # the box makes it differ from "project onto the ball, then clip" on some example
    plain = project_l1_box(v, torch.full_like(lo, -1e9), torch.full_like(hi, 1e9), eps).clamp(lo, hi)
    assert not torch.allclose(plain, p, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_l2_box_projection_matches_slow_reference_and_optimality(seed: int) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.rand(6, 10, generator=g, dtype=torch.float64)
    v = 0.8 * torch.randn(6, 10, generator=g, dtype=torch.float64)
    lo, hi = -x, 1.0 - x
    eps = 0.7
    p = project_l2_box(v, lo, hi, eps)
    assert torch.allclose(p, _reference_l2(v, lo, hi, eps), atol=1e-9)
    assert _variational_gap(Norm.L2, eps, v, lo, hi, p, seed) <= 1e-9


def test_projection_handles_ties_zeros_and_float32() -> None:
    threat = ThreatModel(Norm.L1, 1.0)
    x = torch.full((3, 1, 2, 4), 0.5)
    x_adv = x.clone()
    x_adv[0] += 0.4  # all coordinates tie
    x_adv[1, 0, 0, 0] += 3.0  # a single coordinate, clipped by the box at 0.5
    # x_adv[2] == x: zero perturbation
    p = threat.project(x_adv, x)
    assert torch.allclose((p[0] - x[0]).abs(), torch.full((1, 2, 4), 1.0 / 8))
    assert torch.allclose(p[1, 0, 0, 0], torch.tensor(1.0)) and torch.equal(p[1].flatten()[1:], x[1].flatten()[1:])
    assert torch.equal(p[2], x[2])
    assert p.dtype == torch.float32


@pytest.mark.parametrize("norm", list(Norm))
def test_random_start_is_in_the_ball_spread_out_and_seeded(norm: Norm) -> None:
    threat = ThreatModel(norm, EPS[norm])
    x = torch.full((64, 3, 4, 4), 0.5)  # far from the box: the ball alone limits the start
    a = threat.random_start(x, torch.Generator().manual_seed(3))
    b = threat.random_start(x, torch.Generator().manual_seed(3))
    c = threat.random_start(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(threat.contains(a, x).all())
    dist = threat.distance(a, x)
    # uniform in a 48-dimensional ball: the radius concentrates near eps (E[r] = 48/49 eps)
    assert 0.8 * EPS[norm] < float(dist.mean()) <= EPS[norm] * (1 + 1e-6)
    assert float((a - x).mean().abs()) < 0.1 * EPS[norm]  # no drift in any direction


def test_normalize_step_has_unit_norm() -> None:
    g = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    g[0] = 0.0
    assert torch.equal(ThreatModel(Norm.LINF, 0.1).normalize_step(g), torch.sign(g))
    for norm in (Norm.L2, Norm.L1):
        step = ThreatModel(norm, 1.0).normalize_step(g)
        norms = torch.linalg.vector_norm(step.flatten(1), ord=norm.p, dim=1)
        assert torch.allclose(norms[1:], torch.ones(4)) and float(norms[0]) == 0.0
        assert bool((torch.sign(step) == torch.sign(g)).all())


@pytest.mark.parametrize("norm", [Norm.L2, Norm.L1])
def test_radial_rescale_is_feasible_and_differs_from_projection(norm: Norm) -> None:
    threat = ThreatModel(norm, EPS[norm])
    x, x_adv = _points(5)
    r = threat.rescale(x_adv, x)
    assert bool(threat.contains(r, x).all())
    p = threat.project(x_adv, x)
    # the exact projection is never farther from x_adv than any other feasible point
    assert bool(((p - x_adv).flatten(1).norm(dim=1) <= (r - x_adv).flatten(1).norm(dim=1) + 1e-5).all())


def test_contains_detects_points_outside() -> None:
    threat = ThreatModel(Norm.LINF, 0.1)
    x = torch.full((2, 1, 2, 2), 0.5)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] += 0.2
    assert threat.contains(x_adv, x).tolist() == [False, True]
    x = torch.full((2, 1, 2, 2), 0.95)
    x_adv = x.clone()
    x_adv[1] = 1.05  # inside the ball, outside the box
    assert threat.contains(x_adv, x).tolist() == [True, False]


def test_bad_threat_models_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="norm"):
        ThreatModel("L3", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="eps"):
        ThreatModel(Norm.L2, -1.0)
    with pytest.raises(ConfigError, match="lower < upper"):
        ThreatModel(Norm.L2, 1.0, lower=1.0, upper=0.0)
    assert ThreatModel("Linf", 1).norm is Norm.LINF
    with pytest.raises(InputError, match="shape"):
        ThreatModel(Norm.L2, 1.0).project(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))
