"""Square attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020), Linf and L2.

A score-based random search: each iteration changes the perturbation on one random square window
per image and keeps the change if the margin loss ``z_y − max_{j≠y} z_j`` decreases. The window
side shrinks along the paper's schedule for ``p`` (the fraction of pixels changed). Windows are
drawn independently for every image, and all images of a batch are queried together. An image
leaves the batch once misclassified (margin ≤ 0); every draw is made for the images still in
it (:func:`~scfront.sampling.rows_of`), so with per-example generators an image's search never
depends on the other images of its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from scfront.attacks.blackbox.common import BlackBoxAttack
from scfront.attacks.blackbox.oracle import DRAW_DTYPE, Oracle, flat_norm
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.attacks.validate import number
from scfront.errors import ConfigError
from scfront.sampling import Randomness, randint, rows_of, uniform
from scfront.validate import positive_int

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool

# Halving points of p on the authors' 10,000-query scale (their p_selection schedule).
_P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_at(p_init: float, it: int, n_iters: int, rescale: bool = True) -> float:
    """Fraction of pixels per window at iteration ``it`` (0-based) of ``n_iters``.

    ``p_init`` is halved after each point of :data:`_P_SCHEDULE` that ``it`` has passed; with
    ``rescale`` the points are stretched from 10,000 iterations to ``n_iters`` (``it`` is read as
    ``⌊it / n_iters · 10,000⌋``), without it they stay where they are (AutoAttack's Square,
    ``resc_schedule=False``: at 5,000 queries the last two halvings never come).
    """
    scaled = int(it / max(n_iters, 1) * 10000) if rescale else it
    halvings = sum(scaled > point for point in _P_SCHEDULE)
    return p_init / 2 ** halvings


def _window_mask(n: int, h: int, w: int, s: int, generator: Randomness,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random s×s window per image: (mask (n, 1, h, w) bool, top (n,), left (n,))."""
    top = randint(h - s + 1, (n,), generator, device)
    left = randint(w - s + 1, (n,), generator, device)
    rows = torch.arange(h, device=device)[None, :] - top[:, None]
    cols = torch.arange(w, device=device)[None, :] - left[:, None]
    mask = ((rows >= 0) & (rows < s))[:, :, None] & ((cols >= 0) & (cols < s))[:, None, :]
    return mask[:, None], top, left


def _rectangle_pattern(h: int, w: int) -> torch.Tensor:
    """Concentric rectangles weighted 1/(k+1)²: the L2 attack's pseudo-Gaussian bump, unit L2 norm."""
    out = torch.zeros(h, w)
    r, c = h // 2, w // 2
    for k in range(max(h // 2 + 1, w // 2 + 1)):
        out[max(r - k, 0):min(r + k + 1, h), max(c - k, 0):min(c + k + 1, w)] += 1.0 / (k + 1) ** 2
    return out / out.norm()


def _bump(s: int) -> torch.Tensor:
    """(s, s): a positive bump over the top half and a negative one below, unit L2 norm."""
    top = _rectangle_pattern(s // 2, s) if s // 2 > 0 else torch.zeros(0, s)
    bottom = -_rectangle_pattern(s - s // 2, s)
    out = torch.cat([top, bottom])
    return out / out.norm()


def _place(pattern: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int,
           mask: torch.Tensor) -> torch.Tensor:
    """Put per-image (n, s, s) patterns at (top, left) in an (n, 1, h, w) zero canvas."""
    n, s = pattern.shape[0], pattern.shape[1]
    device = pattern.device
    rows = (torch.arange(h, device=device)[None, :] - top[:, None]).clamp(0, s - 1)
    cols = (torch.arange(w, device=device)[None, :] - left[:, None]).clamp(0, s - 1)
    batch = torch.arange(n, device=device)[:, None, None]
    return pattern[batch, rows[:, :, None], cols[:, None, :]][:, None] * mask


@register_attack
@dataclass(frozen=True)
class SquareAttack(BlackBoxAttack):
    """Square attack (Andriushchenko et al., ECCV 2020): score-based random search, Linf or L2.

    Paper: "Square Attack: a query-efficient black-box adversarial attack via random search".
    Untargeted, margin loss on the logits, the authors' ``p`` schedule and initialisations
    (vertical stripes for Linf; a grid of ±bumps for L2).

    Args:
        norm: "Linf" (default) or "L2".
        eps: radius; default None = 8/255 for Linf, 0.6 for L2 (the paper's Table 1 columns).
        queries: iterations (one query per still-robust image each); the authors used 10,000,
            the default 5,000 is a CPU budget.
        p_init: initial fraction of pixels per window; None = 0.05 (Linf) or 0.1 (L2), the
            authors' CIFAR-10 values (AutoAttack uses 0.8 for both).
        rescale_schedule: stretch the halving points of ``p`` (iterations 10, 50, 200, 500,
            1000, 2000, 4000, 6000, 8000 of 10,000) to ``queries`` (default, as torchattacks);
            False keeps them at those iterations (AutoAttack's setting).
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; returns x_adv in the ball and [0, 1].
    Example: ``create_attack("square", norm="L2", eps=0.5)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "square"
    norms: ClassVar[tuple[Norm, ...]] = (Norm.LINF, Norm.L2)
    norm: Norm = Norm.LINF
    eps: float | None = None
    queries: int = 5000
    p_init: float | None = None
    rescale_schedule: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.queries, f"{self.name}: queries", minimum=0)
        if self.p_init is not None:
            number(self.name, "p_init", self.p_init, 0.0, 1.0, low_open=True)
        if not isinstance(self.rescale_schedule, bool):
            raise ConfigError(f"{self.name}: rescale_schedule must be true or false, got {self.rescale_schedule!r}")

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        oracle = Oracle(model)
        if self.norm is Norm.LINF:
            return self._linf(oracle, x, y, generator)
        return self._l2(oracle, x, y, generator)

    # ------------------------------------------------------------------ Linf
    def _linf(self, oracle: Oracle, x: torch.Tensor, y: torch.Tensor,
              generator: Randomness) -> torch.Tensor:
        n, c, h, w = x.shape
        eps = self.threat.eps
        p_init = 0.05 if self.p_init is None else self.p_init
        stripes = torch.where(uniform((n, c, 1, w), generator, x, DRAW_DTYPE) < 0.5, -eps, eps)
        best = (x + stripes).clamp(0.0, 1.0)
        loss = oracle.margin(best, y)
        for it in range(self.queries):
            active = (loss > 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            xa, current = x[active], best[active]
            gen = rows_of(generator, active)
            s = min(max(round(math.sqrt(p_at(p_init, it, self.queries, self.rescale_schedule) * h * w)), 1), h - 1)
            mask, _, _ = _window_mask(active.numel(), h, w, s, gen, x.device)
            candidate = current.clone()
            todo = torch.arange(active.numel(), device=x.device)  # rows whose proposal changes nothing yet
            # Redraw the window's signs where they would change nothing (the authors' loop): a
            # query spent on an unchanged image is wasted. Only those rows draw again.
            for _ in range(10):
                signs = torch.where(uniform((todo.numel(), c, 1, 1), rows_of(gen, todo), x, DRAW_DTYPE) < 0.5,
                                    -eps, eps)
                proposal = torch.where(mask[todo], (xa[todo] + signs).clamp(0.0, 1.0), current[todo])
                differs = (proposal - current[todo]).abs().flatten(1).amax(1) > 1e-7
                candidate[todo[differs]] = proposal[differs]
                todo = todo[~differs]
                if todo.numel() == 0:
                    break
            new_loss = oracle.margin(candidate, y[active])
            better = new_loss < loss[active]
            best[active[better]] = candidate[better]
            loss[active[better]] = new_loss[better]
        return best

    # ------------------------------------------------------------------ L2
    def _l2(self, oracle: Oracle, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness) -> torch.Tensor:
        n, c, h, w = x.shape
        eps = self.threat.eps
        p_init = 0.1 if self.p_init is None else self.p_init
        # Initialisation: a grid of bumps of side h//5 with random signs per image and channel.
        s0 = max(h // 5, 1)
        bump = _bump(s0).to(x)
        delta = torch.zeros_like(x)
        offset = (h - s0 * (h // s0)) // 2
        for i in range(h // s0):
            for j in range(w // s0):
                signs = torch.where(uniform((n, c, 1, 1), generator, x, DRAW_DTYPE) < 0.5, -1.0, 1.0)
                r, q = offset + i * s0, offset + j * s0
                delta[:, :, r:r + s0, q:q + s0] += bump * signs
        best = (x + delta / flat_norm(delta).clamp_min(1e-12)[:, None, None, None] * eps).clamp(0.0, 1.0)
        loss = oracle.margin(best, y)
        for it in range(self.queries):
            active = (loss > 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            m = active.numel()
            xa = x[active]
            gen = rows_of(generator, active)
            d = best[active] - xa
            s = max(round(math.sqrt(p_at(p_init, it, self.queries, self.rescale_schedule) * h * w)), 3)
            s = min(s + (s % 2 == 0), h - 1)
            mask1, top, left = _window_mask(m, h, w, s, gen, x.device)
            mask2, _, _ = _window_mask(m, h, w, s, gen, x.device)
            union = mask1 | mask2
            # Mass of the two windows (per channel), freed and moved into window 1.
            norm_union = (d * union).pow(2).sum((2, 3), keepdim=True).sqrt()
            norm_w1 = (d * mask1).pow(2).sum((2, 3), keepdim=True).sqrt()
            norm_image = flat_norm(d)[:, None, None, None]
            patterns = _bump(s).to(x).expand(m, s, s).clone()
            flip = uniform((m,), gen, x, DRAW_DTYPE) < 0.5
            patterns[flip] = patterns[flip].transpose(1, 2)
            signs = torch.where(uniform((m, c, 1, 1), gen, x, DRAW_DTYPE) < 0.5, -1.0, 1.0)
            new = _place(patterns, top, left, h, w, mask1) * signs + d * mask1 / (norm_w1 + 1e-10)
            new_norm = (new * mask1).pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12)
            budget = ((eps ** 2 - norm_image ** 2).clamp_min(0.0) / c + norm_union ** 2).sqrt()
            new = new / new_norm * budget
            d_new = torch.where(mask1, new, torch.where(mask2, torch.zeros_like(d), d))
            candidate = (xa + d_new / flat_norm(d_new).clamp_min(1e-12)[:, None, None, None] * eps).clamp(0.0, 1.0)
            new_loss = oracle.margin(candidate, y[active])
            better = new_loss < loss[active]
            best[active[better]] = candidate[better]
            loss[active[better]] = new_loss[better]
        return best
