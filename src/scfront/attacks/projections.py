"""Exact Euclidean projections onto {norm ball around x} ∩ box, batched over examples.

All functions work on perturbations ``v = x_adv - x`` flattened to ``(N, D)`` together with the
per-coordinate box ``lo ≤ δ ≤ hi`` (``lo = lower - x ≤ 0 ≤ hi = upper - x``, so ``δ = 0`` is
always feasible) and return ``δ = argmin ‖δ - v‖₂`` over the intersection.

Why exact: the common "project onto the ball, then clip to the box" is feasible but not the
nearest point of the intersection. Both intersections here have a one-parameter KKT solution:

- L2 ∩ box: ``δ(t) = clip(t·v, lo, hi)`` with ``t = 1/(1+λ) ∈ (0, 1]`` (per coordinate the
  Lagrangian ``½(v_i−δ_i)² + ½λδ_i²`` is minimised at ``v_i/(1+λ)``, then clipped because a 1-D
  convex problem on an interval is solved by clipping its free minimiser);
- L1 ∩ box: ``δ(θ) = clip(soft(v, θ), lo, hi)`` with the soft threshold ``θ ≥ 0`` (the same
  argument with ``½(v_i−δ_i)² + θ|δ_i|``; Duchi et al. 2008 is the box-free case).

The norm of ``δ`` is monotone and piecewise simple in the parameter, so the parameter that puts
``δ`` exactly on the sphere is found by sorting the breakpoints and a cumulative sum (no
iterative bisection, no tolerance). The work is done in float64 and returned in ``v.dtype``.
"""

from __future__ import annotations

import torch

__all__ = ["project_linf_box", "project_l2_box", "project_l1_box", "rescale_radially"]


def project_linf_box(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """Projection onto ``{‖δ‖∞ ≤ eps} ∩ [lo, hi]``: both are boxes, so clipping is exact.

    Args:
        v, lo, hi: (N, D) float, ``lo ≤ 0 ≤ hi``. eps: radius ≥ 0.
    """
    return torch.minimum(torch.maximum(v, torch.clamp(lo, min=-eps)), torch.clamp(hi, max=eps))


def _box_terms(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """In float64: ``v, lo, hi``, the box-clipped ``v``, ``|v|`` and ``cap = min(|v|, room)``
    where room is how far each coordinate may move in the direction of its sign inside the box."""
    v, lo, hi = v.double(), lo.double(), hi.double()
    a = v.abs()
    cap = torch.minimum(torch.where(v >= 0, hi, -lo), a)
    return v, lo, hi, torch.minimum(torch.maximum(v, lo), hi), a, cap


def project_l2_box(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """Exact projection onto ``{‖δ‖₂ ≤ eps} ∩ [lo, hi]`` (see the module docstring).

    Args:
        v, lo, hi: (N, D) float, ``lo ≤ 0 ≤ hi``. eps: radius ≥ 0.
    Returns:
        (N, D) in ``v.dtype``.
    """
    dtype = v.dtype
    v, lo, hi, clipped, a, cap = _box_terms(v, lo, hi)
    inside = clipped.pow(2).sum(dim=1) <= eps * eps
    # For t ≤ 1 the coordinate equals min(t·|v_i|, cap_i); a cap above |v_i| is never reached.
    # t_i: where coordinate i starts to be clipped (1 when it never is, 0/0 for v_i = 0).
    brk = torch.where(a > 0, cap / a.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(a))
    brk, order = torch.sort(brk, dim=1)
    a2 = a.gather(1, order).pow(2)
    c2 = cap.gather(1, order).pow(2)
    clipped_sq = torch.cumsum(c2, dim=1)  # Σ cap² of the coordinates clipped at t = brk_k
    free_sq = a2.sum(dim=1, keepdim=True) - torch.cumsum(a2, dim=1)  # Σ v² of the others
    # ‖δ(t)‖² is increasing in t; the solution lies after the last breakpoint still inside.
    norm_sq_at_brk = clipped_sq + brk.pow(2) * free_sq
    k = (norm_sq_at_brk <= eps * eps).sum(dim=1, keepdim=True)  # number of breakpoints passed
    d = v.shape[1]
    idx = (k - 1).clamp(0, d - 1)
    c_k = torch.where(k > 0, clipped_sq.gather(1, idx), torch.zeros_like(idx, dtype=v.dtype))
    r_k = torch.where(k > 0, free_sq.gather(1, idx), a2.sum(dim=1, keepdim=True))
    t = torch.sqrt((eps * eps - c_k).clamp_min(0) / r_k.clamp_min(torch.finfo(torch.float64).tiny))
    t = t.clamp(0.0, 1.0)
    delta = torch.minimum(torch.maximum(t * v, lo), hi)
    delta = torch.where(inside[:, None], clipped, delta)
    return _shrink_to_ball(delta, eps, p=2).to(dtype)


def project_l1_box(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """Exact projection onto ``{‖δ‖₁ ≤ eps} ∩ [lo, hi]`` (sort-based, Duchi et al. 2008 + box).

    ``‖δ(θ)‖₁ = Σ_i clamp(|v_i| − θ, 0, cap_i) = Σ_i relu(|v_i| − θ) − relu(|v_i| − cap_i − θ)``:
    a sum of hinge functions with weights +1 and −1, linear between the 2D sorted breakpoints.

    Args:
        v, lo, hi: (N, D) float, ``lo ≤ 0 ≤ hi``. eps: radius ≥ 0.
    Returns:
        (N, D) in ``v.dtype``.
    """
    dtype = v.dtype
    v, lo, hi, clipped, a, cap = _box_terms(v, lo, hi)
    inside = clipped.abs().sum(dim=1) <= eps
    points = torch.cat([a, a - cap], dim=1)  # all ≥ 0
    weights = torch.cat([torch.ones_like(a), -torch.ones_like(a)], dim=1)
    points, order = torch.sort(points, dim=1, descending=True)
    weights = weights.gather(1, order)
    s = torch.cumsum(weights * points, dim=1)
    w = torch.cumsum(weights, dim=1)
    # f(p_k) = S_k − W_k·p_k is non-decreasing in k (θ decreasing); the first breakpoint, max|v|,
    # gives f = 0 ≤ eps, so k ≥ 1, and k < 2D whenever the clipped point lies outside the ball.
    f_at = s - w * points
    k = (f_at <= eps).sum(dim=1, keepdim=True)
    idx = (k - 1).clamp(0, points.shape[1] - 1)
    s_k, w_k = s.gather(1, idx), w.gather(1, idx)
    theta = ((s_k - eps) / w_k.clamp_min(1.0)).clamp_min(0.0)
    delta = torch.minimum(torch.maximum(torch.sign(v) * (a - theta).clamp_min(0.0), lo), hi)
    delta = torch.where(inside[:, None], clipped, delta)
    return _shrink_to_ball(delta, eps, p=1).to(dtype)


def rescale_radially(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float, p: float) -> torch.Tensor:
    """Scale ``v`` onto the Lp ball when outside it, then clip to the box (feasible, not nearest).

    This is the original code's L1/L2 "projection" (docs/method.md §7, row L1): scaling by
    ``eps/‖v‖_p`` then clipping toward zero keeps ``‖δ‖_p ≤ eps`` because clipping never grows
    a coordinate's magnitude.
    """
    norm = torch.linalg.vector_norm(v.double(), ord=p, dim=1, keepdim=True)
    scale = torch.where(norm > eps, eps / norm.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(norm))
    return torch.minimum(torch.maximum(v * scale.to(v.dtype), lo), hi)


def _shrink_to_ball(delta: torch.Tensor, eps: float, p: float) -> torch.Tensor:
    # Guards against a last-ulp excess from float64 rounding; scaling toward 0 stays in the box.
    norm = torch.linalg.vector_norm(delta, ord=p, dim=1, keepdim=True)
    over = norm > eps
    return torch.where(over, delta * (eps / norm.clamp_min(torch.finfo(torch.float64).tiny)), delta)
