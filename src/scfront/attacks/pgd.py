"""Projected gradient descent (Madry et al. 2018) for Linf, L2 and L1, with CE or CW loss.

One implementation (:class:`PGD`); the registered attacks only change defaults. Restarts, EOT and
BPDA come from :class:`~scfront.attacks.gradient.GradientAttack`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack, as_enum
from scfront.attacks.losses import CW_KAPPA, Loss, make_loss
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError

__all__ = ["PGD", "PGDLinf", "CWLinf", "PGDL2", "PGDL1", "EOTPGDLinf", "Projection"]


class Projection(str, enum.Enum):
    """How an iterate is brought back into the ball after each step."""

    EXACT = "exact"  # nearest point of ball ∩ box (ThreatModel.project)
    RADIAL = "radial"  # the original code's radial rescaling then box clipping (ThreatModel.rescale)


@dataclass(frozen=True)
class PGD(GradientAttack):
    """PGD: ``x ← Π(x + step_size · d(∇loss))`` for ``steps`` steps, ``d`` the norm's unit step.

    Not registered itself; see the registered subclasses for defaults. Per run the returned
    point is the first iterate (after ≥ 1 step) the model misclassifies, else the last iterate.

    Attributes (besides :class:`~scfront.attacks.gradient.GradientAttack`'s):
        steps: number of gradient steps. step_size: length of each step in the threat norm.
        random_start: start from :meth:`ThreatModel.random_start` instead of ``x``.
        loss: ``"ce"`` cross-entropy or ``"cw"`` margin with ``kappa`` (κ = 50, PAPER.md §7).
        projection: ``"exact"`` or ``"radial"`` (the original L1 attack's rescaling).
    """

    steps: int = 40
    step_size: float = 1.0 / 255.0
    random_start: bool = True
    loss: Loss = Loss.CE
    kappa: float = CW_KAPPA
    projection: Projection = Projection.EXACT

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "loss", as_enum(self.name, "loss", self.loss, Loss, (Loss.CE, Loss.CW)))
        object.__setattr__(self, "projection", as_enum(self.name, "projection", self.projection, Projection))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not isinstance(self.step_size, (int, float)) or not self.step_size > 0:
            raise ConfigError(f"step_size must be a number > 0, got {self.step_size!r}")

    def direction(self, grad: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Unit ascent direction in the threat norm (overridden by the sparse L1 attack)."""
        return self.threat.normalize_step(grad)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        threat = self.threat
        loss_fn = make_loss(self.loss, self.kappa)
        back = threat.project if self.projection is Projection.EXACT else threat.rescale
        x_adv = threat.random_start(x, generator) if self.random_start else x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        x_found = x_adv.clone()
        for step in range(self.steps):
            _, grad, logits = self.gradient(model, x_adv, y, loss_fn)
            if step > 0:
                # keep the first misclassified iterate: later steps may wander back
                new = (logits.argmax(dim=1) != y) & ~found
                x_found[new] = x_adv[new]
                found |= new
            x_adv = back(x_adv + self.step_size * self.direction(grad, x_adv), x)
        return torch.where(found[:, None, None, None], x_found, x_adv)


@register_attack
@dataclass(frozen=True)
class PGDLinf(PGD):
    """PGD-Linf (Madry et al. 2018), the paper's Linf column (PAPER.md section 7).

    Norm Linf. Defaults: eps 8/255, step_size 1/255, steps 40, random_start True, loss "ce",
    restarts 1 (the paper: 100), top_u/steepness None (keep the model's BPDA rules),
    eot_samples 1. Input x: (N, C, H, W) float in [0, 1], y: (N,) int64; output in the ball.
    Example: ``create_attack("pgd-linf", restarts=10)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "pgd-linf"
    norm: ClassVar[Norm] = Norm.LINF


@register_attack
@dataclass(frozen=True)
class CWLinf(PGD):
    """CW-Linf: PGD-Linf on the Carlini-Wagner margin ``max(z_y − max_{j≠y} z_j + κ, 0)``.

    Norm Linf. Defaults as pgd-linf (eps 8/255, step_size 1/255, steps 40, random start,
    restarts 1) with loss "cw", kappa 50 (PAPER.md section 7). x: (N, C, H, W) in [0, 1].
    """

    name: ClassVar[str] = "cw-linf"
    norm: ClassVar[Norm] = Norm.LINF
    loss: Loss = Loss.CW


@register_attack
@dataclass(frozen=True)
class PGDL2(PGD):
    """PGD-L2: steps along ``g/‖g‖₂``, exact projection onto the L2 ball ∩ [0, 1].

    Norm L2. Defaults (PAPER.md section 7): eps 0.6, step_size 0.075, steps 40, random start
    (uniform in the ball), loss "ce", restarts 1. x: (N, C, H, W) float in [0, 1].
    """

    name: ClassVar[str] = "pgd-l2"
    norm: ClassVar[Norm] = Norm.L2
    eps: float = 0.6
    step_size: float = 0.075


@register_attack
@dataclass(frozen=True)
class PGDL1(PGD):
    """PGD-L1 as in the original code: a faithful but weak L1 attack (PAPER.md section 7).

    Steps along ``g/‖g‖₁`` scaled by step_size (a dense step with tiny coordinates), then
    rescales radially onto the L1 ball and clips to [0, 1] (``projection="radial"``). Norm L1.
    Defaults: eps 30, step_size 3.75, steps 40, random start, loss "ce", restarts 1. For a real
    L1 attack use ``pgd-l1-sparse``. x: (N, C, H, W) float in [0, 1].
    """

    name: ClassVar[str] = "pgd-l1"
    norm: ClassVar[Norm] = Norm.L1
    eps: float = 30.0
    step_size: float = 3.75
    projection: Projection = Projection.RADIAL


@register_attack
@dataclass(frozen=True)
class EOTPGDLinf(PGD):
    """EOT-PGD-Linf: PGD-Linf whose gradient is the mean over ``eot_samples`` passes.

    For randomised frontends (noise, dropout variants; Athalye et al. 2018). Norm Linf.
    Defaults: as pgd-linf (eps 8/255, step_size 1/255, steps 40, random start, loss "ce",
    restarts 1) with eot_samples 10. x: (N, C, H, W) float in [0, 1].
    """

    name: ClassVar[str] = "eot-pgd-linf"
    norm: ClassVar[Norm] = Norm.LINF
    eot_samples: int = 10
