"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", Algorithm 1) for Linf and L2, with CE, DLR and targeted DLR.

Per iteration ``k`` (momentum α = 0.75, the first step without momentum)::

    z      = Π(x_k + η·d(∇f(x_k)))
    x_k+1  = Π(x_k + α(z − x_k) + (1 − α)(x_k − x_k−1))

The step size starts at η = 2ε and is halved per example at checkpoints when (1) fewer than
ρ = 0.75 of the steps since the last checkpoint increased the loss, or (2) neither η nor the best
loss changed since the last checkpoint; a halved example restarts from its best point. The
checkpoints are ``w_j = ⌈p_j·N⌉`` with ``p_0 = 0, p_1 = 0.22,
p_j+1 = p_j + max(p_j − p_j−1 − 0.03, 0.06)`` (first after 22 % of the budget, then shrinking
by 3 %, at least 6 %).

Everything above is per example (η, the counts of condition 1, the best loss), and the checkpoint
iterations are the same for all, so a point leaves the working batch as soon as an iterate fools
the model: its result (the first fooling iterate) is fixed, and the other points' iterations
are those of the full batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
from torch import nn

from scfront.attacks.gradient import GradientAttack, Run, target_ranks
from scfront.attacks.losses import Loss, LossFn, dlr_targeted, make_loss
from scfront.attacks.registry import register_attack
from scfront.attacks.threat import Norm
from scfront.sampling import Randomness
from scfront.validate import positive_int, to_enum

__all__ = ["APGD", "APGDCE", "APGDDLR", "APGDTargeted", "checkpoints"]

MOMENTUM = 0.75  # α of Croce & Hein 2020
RHO = 0.75  # ρ of condition 1


def checkpoints(steps: int) -> list[int]:
    """The checkpoint iterations ``w_j = ⌈p_j·steps⌉ ≤ steps`` (j ≥ 1) of Croce & Hein 2020.

    ``p_j`` is kept in integer hundredths so that ``⌈·⌉`` is exact (no float round-up).
    """
    out: list[int] = []
    previous, current = 0, 22
    while True:
        w = -(-current * steps // 100)
        if w > steps:
            return out
        if not out or w > out[-1]:
            out.append(w)
        previous, current = current, current + max(current - previous - 3, 6)


@dataclass(frozen=True)
class APGD(GradientAttack):
    """APGD (not registered itself; see apgd-ce, apgd-dlr, apgd-t).

    Attributes (besides :class:`~scfront.attacks.gradient.GradientAttack`'s):
        steps: iterations (100, Croce & Hein 2020). loss: "ce" or "dlr".
        norm: "Linf" or "L2". random_start: start uniformly in the ball (as AutoAttack).
    """

    steps: int = 100
    loss: Loss = Loss.CE
    norm: Norm = Norm.LINF  # a field here (a class constant in PGD): APGD serves Linf and L2
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "loss", to_enum(Loss, self.loss, f"{self.name}: loss", (Loss.CE, Loss.DLR)))
        object.__setattr__(self, "norm", to_enum(Norm, self.norm, f"{self.name}: norm", (Norm.LINF, Norm.L2)))
        positive_int(self.steps, f"{self.name}: steps")

    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        return self._apgd(model, x, y, make_loss(self.loss), generator)

    def _apgd(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
              generator: Randomness, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One APGD run.

        Args:
            x: (N, C, H, W) in [0, 1]; y: (N,) int64 true labels (the success criterion).
            loss_fn: ``(logits, labels) -> (N,)`` to maximise.
            generator: the randomness of these N rows (the random start).
            labels: (N, ...) what ``loss_fn`` gets with the logits, row by row (``None``: ``y``);
                e.g. the true and the target class of a targeted loss.
        Returns:
            (N, C, H, W): the first fooling iterate of each example (the start counts), else its
            iterate of highest loss.
        """
        threat = self.threat
        labels = y if labels is None else labels
        x_cur = threat.random_start(x, generator) if self.random_start else x.clone()
        f_cur, g_cur, logits = self.gradient(model, x_cur, labels, loss_fn)
        out = x_cur.clone()  # fooled rows keep their first fooling iterate here
        robust = logits.argmax(dim=1) == y
        # per-row state of the still-robust rows; every tensor is indexed like ``active``
        active = robust.nonzero().squeeze(1)
        centre, y_a, lab = x[robust], y[robust], labels[robust]
        x_cur, f_cur, g_cur = x_cur[robust], f_cur[robust], g_cur[robust]
        eta = torch.full((active.numel(), 1, 1, 1), 2.0 * self.eps, dtype=x.dtype, device=x.device)
        x_max, f_max, g_max = x_cur.clone(), f_cur.clone(), g_cur.clone()
        x_prev = x_cur.clone()

        checks = checkpoints(self.steps)
        last_check = 0
        increases = torch.zeros(active.numel(), dtype=torch.long, device=x.device)
        eta_at_check, f_max_at_check = eta.clone(), f_max.clone()
        for k in range(self.steps):
            if active.numel() == 0:
                return out
            a = 1.0 if k == 0 else MOMENTUM
            z = threat.project(x_cur + eta * threat.normalize_step(g_cur), centre)
            x_next = threat.project(x_cur + a * (z - x_cur) + (1.0 - a) * (x_cur - x_prev), centre)
            f_next, g_next, logits = self.gradient(model, x_next, lab, loss_fn)

            fooled = logits.argmax(dim=1) != y_a
            if bool(fooled.any()):  # their result is fixed: they leave the working batch
                out[active[fooled]] = x_next[fooled]
                keep = ~fooled
                (active, centre, y_a, lab, x_cur, x_prev, f_cur, g_cur, x_next, f_next, g_next, eta, x_max,
                 f_max, g_max, increases, eta_at_check, f_max_at_check) = (
                    t[keep] for t in (active, centre, y_a, lab, x_cur, x_prev, f_cur, g_cur, x_next, f_next,
                                      g_next, eta, x_max, f_max, g_max, increases, eta_at_check,
                                      f_max_at_check))
            increases += (f_next > f_cur).long()
            better = f_next > f_max
            x_max[better], f_max[better], g_max[better] = x_next[better], f_next[better], g_next[better]
            x_prev, x_cur, f_cur, g_cur = x_cur, x_next, f_next, g_next

            if k + 1 in checks:
                m = active.numel()
                oscillating = increases.double() < RHO * (k + 1 - last_check)  # condition 1
                stalled = (eta == eta_at_check).view(m) & (f_max <= f_max_at_check)  # condition 2
                halve = oscillating | stalled
                eta_at_check, f_max_at_check = eta.clone(), f_max.clone()
                eta[halve] /= 2.0
                # restart the halved examples from their best point
                x_cur[halve], g_cur[halve], f_cur[halve] = x_max[halve], g_max[halve], f_max[halve]
                increases.zero_()
                last_check = k + 1
        out[active] = x_max
        return out


@register_attack
@dataclass(frozen=True)
class APGDCE(APGD):
    """APGD-CE (Croce & Hein 2020): APGD on the cross-entropy loss.

    Norm Linf (``norm="L2"`` for L2). Defaults: eps 8/255, steps 100, momentum 0.75,
    ρ 0.75, initial step 2·eps (relative to ε like every step here), random start, restarts 1
    (the paper's custom AutoAttack run), bpda None, eot_samples 1.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the ball ∩ [0, 1].
    Example: ``create_attack("apgd-ce", norm="L2", eps=0.5)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "apgd-ce"


@register_attack
@dataclass(frozen=True)
class APGDDLR(APGD):
    """APGD-DLR (Croce & Hein 2020): APGD on the difference-of-logits-ratio loss (eq. 5).

    Norm Linf (or L2). Defaults as apgd-ce (eps 8/255, steps 100, restarts 1, bpda None) with
    loss "dlr". Needs ≥ 3 classes.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the ball ∩ [0, 1].
    Example: ``create_attack("apgd-dlr", steps=50)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "apgd-dlr"
    loss: Loss = Loss.DLR


@register_attack
@dataclass(frozen=True)
class APGDTargeted(APGD):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss (eq. 6), one run per target.

    The targets are the ``n_target_classes`` most likely wrong classes of the clean input, tried
    in order; each target gets ``restarts`` runs on the points still robust; success means
    misclassification (any wrong class). Norm Linf (or L2). Defaults: eps 8/255, steps 100,
    n_target_classes 9, restarts 1, bpda None. Needs ≥ 4 classes.
    Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64; x_adv in the ball ∩ [0, 1].
    Example: ``create_attack("apgd-t", n_target_classes=3)(model, x, y, generator=g)``.
    """

    name: ClassVar[str] = "apgd-t"
    loss: Loss = Loss.DLR
    n_target_classes: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.n_target_classes, f"{self.name}: n_target_classes")

    def runs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             clean_logits: torch.Tensor) -> Iterator[Run]:
        """``restarts`` runs per target rank (:func:`~scfront.attacks.gradient.target_ranks`)."""
        for order, rank, _ in target_ranks(clean_logits, self.n_target_classes, self.restarts):
            yield self._targeted_run(model, order, rank)

    def _targeted_run(self, model: nn.Module, order: torch.Tensor, rank: int) -> Run:
        def run(rows: torch.Tensor, x: torch.Tensor, y: torch.Tensor, generator: Randomness) -> torch.Tensor:
            if rank >= order.shape[1]:
                return x.clone()  # fewer classes than targets: nothing left to try
            target = order[rows, rank]
            return self._apgd(model, x, y, _targeted_dlr, generator, labels=torch.stack([y, target], dim=1))

        return run


def _targeted_dlr(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`~scfront.attacks.losses.dlr_targeted` with ``labels`` (N, 2): true class, target."""
    return dlr_targeted(z, labels[:, 0], labels[:, 1])
