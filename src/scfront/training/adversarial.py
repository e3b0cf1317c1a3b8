"""Training objectives: clean cross-entropy, PGD adversarial training and TRADES (PAPER.md §5).

The inner maximisation is a small signed-gradient ascent in the Linf ball written here rather
than taken from :mod:`scfront.attacks`: training needs the *last* iterate of a fixed number of
steps on an arbitrary loss (cross-entropy for PGD-AT, the KL term for TRADES), while the
evaluation attacks keep the first misclassified iterate and only know classification losses.

Mode during the attack (a documented choice):
- PGD-AT keeps the model in train mode while crafting the batch, as Madry et al. and the
  paper's code did: BatchNorm normalises each iterate with its own batch statistics.
- TRADES crafts in eval mode and trains in train mode, as Zhang et al.'s reference code does.

Random starts are drawn by the caller (:func:`initial_perturbation`) for the whole global batch,
so a multi-process run shards the very same starting points as a single process.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from scfront.config import TrainConfig, TrainMethod

TRADES_START_STD = 0.001  # x + 0.001·N(0, 1): the TRADES reference start


def initial_perturbation(config: TrainConfig, x: torch.Tensor,
                         generator: torch.Generator) -> torch.Tensor | None:
    """Starting point of the inner maximisation for batch ``x`` ((B, C, H, W) in [0, 1]).

    PGD-AT: uniform in the ε-ball, clipped to [0, 1]. TRADES: ``x + 0.001·N(0, 1)`` clipped to
    [0, 1] (the reference code left it unclipped; the frontend rejects inputs outside [0, 1]).
    Natural training: ``None``. Drawn on the generator's device, then moved to ``x``'s.
    """
    method = TrainMethod(config.method)
    if method is TrainMethod.NATURAL:
        return None
    if method is TrainMethod.PGD_AT:
        noise = torch.rand(x.shape, generator=generator, device=generator.device)
        noise = noise.to(x.device).mul_(2.0 * config.attack_eps).sub_(config.attack_eps)
    else:
        noise = torch.randn(x.shape, generator=generator, device=generator.device)
        noise = noise.to(x.device).mul_(TRADES_START_STD)
    return (x + noise).clamp_(0.0, 1.0)


def linf_ascent(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                start: torch.Tensor, eps: float, step_size: float, steps: int) -> torch.Tensor:
    """Maximise ``loss_fn`` over the Linf ball of radius ``eps`` around ``x`` intersected with
    [0, 1], by ``steps`` steps ``x' ← Π(x' + step_size · sign(∇loss))`` from ``start``.

    Args:
        loss_fn: maps a batch (B, C, H, W) to a scalar (summed over the batch, so that each
            example's gradient does not depend on the batch size).
        x, start: (B, C, H, W) float in [0, 1].

    Returns:
        the last iterate, detached, inside the ball and [0, 1]. Only gradients with respect to
        the input are computed: parameter ``.grad`` fields are left untouched.
    """
    lower, upper = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = start.detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(x_adv), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + step_size * grad.sign(), lower), upper)
    return x_adv.detach()


def training_loss(config: TrainConfig, model: nn.Module, attack_model: nn.Module,
                  x: torch.Tensor, y: torch.Tensor,
                  start: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to minimise on one batch, and the logits used for the training accuracy.

    Args:
        config: method and attack settings.
        model: the network to train (possibly a DistributedDataParallel wrapper), in train mode.
        attack_model: the same network unwrapped; the attack's extra passes go through it so
            that DDP only sees the forward whose gradients it must reduce.
        x: (B, C, H, W) float in [0, 1]; y: (B,) int64.
        start: :func:`initial_perturbation` for this batch (None for natural training).

    Returns:
        (scalar mean loss, (B, classes) logits): clean logits for natural and TRADES training,
        adversarial logits for PGD-AT.
    """
    method = TrainMethod(config.method)
    if method is TrainMethod.NATURAL:
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    assert start is not None
    if method is TrainMethod.PGD_AT:
        x_adv = linf_ascent(lambda v: F.cross_entropy(attack_model(v), y, reduction="sum"),
                            x, start, config.attack_eps, config.attack_step, config.attack_steps)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    # TRADES (Zhang et al. 2019): CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)), batch mean.
    attack_model.eval()
    try:
        with torch.no_grad():
            target = F.softmax(attack_model(x), dim=1)
        x_adv = linf_ascent(
            lambda v: F.kl_div(F.log_softmax(attack_model(v), dim=1), target, reduction="sum"),
            x, start, config.attack_eps, config.attack_step, config.attack_steps)
    finally:
        attack_model.train()
    logits = model(x)
    logits_adv = model(x_adv)
    robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1),
                      reduction="batchmean")
    return F.cross_entropy(logits, y) + config.trades_beta * robust, logits
