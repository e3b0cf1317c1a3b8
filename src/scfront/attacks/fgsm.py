"""Single-step Linf attacks: FGSM (Goodfellow et al. 2015) and R-FGSM (Tramèr et al. 2018).

One implementation: R-FGSM first moves ``alpha·sign(N(0, I))`` at random, then takes the FGSM
step of length ``eps − alpha`` from there; FGSM is the case ``alpha = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack
from scfront.attacks.losses import CW_KAPPA, Loss, make_loss
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.attacks.validate import number
from scfront.sampling import Randomness, normal
from scfront.validate import to_enum

__all__ = ["FGSM", "RFGSM"]


@register_attack
@dataclass(frozen=True)
class FGSM(GradientAttack):
    """FGSM (Goodfellow et al. 2015): ``x + eps·sign(∇_x loss(x, y))``, clipped to [0, 1].

    Norm Linf. Defaults: eps 8/255, loss "ce" (or "cw" with kappa 50), alpha 0 (no random
    step), restarts 1, bpda None (the model's own BPDA rules), eot_samples 1.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("fgsm", eps=4 / 255)(model, x, y)``.
    """

    name: ClassVar[str] = "fgsm"
    norm: ClassVar[Norm] = Norm.LINF
    loss: Loss = Loss.CE
    kappa: float = CW_KAPPA
    alpha: float | None = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "loss", to_enum(Loss, self.loss, f"{self.name}: loss", (Loss.CE, Loss.CW)))
        if self.alpha is not None:
            number(self.name, "alpha", self.alpha, 0.0, self.eps)  # at most eps

    def _alpha(self) -> float:
        return self.eps / 2.0 if self.alpha is None else float(self.alpha)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        alpha = self._alpha()
        start = x
        if alpha > 0:
            noise = normal(x.shape, generator, x)
            start = (x + alpha * torch.sign(noise)).clamp(0.0, 1.0)
        _, grad, _ = self.gradient(model, start, y, make_loss(self.loss, self.kappa))
        return self.threat.project(start + (self.eps - alpha) * torch.sign(grad), x)


@register_attack
@dataclass(frozen=True)
class RFGSM(FGSM):
    """R-FGSM (Tramèr et al. 2018): a random step ``alpha·sign(N(0, I))``, then FGSM with ``eps − alpha``.

    Norm Linf. Defaults: eps 8/255, alpha None (= eps/2, the paper's choice), loss "ce",
    restarts 1, bpda None, eot_samples 1.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("rfgsm", alpha=2 / 255)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "rfgsm"
    alpha: float | None = None
