"""Training objectives: clean cross-entropy, PGD adversarial training, fast adversarial training
(FGSM-RS) and TRADES (docs/method.md §5).

The inner maximisation is the attack suite's PGD-Linf, built from the training settings
(:func:`inner_attack`: ``create_attack("pgd-linf", eps=attack_eps, step_size=attack_step,
steps=attack_steps)``) and run through :meth:`scfront.attacks.pgd.PGD.ascend`, the same loop every
PGD evaluation runs: ``x' ← Π(x' + step · sign(∇loss))`` with the exact projection onto the
ε-ball ∩ [0, 1]. Through a defended model the gradient is the one of the model's own BPDA rules
(``frontend.bpda_top_u``, ``frontend.bpda_steepness``): training sets no other rule, so its
inner maximisation differentiates the encoder exactly as an evaluation with ``bpda=None`` does.

FGSM-RS (Wong, Rice & Kolter 2020, "Fast is better than free") is the same loop with one step:
``x' = Π(x + δ + α·sign(∇loss(x + δ)))`` with ``δ`` uniform in the ε-cube (the PGD start,
clipped to [0, 1]) and ``α = fgsm_alpha · attack_eps`` (1.25 ε by default), so it is PGD-AT
with ``attack_steps = 1`` and ``attack_step = α``, crafted in train mode as PGD-AT is. The
suite's ``fgsm``/``rfgsm`` attacks are not this algorithm: R-FGSM starts at a corner
``x + α·sign(N(0, I))`` and steps ``ε − α`` (never leaving the ball, so it has no projection),
while FGSM-RS starts anywhere in the cube and its step of up to 1.25 ε needs the projection.

Training differs from an evaluation in three documented ways, as in Madry et
al. (2018) and Zhang et al. (2019):

- it returns the *last* iterate of the fixed number of steps (``keep_first=False``); an
  evaluation keeps each example's first misclassified iterate instead;
- it maximises its own loss: cross-entropy for PGD-AT, the KL term for TRADES;
- it has no restarts, no per-example worst case and no forced eval mode. PGD-AT (and FGSM-RS)
  crafts the batch in train mode, as Madry et al. and the paper's code did (BatchNorm normalises each iterate with
  its own batch statistics); TRADES crafts in eval mode and trains in train mode, as Zhang et
  al.'s reference code does (:func:`~scfront.models.layers.eval_mode`).

Starting points are drawn by the caller (:func:`initial_perturbation`) for the whole global
batch, so a multi-process run shards the very same starts as a single process. PGD-AT starts
where the attack suite's PGD does (:meth:`~scfront.attacks.threat.ThreatModel.random_start`,
uniform in the ε-cube and clipped to [0, 1]), and so does FGSM-RS; TRADES at
``x + 0.001·N(0, 1)``. The starts come from the run's ``attack`` generator.

Against the signed-gradient loop this module had of its own before, the algorithm is the same
(start distribution, steps, last iterate, modes, number of forward passes) and the gradients
are bit-identical, but the floats are not: the start is computed as ``x + (2u − 1)·ε`` instead
of ``x + (2ε·u − ε)`` (up to 6e-8 apart) and each projection as ``x + clip(x' − x)`` instead of
``clip(x')`` (up to 5e-10 apart), and ``sign(∇)`` turns such differences into a whole step in
coordinates whose gradient is close to zero. Training results are equivalent in distribution,
not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scfront import sampling
from scfront.attacks.losses import LossFn
from scfront.attacks.pgd import PGD
from scfront.attacks.registry import create_attack
from scfront.config import TrainConfig, TrainMethod
from scfront.models.layers import eval_mode

__all__ = ["ADVERSARIAL_METHODS", "TRADES_START_STD", "initial_perturbation", "inner_attack",
           "training_loss"]

TRADES_START_STD = 0.001  # x + 0.001·N(0, 1): the TRADES reference start
# The methods that train on the adversarial batch only (from the PGD start).
ADVERSARIAL_METHODS = (TrainMethod.PGD_AT, TrainMethod.FGSM_RS)


def inner_attack(config: TrainConfig) -> PGD:
    """The attack suite's PGD-Linf with the training settings, random start (drawn by
    :func:`initial_perturbation`) and radius ``attack_eps``: ``attack_steps`` steps of
    ``attack_step`` (PGD-AT, TRADES), or for FGSM-RS one step of ``fgsm_alpha · attack_eps``."""
    if config.method is TrainMethod.FGSM_RS:
        steps, step = 1, config.fgsm_alpha * config.attack_eps
    else:
        steps, step = config.attack_steps, config.attack_step
    attack = create_attack("pgd-linf", eps=config.attack_eps, step_size=step, steps=steps,
                           random_start=True)
    assert isinstance(attack, PGD)
    return attack


def initial_perturbation(config: TrainConfig, x: torch.Tensor,
                         generator: torch.Generator) -> torch.Tensor | None:
    """Starting point of the inner maximisation for batch ``x`` ((B, C, H, W) in [0, 1]).

    PGD-AT and FGSM-RS: the PGD random start, uniform in the ε-ball (Linf), clipped to [0, 1]
    (drawn from ``generator``: the run's ``attack`` generator in training). TRADES:
    ``x + 0.001·N(0, 1)`` clipped to [0, 1] (the reference code left it unclipped; the frontend
    rejects inputs outside [0, 1]). Natural training: ``None``. Drawn on the generator's
    device, then moved to ``x``'s (:mod:`scfront.sampling`).
    """
    if config.method is TrainMethod.NATURAL:
        return None
    if config.method in ADVERSARIAL_METHODS:
        return inner_attack(config).threat.random_start(x, generator)
    noise = sampling.normal(x.shape, generator, x)
    return (x + TRADES_START_STD * noise).clamp_(0.0, 1.0)


def _kl_from(target: torch.Tensor) -> LossFn:
    """Per-example ``KL(target ‖ softmax(logits))``, the TRADES inner objective: (N,) float."""

    def loss(logits: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="none").sum(dim=1)

    return loss


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
        adversarial logits for PGD-AT and FGSM-RS. Only the attack's input gradients are computed: the
        parameters' ``.grad`` fields are left to the caller's backward pass.
    """
    if config.method is TrainMethod.NATURAL:
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    if start is None:
        raise ValueError(f"{config.method.value} training needs a start (initial_perturbation)")
    attack = inner_attack(config)
    if config.method in ADVERSARIAL_METHODS:
        x_adv = attack.ascend(attack_model, x, y, start, keep_first=False)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    # TRADES (Zhang et al. 2019): CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)), batch mean.
    with eval_mode(attack_model):
        with torch.no_grad():
            target = F.softmax(attack_model(x), dim=1)
        x_adv = attack.ascend(attack_model, x, y, start, loss_fn=_kl_from(target), keep_first=False)
    logits = model(x)
    logits_adv = model(x_adv)
    robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1),
                      reduction="batchmean")
    return F.cross_entropy(logits, y) + config.trades_beta * robust, logits
