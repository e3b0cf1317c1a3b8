"""FAB: the Fast Adaptive Boundary attack (Croce & Hein 2020, ICML, Algorithm 1), Linf, untargeted
(``fab``) and targeted (``fab-t``, AutoAttack's FAB-T).

Per iteration at the current point ``x_k``: linearise the decision boundaries ``f_l − f_y``
(untargeted: every l ≠ y; targeted: only the target t), pick the closest hyperplane ``s`` in Linf
distance ``|f_s − f_y| / ‖∇f_s − ∇f_y‖₁``, project both ``x_k`` and the original ``x`` onto that
hyperplane ∩ box (minimal Linf change), and move to a biased combination with overshoot η::

    α      = min(‖δ_k‖ / (‖δ_k‖ + ‖δ_orig‖), α_max)
    x_k+1  = clip((1 − α)(x_k + η·δ_k) + α(x + η·δ_orig), 0, 1)

When ``x_k+1`` is misclassified (any wrong class, also in the targeted version) it is recorded if
it is the closest so far and the iterate is pulled back toward ``x``:
``x_k+1 ← (1 − β)x + β·x_k+1``. The untargeted version needs the full Jacobian (K backward
passes per iteration); the targeted one only the gradient of ``f_t − f_y`` (one backward pass),
so FAB-T's nine targets cost about as much as one untargeted run on 10 classes.

As a fixed-budget attack, a point is done once it has an adversarial inside the ε-ball: it leaves
the working batch there (its verdict can no longer change), and its result is that adversarial.
The other points run all ``steps`` iterations and return the closest adversarial found,
projected onto the ε-ball (usually no longer adversarial, so a restart or the next target tries
them again). Everything is per example, so a point's result does not depend on the rest of the
batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack, Run, target_ranks
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm, ThreatModel
from scfront.attacks.validate import number
from scfront.errors import ConfigError
from scfront.sampling import Randomness
from scfront.validate import positive_int

__all__ = ["FAB", "FABTargeted", "project_hyperplane_linf"]


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


def _boundaries(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The linearised boundaries ``f_l − f_y`` at ``x`` that FAB may cross.

    Args:
        x: (N, C, H, W). y: (N,) int64 true labels. target: (N,) int64, or None for every class.
    Returns:
        ``(f (N, L), w (N, L, C·H·W))``: values and gradients of ``f_l − f_y``; untargeted
        L = K with ``f = +inf`` at l = y (never chosen), targeted L = 1 (l = target).
    """
    rows = torch.arange(x.shape[0], device=x.device)
    if target is None:
        logits, jac = _jacobian(model, x)
        diff = logits - logits[rows, y][:, None]
        diff[rows, y] = float("inf")
        return diff, jac - jac[rows, y][:, None, :]
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        logits = model(xr)
        diff = logits[rows, target] - logits[rows, y]
        (grad,) = torch.autograd.grad(diff.sum(), xr)
    return diff.detach()[:, None], grad.flatten(1)[:, None, :]


@register_attack
@dataclass(frozen=True)
class FAB(GradientAttack):
    """FAB (Croce & Hein 2020, ICML), Linf, untargeted, the minimum-norm attack of AutoAttack.

    Norm Linf. Defaults (the AutoAttack paper): eps 8/255, steps 100, alpha_max 0.1, eta 1.05
    (overshoot), beta 0.9 (backward step), restarts 1 (the first run starts at x, later restarts
    at a random point of the ball of radius eps/2), bpda None. eot_samples must stay 1 (FAB
    needs exact Jacobians). A fixed-budget attack: a point stops at its first adversarial inside
    the ε-ball; for the others the closest adversarial found is projected onto the ε-ball.
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
            raise ConfigError(f"{self.name} uses exact gradients: eot_samples must be 1")

    def runs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             clean_logits: torch.Tensor) -> Iterator[Run]:
        for restart in range(self.restarts):
            yield lambda rows, xs, ys, gen, random=restart > 0: self._fab_once(model, xs, ys, random=random,
                                                                                 generator=gen)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        return self._fab_once(model, x, y, random=False, generator=generator)

    def _fab_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, random: bool,
                  generator: Randomness, target: torch.Tensor | None = None) -> torch.Tensor:
        """One FAB run: x (N, C, H, W) in [0, 1], y (N,) → (N, C, H, W) inside the ε-ball.

        ``random``: start at a random point of the ball of radius ε/2 (drawn from ``generator``,
        the randomness of these N rows) instead of ``x``. ``target``: (N,) int64 classes ≠ y
        whose boundary with y is the only one linearised (FAB-T), None: every class.
        """
        n = x.shape[0]
        xf = x.flatten(1)
        x_cur = xf.clone()
        if random:
            x_cur = ThreatModel(Norm.LINF, self.eps / 2).random_start(x, generator).flatten(1)
        best = xf.clone()
        best_norm = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        active = torch.arange(n, device=x.device)  # rows without an adversarial inside the ball
        x0, labels = xf, y
        for _ in range(self.steps):
            m = active.numel()
            rows = torch.arange(m, device=x.device)
            tgt = None if target is None else target[active]
            diff, w = _boundaries(model, x_cur.view((m,) + x.shape[1:]), labels, tgt)
            s = (diff.abs() / (w.abs().sum(dim=2) + 1e-12)).argmin(dim=1)  # the closest boundary
            w_s = w[rows, s]
            b_s = diff[rows, s] - (w_s * x_cur).sum(dim=1)
            d_cur = project_hyperplane_linf(x_cur, w_s, b_s)
            d_orig = project_hyperplane_linf(x0, w_s, b_s)
            n_cur = d_cur.abs().amax(dim=1)
            n_orig = d_orig.abs().amax(dim=1)
            alpha = torch.clamp(n_cur / (n_cur + n_orig + 1e-12), max=self.alpha_max)[:, None]
            x_next = ((1 - alpha) * (x_cur + self.eta * d_cur) + alpha * (x0 + self.eta * d_orig)).clamp(0.0, 1.0)
            with torch.inference_mode():
                fooled = model(x_next.view((m,) + x.shape[1:])).argmax(dim=1) != labels
            norm = (x_next.double() - x0.double()).abs().amax(dim=1)
            closer = fooled & (norm < best_norm[active])
            best[active[closer]], best_norm[active[closer]] = x_next[closer], norm[closer]
            x_cur = torch.where(fooled[:, None], (1 - self.beta) * x0 + self.beta * x_next, x_next)
            keep = best_norm[active] > self.eps  # an adversarial inside the ball ends the search
            if not bool(keep.all()):
                active, x0, labels, x_cur = active[keep], x0[keep], labels[keep], x_cur[keep]
                if active.numel() == 0:
                    break
        return self.threat.project(best.view_as(x), x)


@register_attack
@dataclass(frozen=True)
class FABTargeted(FAB):
    """FAB-T (Croce & Hein 2020, the targeted FAB of AutoAttack's standard version), Linf.

    For each of the ``n_target_classes`` most likely wrong classes of the clean input (by clean
    logit, tried in order), ``restarts`` FAB runs on the points no earlier run broke, each
    linearising only the boundary between the true class and that target (one backward pass per
    iteration instead of K). Success means misclassification (any wrong class), as in AutoAttack.
    Norm Linf. Defaults (AutoAttack's standard version): eps 8/255, steps 100, n_target_classes 9,
    restarts 1 per target (the first run of a target starts at x, later ones at a random point of
    the ball of radius eps/2), alpha_max 0.1, eta 1.05, beta 0.9, bpda None; eot_samples must
    stay 1. Needs more classes than 1; targets beyond K − 1 are skipped.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("fab-t", n_target_classes=3)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "fab-t"
    n_target_classes: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.n_target_classes, f"{self.name}: n_target_classes")

    def runs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             clean_logits: torch.Tensor) -> Iterator[Run]:
        """``restarts`` runs per target rank (:func:`~scfront.attacks.gradient.target_ranks`); the
        first run of each target starts at x, its restarts at random points."""
        for order, rank, restart in target_ranks(clean_logits, self.n_target_classes, self.restarts):
            yield self._targeted_run(model, order, rank, random=restart > 0)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        """One run at the first target (the most likely wrong class), starting at ``x``."""
        with torch.inference_mode():
            order = torch.sort(model(x), dim=1, descending=True).indices
        rows = torch.arange(x.shape[0], device=x.device)
        return self._targeted_run(model, order, 1, random=False)(rows, x, y, generator)

    def _targeted_run(self, model: nn.Module, order: torch.Tensor, rank: int, *, random: bool) -> Run:
        def run(rows: torch.Tensor, x: torch.Tensor, y: torch.Tensor, generator: Randomness) -> torch.Tensor:
            if rank >= order.shape[1]:
                return x.clone()  # fewer classes than targets: nothing left to try
            return self._fab_once(model, x, y, random=random, generator=generator, target=order[rows, rank])

        return run
