"""HopSkipJump (Chen, Jordan, Wainwright, IEEE S&P 2020), batched, L2 and Linf.

Decision-based: from an adversarial point on the boundary, estimate the boundary's normal by
Monte-Carlo (the sign of "still adversarial" for random probes around the point), step along it
with a geometrically shrinking step until the point is adversarial again, and binary-search back
to the boundary on the segment to the original. Algorithm 2 and eq. (9)-(16) of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from scfront.attacks.blackbox.common import MinimumNormBlackBoxAttack
from scfront.attacks.blackbox.oracle import DRAW_DTYPE, Oracle
from scfront.attacks.blackbox.starts import StartPool, misclassified_starts
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.attacks.validate import number
from scfront.errors import ConfigError
from scfront.sampling import Randomness, normal, rows_of, uniform
from scfront.validate import positive_int

_PROBES_PER_CHUNK = 4096  # random probes held in memory at once in the gradient estimate


@register_attack
@dataclass(frozen=True)
class HopSkipJump(MinimumNormBlackBoxAttack):
    """HopSkipJump (Chen et al., IEEE S&P 2020): decision-based, minimum-norm, L2 or Linf.

    Paper: "HopSkipJumpAttack: a query-efficient decision-based attack". Starts from the nearest
    image of the start pool (``starts=StartPool(...)`` at call time) that the model labels
    differently (uniform noise without a pool). A minimum-norm attack: the call returns a
    :class:`~scfront.attacks.base.MinimumNormResult` with the closest adversarial found
    (``x_unbounded`` and its ``norm``, whose median the evaluation reports) and its projection
    onto the ε-ball (``x_adv``, ``success``).

    Args:
        norm: "L2" (default; Gaussian probes) or "Linf" (uniform probes, sign step).
        eps: radius of the constrained verdict; default None = 0.6 (L2) or 8/255 (Linf).
        steps: iterations (40, the authors' default).
        init_evals: probes for the first gradient estimate (100); iteration t uses
            ``init_evals·sqrt(t)`` probes, at most ``max_evals`` (10,000).
        gamma: sets the binary-search tolerance θ = γ/d^(3/2) (L2) or γ/d² (Linf) (1.0).
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_unbounded and x_adv in [0, 1].
    Example: ``create_attack("hopskipjump", norm="Linf")(model, x, y, generator=g, starts=StartPool(images))``.
    """

    name: ClassVar[str] = "hopskipjump"
    uses_starts: ClassVar[bool] = True
    norms: ClassVar[tuple[Norm, ...]] = (Norm.L2, Norm.LINF)
    norm: Norm = Norm.L2
    eps: float | None = None
    steps: int = 40
    init_evals: int = 100
    max_evals: int = 10000
    gamma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.steps, f"{self.name}: steps", minimum=0)
        positive_int(self.init_evals, f"{self.name}: init_evals")
        positive_int(self.max_evals, f"{self.name}: max_evals")
        if self.max_evals < self.init_evals:
            raise ConfigError(f"{self.name}: max_evals ({self.max_evals}) must be >= init_evals ({self.init_evals})")
        number(self.name, "gamma", self.gamma, low=0.0, low_open=True)

    # ------------------------------------------------------------------ geometry per norm
    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        p = math.inf if self.norm is Norm.LINF else 2.0
        return torch.linalg.vector_norm((a - b).flatten(1), ord=p, dim=1)

    def _toward(self, x: torch.Tensor, adv: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The point at parameter ``alpha`` between ``x`` (0) and ``adv`` (L2: blend in [0, 1];
        Linf: ``adv`` clipped to the Linf ball of radius ``alpha`` around ``x``)."""
        a = alpha[:, None, None, None]
        if self.norm is Norm.LINF:
            return torch.minimum(torch.maximum(adv, x - a), x + a)
        return (1 - a) * x + a * adv

    def _boundary(self, oracle: Oracle, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor,
                  theta: float) -> torch.Tensor:
        """Binary search between ``x`` and adversarial ``adv`` to the boundary (paper's BIN-SEARCH)."""
        if self.norm is Norm.LINF:
            high = self._distance(adv, x)
            tol = torch.clamp(high * theta, max=theta)
        else:
            high = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
            tol = torch.full_like(high, theta)
        low = torch.zeros_like(high)
        for _ in range(64):  # the bracket halves each time: 64 halvings exhaust float precision
            todo = ((high - low) > tol).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            mid = (high[todo] + low[todo]) / 2
            is_adv = oracle.is_adversarial(self._toward(x[todo], adv[todo], mid), y[todo])
            high[todo] = torch.where(is_adv, mid, high[todo])
            low[todo] = torch.where(is_adv, low[todo], mid)
        return self._toward(x, adv, high)

    def _gradient(self, oracle: Oracle, point: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                  n_evals: int, generator: Randomness) -> torch.Tensor:
        """Monte-Carlo estimate of the boundary normal at each ``point`` (eq. 9-10, with the
        baseline of eq. 16), unit L2 norm: (N, C, H, W). ``generator``: the randomness of the N
        rows; each chunk of rows draws its probes from its own rows' streams."""
        out = torch.empty_like(point)
        per_chunk = max(1, _PROBES_PER_CHUNK // n_evals)
        for start in range(0, point.shape[0], per_chunk):
            p = point[start:start + per_chunk]
            m = p.shape[0]
            shape = (m, n_evals) + tuple(p.shape[1:])
            gen = rows_of(generator, torch.arange(start, start + m, device=point.device))
            if self.norm is Norm.LINF:
                probe = 2 * uniform(shape, gen, p, DRAW_DTYPE) - 1
            else:
                probe = normal(shape, gen, p, DRAW_DTYPE)
            probe = probe / probe.flatten(2).norm(dim=2)[:, :, None, None, None].clamp_min(1e-12)
            d = delta[start:start + m][:, None, None, None, None]
            moved = (p[:, None] + d * probe).clamp(0.0, 1.0)
            probe = (moved - p[:, None]) / d  # the probes actually used after clipping
            labels = y[start:start + m].repeat_interleave(n_evals)
            sign = oracle.is_adversarial(moved.flatten(0, 1), labels).view(m, n_evals).to(p.dtype) * 2 - 1
            mean = sign.mean(1, keepdim=True)
            # All probes on one side: the mean direction (paper's special case); else baseline.
            weight = torch.where(mean.abs() == 1, sign, sign - mean)
            grad = (weight[:, :, None, None, None] * probe).mean(1)
            out[start:start + m] = grad / grad.flatten(1).norm(dim=1)[:, None, None, None].clamp_min(1e-12)
        return out

    # ------------------------------------------------------------------ the attack
    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        oracle = Oracle(model)
        d = x[0].numel()
        theta = self.gamma / (d * d if self.norm is Norm.LINF else d * math.sqrt(d))
        first, found = misclassified_starts(oracle, x, y, starts, generator)
        best = first.clone()
        idx = found.nonzero().squeeze(1)
        if idx.numel() == 0:
            return best
        xa, ya = x[idx], y[idx]
        walking = rows_of(generator, idx)  # the randomness of the rows that have a start
        adv = self._boundary(oracle, xa, ya, first[idx], theta)
        dist = self._distance(adv, xa)
        closest, best_dist = adv, dist
        for t in range(1, self.steps + 1):
            if t == 1:
                delta = torch.full_like(dist, 0.1)
            else:
                delta = (d * theta if self.norm is Norm.LINF else math.sqrt(d) * theta) * dist
            delta = delta.clamp_min(1e-12)
            n_evals = int(min(self.init_evals * math.sqrt(t), self.max_evals))
            grad = self._gradient(oracle, adv, ya, delta, n_evals, walking)
            update = grad.sign() if self.norm is Norm.LINF else grad
            # Geometric step search (eq. 14-15): halve until the stepped point is adversarial.
            step = dist / math.sqrt(t)
            ok = torch.zeros_like(dist, dtype=torch.bool)
            for _ in range(30):
                todo = (~ok).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                trial = (adv[todo] + step[todo, None, None, None] * update[todo]).clamp(0.0, 1.0)
                hit = oracle.is_adversarial(trial, ya[todo])
                ok[todo] = hit
                step[todo] = torch.where(hit, step[todo], step[todo] / 2)
            moved = torch.where(ok[:, None, None, None],
                                (adv + step[:, None, None, None] * update).clamp(0.0, 1.0), adv)
            adv = self._boundary(oracle, xa, ya, moved, theta)
            dist = self._distance(adv, xa)
            # The walk follows the paper; the answer is the closest adversarial it visited.
            better = dist < best_dist
            closest = torch.where(better[:, None, None, None], adv, closest)
            best_dist = torch.where(better, dist, best_dist)
        best[idx] = closest
        return best
