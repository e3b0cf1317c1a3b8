"""Single-step Linf attacks: FGSM (Goodfellow et al. 2015) and R-FGSM (Tramèr et al. 2018).

One implementation: R-FGSM first moves ``alpha·sign(N(0, I))`` at random, then takes the FGSM
step of length ``eps − alpha`` from there; FGSM is the case ``alpha = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack, as_enum
from scfront.attacks.losses import CW_KAPPA, Loss, make_loss
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError

__all__ = ["FGSM", "RFGSM"]


@register_attack
@dataclass(frozen=True)
class FGSM(GradientAttack):
    """FGSM: ``x + eps·sign(∇_x loss(x, y))``, clipped to [0, 1] (Goodfellow et al. 2015).

    Norm Linf. Defaults: eps 8/255, loss "ce" (or "cw" with kappa 50), alpha 0 (no random
    step), restarts 1, top_u/steepness None, eot_samples 1.
    x: (N, C, H, W) float in [0, 1], y: (N,) int64; output in the Linf ball ∩ [0, 1].
    """

    name: ClassVar[str] = "fgsm"
    norm: ClassVar[Norm] = Norm.LINF
    loss: Loss = Loss.CE
    kappa: float = CW_KAPPA
    alpha: float | None = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "loss", as_enum(self.name, "loss", self.loss, Loss, (Loss.CE, Loss.CW)))
        if self.alpha is not None and not 0.0 <= self.alpha <= self.eps:
            raise ConfigError(f"{self.name}: alpha must lie in [0, eps={self.eps}], got {self.alpha!r}")

    def _alpha(self) -> float:
        return self.eps / 2.0 if self.alpha is None else float(self.alpha)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        alpha = self._alpha()
        start = x
        if alpha > 0:
            device = generator.device if generator is not None else x.device
            noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
            start = (x + alpha * torch.sign(noise)).clamp(0.0, 1.0)
        _, grad, _ = self.gradient(model, start, y, make_loss(self.loss, self.kappa))
        return self.threat.project(start + (self.eps - alpha) * torch.sign(grad), x)


@register_attack
@dataclass(frozen=True)
class RFGSM(FGSM):
    """R-FGSM (Tramèr et al. 2018): a random step ``alpha·sign(N(0, I))``, then FGSM with
    ``eps − alpha``. Norm Linf. Defaults: eps 8/255, alpha None (= eps/2, the paper's choice),
    loss "ce", restarts 1. x: (N, C, H, W) float in [0, 1]; output in the Linf ball ∩ [0, 1].
    """

    name: ClassVar[str] = "rfgsm"
    alpha: float | None = None
