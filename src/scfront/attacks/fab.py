"""FAB: the Fast Adaptive Boundary attack (Croce & Hein 2020, ICML, Algorithm 1), Linf, untargeted.

Per iteration at the current point ``x_k``: linearise the decision boundaries ``f_l − f_y``
(l ≠ y), pick the closest hyperplane ``s`` in Linf distance ``|f_l − f_y| / ‖∇f_l − ∇f_y‖₁``,
project both ``x_k`` and the original ``x`` onto that hyperplane ∩ box (minimal Linf change),
and move to a biased combination with overshoot η::

    α      = min(‖δ_k‖ / (‖δ_k‖ + ‖δ_orig‖), α_max)
    x_k+1  = clip((1 − α)(x_k + η·δ_k) + α(x + η·δ_orig), 0, 1)

When ``x_k+1`` is misclassified it is recorded if it is the closest so far and the iterate is
pulled back toward ``x``: ``x_k+1 ← (1 − β)x + β·x_k+1``. The smallest adversarial found is
returned; the base class projects it onto the ε-ball (points found beyond ε usually fail there).
Needs the full Jacobian: K backward passes per iteration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack, Run
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm, ThreatModel
from scfront.attacks.validate import number
from scfront.errors import ConfigError
from scfront.validate import positive_int

__all__ = ["FAB", "project_hyperplane_linf"]


def project_hyperplane_linf(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                            lower: float = 0.0, upper: float = 1.0) -> torch.Tensor:
    """Smallest-Linf change ``δ`` with ``⟨w, p + δ⟩ + b = 0`` and ``p + δ`` in the box.

    With ``r = −(⟨w, p⟩ + b)``, moving every coordinate by ``t`` in the direction
    ``sign(r·w_i)`` (as far as its box face allows) changes ``⟨w, δ⟩`` by
    ``h(t) = Σ |w_i| min(t, room_i)``, increasing and piecewise linear in ``t``; the smallest
    ``t`` with ``h(t) = |r|`` is found exactly from the sorted rooms. When even the whole box
    cannot reach the hyperplane, every coordinate goes to its face (the closest reachable point).

    Args:
        p, w: (N, D) float. b: (N,) float.
    Returns:
        δ: (N, D), ``p.dtype``.
    """
    dtype = p.dtype
    p, w, b = p.double(), w.double(), b.double()
    r = -((w * p).sum(dim=1) + b)
    direction = torch.sign(r[:, None] * w)
    room = torch.where(direction > 0, upper - p, p - lower).clamp_min(0.0)
    room = torch.where(direction == 0, torch.zeros_like(room), room)
    aw = w.abs() * (direction != 0)
    room_sorted, order = torch.sort(room, dim=1)
    aw_sorted = aw.gather(1, order)
    reached = torch.cumsum(aw_sorted * room_sorted, dim=1)  # Σ over coordinates already at a face
    remaining = aw_sorted.sum(dim=1, keepdim=True) - torch.cumsum(aw_sorted, dim=1)
    h_at = reached + room_sorted * remaining  # h at each breakpoint, non-decreasing
    need = r.abs()[:, None]
    k = (h_at < need).sum(dim=1, keepdim=True)
    d = p.shape[1]
    idx = (k - 1).clamp(0, d - 1)
    a_k = torch.where(k > 0, reached.gather(1, idx), torch.zeros_like(need))
    b_k = torch.where(k > 0, remaining.gather(1, idx), aw_sorted.sum(dim=1, keepdim=True))
    t = (need - a_k) / b_k.clamp_min(1e-30)
    t = torch.where(k >= d, room_sorted[:, -1:], t)  # unreachable: go to the faces
    return (direction * torch.minimum(room, t)).to(dtype)


def _jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and their Jacobian (N, K, C·H·W) with respect to the input."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        logits = model(xr)
        rows = [torch.autograd.grad(logits[:, c].sum(), xr, retain_graph=c < logits.shape[1] - 1)[0].flatten(1)
                for c in range(logits.shape[1])]
    return logits.detach(), torch.stack(rows, dim=1)


@register_attack
@dataclass(frozen=True)
class FAB(GradientAttack):
    """FAB (Croce & Hein 2020, ICML), Linf, untargeted, the minimum-norm attack of AutoAttack.

    Norm Linf. Defaults (the AutoAttack paper): eps 8/255, steps 100, alpha_max 0.1, eta 1.05
    (overshoot), beta 0.9 (backward step), restarts 1 (the first run starts at x, later restarts
    at a random point of the ball of radius eps/2), bpda None. eot_samples must stay 1 (FAB
    needs exact Jacobians). A fixed-budget attack: its closest adversarial is projected onto
    the ε-ball.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("fab", steps=50)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "fab"
    norm: ClassVar[Norm] = Norm.LINF
    steps: int = 100
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.steps, f"{self.name}: steps")
        number(self.name, "alpha_max", self.alpha_max, 0.0, 1.0)
        number(self.name, "beta", self.beta, 0.0, 1.0)
        number(self.name, "eta", self.eta, low=1.0)
        if self.eot_samples != 1:
            raise ConfigError("fab uses exact Jacobians: eot_samples must be 1")

    def runs(self, model: nn.Module, generator: torch.Generator | None) -> Iterator[Run]:
        for restart in range(self.restarts):
            yield functools.partial(self._fab_once, model, random=restart > 0, generator=generator)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        return self._fab_once(model, x, y, random=False, generator=generator)

    def _fab_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, random: bool,
                  generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        xf = x.flatten(1)
        x_cur = xf.clone()
        if random:
            x_cur = ThreatModel(Norm.LINF, self.eps / 2).random_start(x, generator).flatten(1)
        best = xf.clone()
        best_norm = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        rows = torch.arange(n, device=x.device)
        for _ in range(self.steps):
            logits, jac = _jacobian(model, x_cur.view_as(x))
            diff = logits - logits[rows, y][:, None]  # f_l − f_y, 0 at l = y
            w = jac - jac[rows, y][:, None, :]
            dist = diff.abs() / (w.abs().sum(dim=2) + 1e-12)
            dist[rows, y] = float("inf")
            s = dist.argmin(dim=1)
            w_s = w[rows, s]
            b_s = diff[rows, s] - (w_s * x_cur).sum(dim=1)
            d_cur = project_hyperplane_linf(x_cur, w_s, b_s)
            d_orig = project_hyperplane_linf(xf, w_s, b_s)
            n_cur = d_cur.abs().amax(dim=1)
            n_orig = d_orig.abs().amax(dim=1)
            alpha = torch.clamp(n_cur / (n_cur + n_orig + 1e-12), max=self.alpha_max)[:, None]
            x_next = ((1 - alpha) * (x_cur + self.eta * d_cur) + alpha * (xf + self.eta * d_orig)).clamp(0.0, 1.0)
            with torch.inference_mode():
                fooled = model(x_next.view_as(x)).argmax(dim=1) != y
            norm = (x_next.double() - xf.double()).abs().amax(dim=1)
            closer = fooled & (norm < best_norm)
            best[closer], best_norm[closer] = x_next[closer], norm[closer]
            x_cur = torch.where(fooled[:, None], (1 - self.beta) * xf + self.beta * x_next, x_next)
        return best.view_as(x)
