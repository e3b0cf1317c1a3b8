"""Boundary attack (Brendel, Rauber, Bethge, ICLR 2018), batched, L2.

A decision-based random walk along the decision boundary that shrinks the L2 distance to the
original image: each step proposes an orthogonal (spherical) move at the current distance followed
by a small move towards the original, and keeps the proposal if it is still adversarial and
closer. The two step sizes adapt to the success rates of both kinds of move, as in foolbox 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from scfront.attacks.blackbox.common import BlackBoxAttack
from scfront.attacks.blackbox.oracle import Oracle, rand_like_on
from scfront.attacks.blackbox.starts import StartPool, blend_search, misclassified_starts
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError


class _RateWindow:
    """Per-example sliding windows of the last ``length`` 0/1 outcomes (ring buffers)."""

    def __init__(self, n: int, length: int, device: torch.device) -> None:
        self.values = torch.zeros(n, length, device=device)
        self.count = torch.zeros(n, dtype=torch.long, device=device)
        self.pos = torch.zeros(n, dtype=torch.long, device=device)
        self.length = length

    def append(self, rows: torch.Tensor, outcome: torch.Tensor) -> None:
        self.values[rows, self.pos[rows]] = outcome.float()
        self.pos[rows] = (self.pos[rows] + 1) % self.length
        self.count[rows] = (self.count[rows] + 1).clamp_max(self.length)

    def full(self) -> torch.Tensor:
        return self.count == self.length

    def rate(self) -> torch.Tensor:
        return self.values.sum(1) / self.count.clamp_min(1)

    def clear(self, mask: torch.Tensor) -> None:
        self.values[mask] = 0.0
        self.count[mask] = 0
        self.pos[mask] = 0


@register_attack
@dataclass(frozen=True)
class BoundaryAttack(BlackBoxAttack):
    """Boundary attack (Brendel et al., ICLR 2018): decision-based, minimum-L2, batched.

    Paper: "Decision-based adversarial attacks: reliable attacks against black-box machine
    learning models". Starts from the nearest test image (``pool``) that the model labels
    differently (uniform noise without a pool), moved to the boundary by a binary search on the
    segment to the original, then walks along the boundary with foolbox 3's step adaptation
    (success rates over the last 100 spherical / 30 total proposals, checked every 10 steps).

    The result is the walk's closest adversarial; ``__call__`` projects it onto the ε-ball (an
    ε-constrained attack); ``unbounded()`` returns the unconstrained adversarials, whose median
    L2 norm the evaluation reports (PAPER.md section 7).

    Args:
        eps: L2 radius of the constrained result; None = 0.6 (the paper's L2 column).
        steps: walk steps; default 25,000 as in the paper (each costs one query per image, plus
            one every ``update_every`` steps).
        spherical_step: initial relative size of the orthogonal move (0.01, foolbox default).
        source_step: initial relative size of the move towards the original (0.01).
        source_step_convergence: an image stops when its source step falls below this (1e-7).
        step_adaptation: factor by which the step sizes grow or shrink (1.5).
        update_every: steps between step-size updates (10).
        unconstrained: return the unconstrained adversarials (see ``unbounded()``).
        pool: candidate starting images (``StartPool`` of the test set); not a hyperparameter.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64.
    """

    name: ClassVar[str] = "boundary"
    minimum_norm: ClassVar[bool] = True
    _not_params: ClassVar[tuple[str, ...]] = ("pool",)
    norm: Norm = Norm.L2
    eps: float | None = None
    steps: int = 25000
    spherical_step: float = 0.01
    source_step: float = 0.01
    source_step_convergence: float = 1e-7
    step_adaptation: float = 1.5
    update_every: int = 10
    unconstrained: bool = False
    pool: StartPool | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._check_common((Norm.L2,))
        if self.steps < 0 or self.update_every < 1:
            raise ConfigError(f"boundary: steps must be >= 0 and update_every >= 1, got {self.steps}, {self.update_every}")
        if self.step_adaptation <= 1 or self.spherical_step <= 0 or self.source_step <= 0:
            raise ConfigError("boundary: step sizes must be > 0 and step_adaptation > 1")

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
        oracle = Oracle(model)
        starts, found = misclassified_starts(oracle, x, y, self.pool, generator)
        best = starts.clone()
        if found.any():
            best[found] = blend_search(oracle, x[found], y[found], starts[found])
        return self._walk(oracle, x, y, best, found, generator)

    def _walk(self, oracle: Oracle, x: torch.Tensor, y: torch.Tensor, best: torch.Tensor,
              found: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        flat_x = x.flatten(1)
        flat_best = best.flatten(1).clone()
        dist = (flat_x - flat_best).norm(dim=1)
        spherical = torch.full((n,), self.spherical_step, device=x.device, dtype=x.dtype)
        source = torch.full((n,), self.source_step, device=x.device, dtype=x.dtype)
        spherical_window = _RateWindow(n, 100, x.device)
        step_window = _RateWindow(n, 30, x.device)
        for step in range(1, self.steps + 1):
            active = (found & (source >= self.source_step_convergence) & (dist > 0)).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            xa, ba = flat_x[active], flat_best[active]
            towards = xa - ba  # from the current adversarial to the original
            norms = dist[active][:, None]
            unit = towards / norms
            eta = rand_like_on(xa, generator, normal=True)
            eta = eta - (eta * unit).sum(1, keepdim=True) * unit  # orthogonal to the source direction
            eta = eta * (spherical[active][:, None] * norms / eta.norm(dim=1, keepdim=True).clamp_min(1e-12))
            scale = torch.sqrt(spherical[active] ** 2 + 1)[:, None]
            on_sphere = (xa + (eta - towards) / scale).clamp(0.0, 1.0)
            back = xa - on_sphere
            back_norm = back.norm(dim=1, keepdim=True).clamp_min(1e-12)
            length = (source[active][:, None] * norms + back_norm - norms).clamp_min(0.0) / back_norm
            candidate = (on_sphere + length * back).clamp(0.0, 1.0)
            shape = (-1,) + tuple(x.shape[1:])
            is_adv = oracle.is_adversarial(candidate.view(shape), y[active])
            new_dist = (xa - candidate).norm(dim=1)
            better = is_adv & (new_dist < dist[active])
            flat_best[active[better]] = candidate[better]
            dist[active[better]] = new_dist[better]
            if step % self.update_every == 0:
                spherical_adv = oracle.is_adversarial(on_sphere.view(shape), y[active])
                spherical_window.append(active, spherical_adv)
                step_window.append(active, is_adv)
                self._adapt(spherical, source, spherical_window, step_window)
        return flat_best.view_as(x)

    def _adapt(self, spherical: torch.Tensor, source: torch.Tensor, spherical_window: _RateWindow,
               step_window: _RateWindow) -> None:
        """foolbox 3's rule: aim at 20-50 % successful spherical moves and 10-25 % successful steps."""
        factor = self.step_adaptation
        full = spherical_window.full()
        rate = spherical_window.rate()
        grow, shrink = full & (rate > 0.5), full & (rate < 0.2)
        spherical.mul_(torch.where(grow, factor, 1.0)).div_(torch.where(shrink, factor, 1.0))
        source.mul_(torch.where(grow, factor, 1.0)).div_(torch.where(shrink, factor, 1.0))
        spherical_window.clear(grow | shrink)
        full = step_window.full()
        rate = step_window.rate()
        grow, shrink = full & (rate > 0.25), full & (rate < 0.1)
        source.mul_(torch.where(grow, factor, 1.0)).div_(torch.where(shrink, factor, 1.0))
        step_window.clear(grow | shrink)
