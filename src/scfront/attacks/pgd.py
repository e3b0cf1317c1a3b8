"""Projected gradient descent (Madry et al. 2018) for Linf, L2 and L1, with CE or CW loss.

One implementation (:class:`PGD`); the registered attacks only change defaults. Restarts, EOT and
BPDA come from :class:`~scfront.attacks.gradient.GradientAttack`.

Step sizes are relative to ε: the paper's steps are all ε/8 (1/255 at 8/255, 0.075 at 0.6, 3.75
at 30; docs/method.md §7), so ``rel_step_size = 1/8`` is the default and a smaller or larger ε
scales the step with it. ``step_size`` sets an absolute step instead.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from scfront.attacks.base import AttackResult, FixedBudgetAttack
from scfront.attacks.gradient import GradientAttack
from scfront.attacks.losses import CW_KAPPA, Loss, LossFn, make_loss
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.attacks.threat import ThreatModel
from scfront.attacks.validate import number
from scfront.errors import InputError
from scfront.frontend.encoder import use_bpda
from scfront.sampling import Randomness
from scfront.validate import positive_int, to_enum

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool
    from scfront.frontend.bpda import BPDA

__all__ = ["PGD", "PGDLinf", "CWLinf", "PGDL2", "PGDL1", "EOTPGDLinf", "Projection"]


class Projection(str, enum.Enum):
    """How an iterate is brought back into the ball after each step."""

    EXACT = "exact"  # nearest point of ball ∩ box (ThreatModel.project)
    RADIAL = "radial"  # the original code's radial rescaling then box clipping (ThreatModel.rescale)


@dataclass(frozen=True)
class PGD(GradientAttack):
    """PGD: ``x ← Π(x + step · d(∇loss))`` for ``steps`` steps, ``d`` the norm's unit step.

    Not registered itself; see the registered subclasses for defaults. Per run the returned
    point is the first iterate (after ≥ 1 step) the model misclassifies, else the last iterate;
    a misclassified point is not computed any further (:meth:`ascend`).

    Attributes (besides :class:`~scfront.attacks.gradient.GradientAttack`'s):
        steps: number of gradient steps.
        rel_step_size: length of each step in the threat norm as a fraction of ``eps`` (1/8).
        step_size: an absolute step length instead (``None``: ``rel_step_size · eps``); see
            :attr:`effective_step_size`.
        random_start: start from :meth:`ThreatModel.random_start` instead of ``x``.
        loss: ``"ce"`` cross-entropy or ``"cw"`` margin with ``kappa`` (κ = 50, docs/method.md §7).
        projection: ``"exact"`` or ``"radial"`` (the original L1 attack's rescaling).
    """

    steps: int = 40
    rel_step_size: float = 1.0 / 8.0
    step_size: float | None = None
    random_start: bool = True
    loss: Loss = Loss.CE
    kappa: float = CW_KAPPA
    projection: Projection = Projection.EXACT

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "loss", to_enum(Loss, self.loss, f"{self.name}: loss", (Loss.CE, Loss.CW)))
        object.__setattr__(self, "projection", to_enum(Projection, self.projection, f"{self.name}: projection"))
        positive_int(self.steps, f"{self.name}: steps")
        number(self.name, "rel_step_size", self.rel_step_size, low=0.0, low_open=True)
        if self.step_size is not None:
            number(self.name, "step_size", self.step_size, low=0.0, low_open=True)

    @property
    def effective_step_size(self) -> float:
        """The step length used: ``step_size`` if given, else ``rel_step_size · eps``."""
        return float(self.step_size) if self.step_size is not None else self.rel_step_size * self.eps

    def params(self) -> dict[str, Any]:
        """The fields, with ``step_size`` resolved to the step length used (as black-box ``eps``)."""
        out = super().params()
        out["step_size"] = self.effective_step_size
        return out

    def direction(self, grad: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Unit ascent direction in the threat norm (overridden by the sparse L1 attack)."""
        return self.threat.normalize_step(grad)

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        x_adv = self.threat.random_start(x, generator) if self.random_start else x.clone()
        return self.ascend(model, x, y, x_adv)

    def continue_from(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      points: torch.Tensor) -> AttackResult:
        """``steps`` more steps from ``points``, where an earlier run of this attack stopped.

        For a deterministic model, a run of this attack that left ``points`` robust (after its
        last step) followed by this call computes the same iterates as one run with twice the
        steps (restarts 1): the check ``more-steps`` extends the evaluation's own run this way
        instead of repeating it. Called like the attack (eval mode, frozen parameters, this
        attack's BPDA rules, the result projected onto the ball and checked on the model).

        Args:
            x: (N, C, H, W) float in [0, 1], the clean images. y: (N,) int64 labels.
            points: (N, C, H, W), the earlier run's points (inside the ball around ``x``).
        Returns:
            :class:`~scfront.attacks.base.AttackResult` of the continued run.
        """
        return _Continuation(self, points)(model, x, y)

    def ascend(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor, *,
               loss_fn: LossFn | None = None, keep_first: bool = True) -> torch.Tensor:
        """The PGD iterations from ``start``: ``steps`` steps inside the ball around ``x``.

        This is the loop every PGD run executes (:meth:`attack_once` after its random start);
        adversarial training calls it directly with its own start and loss. The model is used in
        whatever mode it is in, with its own BPDA rules, and no restarts or worst case.

        With ``keep_first`` a point leaves the working batch at its first misclassified iterate
        (after ≥ 1 step): the later steps cost only the points still robust, and since every
        quantity of a step is per example, each point's result is the one of the full-batch loop.

        Args:
            x: (N, C, H, W) float in [0, 1], the centre of the ball. y: (N,) int64 labels.
            start: (N, C, H, W), the first iterate (inside the ball).
            loss_fn: ``(logits, y) -> (N,)`` to maximise; ``None``: this attack's ``loss``.
            keep_first: return each example's first misclassified iterate (after ≥ 1 step),
                else the last iterate; ``False`` always returns the last iterate of every point.
        Returns:
            (N, C, H, W) detached, inside the ball ∩ [0, 1].
        """
        step_size = self.effective_step_size
        loss_fn = make_loss(self.loss, self.kappa) if loss_fn is None else loss_fn
        back = self.threat.project if self.projection is Projection.EXACT else self.threat.rescale
        if not keep_first:
            x_adv = start
            for _ in range(self.steps):
                _, grad, _ = self.gradient(model, x_adv, y, loss_fn)
                x_adv = back(x_adv + step_size * self.direction(grad, x_adv), x)
            return x_adv.detach()
        out = start.detach().clone()
        active = torch.arange(x.shape[0], device=x.device)  # rows of the batch still robust
        x_adv, centre, labels = start.detach(), x, y
        for step in range(self.steps):
            _, grad, logits = self.gradient(model, x_adv, labels, loss_fn)
            if step > 0:
                fooled = logits.argmax(dim=1) != labels
                if bool(fooled.any()):
                    out[active[fooled]] = x_adv[fooled]  # later steps may wander back
                    keep = ~fooled
                    active, x_adv, centre, labels, grad = (t[keep] for t in (active, x_adv, centre, labels, grad))
                    if active.numel() == 0:
                        return out
            x_adv = back(x_adv + step_size * self.direction(grad, x_adv), centre)
        out[active] = x_adv
        return out


class _Continuation(FixedBudgetAttack):
    """:meth:`PGD.ascend` of ``attack`` from fixed ``points`` behind the attacks' public call."""

    name: ClassVar[str] = "pgd-continuation"

    def __init__(self, attack: PGD, points: torch.Tensor) -> None:
        self.attack, self.points = attack, points.detach()

    @property
    def threat(self) -> ThreatModel:
        return self.attack.threat

    @property
    def eot_samples(self) -> int:
        return self.attack.eot_samples

    @property
    def bpda(self) -> BPDA | None:
        return self.attack.bpda

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        if self.points.shape != x.shape:
            raise InputError(f"{self.attack.name}: {tuple(self.points.shape)} points to continue from for "
                             f"images of shape {tuple(x.shape)}")
        start = self.threat.project(self.points.to(x.device, x.dtype), x)
        rules = contextlib.nullcontext() if self.bpda is None else use_bpda(model, self.bpda)
        with rules:
            return self.attack.ascend(model, x, y, start)


@register_attack
@dataclass(frozen=True)
class PGDLinf(PGD):
    """PGD-Linf (Madry et al. 2018), the paper's Linf column (docs/method.md §7).

    Norm Linf. Defaults: eps 8/255, rel_step_size 1/8 (step eps/8 = 1/255), step_size None,
    steps 40, random_start True, loss "ce", restarts 1 (the paper: 100), bpda None (the model's
    own BPDA rules), eot_samples 1.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("pgd-linf", restarts=10)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "pgd-linf"
    norm: ClassVar[Norm] = Norm.LINF


@register_attack
@dataclass(frozen=True)
class CWLinf(PGD):
    """CW-Linf: PGD-Linf on the Carlini-Wagner (2017) margin ``max(z_y − max_{j≠y} z_j + κ, 0)``.

    Norm Linf. Defaults as pgd-linf (eps 8/255, rel_step_size 1/8, steps 40, random start,
    restarts 1, bpda None) with loss "cw", kappa 50 (docs/method.md §7).
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("cw-linf", kappa=20.0)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "cw-linf"
    norm: ClassVar[Norm] = Norm.LINF
    loss: Loss = Loss.CW


@register_attack
@dataclass(frozen=True)
class PGDL2(PGD):
    """PGD-L2 (Madry et al. 2018): steps along ``g/‖g‖₂``, exact projection onto the L2 ball ∩ [0, 1].

    Norm L2. Defaults (docs/method.md §7): eps 0.6, rel_step_size 1/8 (step 0.075), steps 40,
    random start (uniform in the ball), loss "ce", restarts 1, bpda None, eot_samples 1.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the L2 ball ∩ [0, 1].
    Example: ``create_attack("pgd-l2", eps=0.5)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "pgd-l2"
    norm: ClassVar[Norm] = Norm.L2
    eps: float = 0.6


@register_attack
@dataclass(frozen=True)
class PGDL1(PGD):
    """PGD-L1 as in the paper's original code: a faithful but weak L1 attack (docs/method.md §7).

    Steps along ``g/‖g‖₁`` scaled by the step (a dense step with tiny coordinates), then
    rescales radially onto the L1 ball and clips to [0, 1] (``projection="radial"``). Norm L1.
    Defaults: eps 30, rel_step_size 1/8 (step 3.75), steps 40, random start, loss "ce",
    restarts 1, bpda None. For a real L1 attack use ``pgd-l1-sparse``.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the L1 ball ∩ [0, 1].
    Example: ``create_attack("pgd-l1", steps=100)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "pgd-l1"
    norm: ClassVar[Norm] = Norm.L1
    eps: float = 30.0
    projection: Projection = Projection.RADIAL


@register_attack
@dataclass(frozen=True)
class EOTPGDLinf(PGD):
    """EOT-PGD-Linf (Athalye et al. 2018): PGD-Linf whose gradient is the mean over ``eot_samples`` passes.

    Built for randomised frontends (the noise and dropout variants): ``randomized = True``.
    Norm Linf. Defaults: as pgd-linf (eps 8/255, rel_step_size 1/8, steps 40, random start,
    loss "ce", restarts 1, bpda None) with eot_samples 10.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the Linf ball ∩ [0, 1].
    Example: ``create_attack("eot-pgd-linf", eot_samples=20)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "eot-pgd-linf"
    norm: ClassVar[Norm] = Norm.LINF
    randomized: ClassVar[bool] = True
    eot_samples: int = 10
