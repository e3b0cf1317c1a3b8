"""Early stopping on PGD robustness, the safeguard of fast adversarial training against
catastrophic overfitting (Wong, Rice & Kolter 2020; docs/method.md §5).

With ``train.early_stop_images = N > 0`` a run holds N training images out of training
(:func:`held_out_split`, a seeded subset fixed by ``train.seed``) and, after every epoch of its
classifier objective, measures on them (:class:`RobustnessCheck`, eval mode):

- the clean accuracy, and
- the accuracy under the suite's PGD-Linf at ``train.attack_eps`` with ``early_stop_steps``
  steps of ``early_stop_rel_step · attack_eps`` from a random start. Each image draws its start
  from its own stream keyed by the run seed and the image's index in the training set, the
  same every epoch, so two epochs are compared on the same starts and the result does not
  depend on the batch size or the number of processes.

:func:`judge` then decides from the previous epoch's record alone (which carries the best epoch
so far) whether the robust accuracy has *collapsed*:

1. it is more than ``early_stop_drop`` below its best (Wong et al.'s rule, 0.2 = 20 points), or
2. it is at most ``early_stop_floor`` while it was above the floor at its best epoch, and the
   clean accuracy is above that of the best epoch (robustness gone while the clean fit goes on:
   the signature of catastrophic overfitting).

A collapse stops training after that epoch; the weights of the best epoch (the highest robust
accuracy, the earliest on ties) become the final model. Wong et al. compared each epoch with
the previous one on one training batch; here the reference is the best epoch and the images
are held out, so a slow decline is caught as well and the check does not measure images the
network has fitted. The decision is part of the epoch's log record, which the checkpoint
holds, and the best weights are part of every checkpoint, so a killed run resumes to the same
decision and the same final weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from scfront import distributed as D
from scfront.attacks.registry import create_attack
from scfront.config import TrainConfig
from scfront.errors import ConfigError
from scfront.models.layers import eval_mode
from scfront.sampling import RowGenerators, stable_seed
from scfront.training.metrics import count_correct

__all__ = ["RECORD_KEY", "RobustnessCheck", "held_out_split", "judge", "last_check", "stop_record"]

RECORD_KEY = "early_stop"  # the key of the check's result in an epoch's log record
_TOLERANCE = 1e-9  # accuracies are multiples of 1/N: no float noise decides a stop


def held_out_split(n_train: int, n_held: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(held_out, rest)``: (n_held,) and (n_train − n_held,) int64 indices of the training set,
    each in increasing order; ``held_out`` = ``randperm(n_train)[:n_held]`` of a generator seeded
    with ``stable_seed("early-stop", seed)``.

    Raises:
        ConfigError: ``n_held`` not below ``n_train`` (something must be left to train on).
    """
    if not 0 < n_held < n_train:
        raise ConfigError(f"train.early_stop_images = {n_held} must be below the {n_train} training "
                          "images (they are held out of training); lower it or set it to 0")
    gen = torch.Generator().manual_seed(stable_seed("early-stop", seed) & ((1 << 63) - 1))
    order = torch.randperm(n_train, generator=gen)
    return order[:n_held].sort().values, order[n_held:].sort().values


@dataclass(frozen=True)
class RobustnessCheck:
    """The per-epoch measurement on the held-out images.

    Attributes:
        images: (N, C, H, W) uint8, the held-out training images (not augmented).
        labels: (N,) int64.
        rows: (N,) int64, their indices in the training set (the keys of their random streams).
        eps: Linf radius in (0, 1]. steps: >= 1. step_size: absolute step, > 0.
        seed: the run seed (``train.seed``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    rows: torch.Tensor
    eps: float
    steps: int
    step_size: float
    seed: int

    @classmethod
    def of(cls, config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
           rows: torch.Tensor) -> "RobustnessCheck":
        return cls(images, labels, rows, config.attack_eps, config.early_stop_steps,
                   config.early_stop_rel_step * config.attack_eps, config.seed)

    def settings(self) -> dict[str, Any]:
        """What the check measures, as recorded with each result."""
        return {"images": int(self.images.shape[0]), "attack": "pgd-linf", "eps": self.eps,
                "steps": self.steps, "step_size": self.step_size}

    def measure(self, model: nn.Module, batch_size: int, ctx: D.DistContext) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) in [0, 1] of ``model`` (eval mode for the measurement,
        every submodule's mode restored) on the held-out images, each process a shard."""
        attack = create_attack("pgd-linf", eps=self.eps, steps=self.steps, step_size=self.step_size,
                               random_start=True)
        part = D.shard(int(self.images.shape[0]), ctx)
        images, labels, rows = self.images[part], self.labels[part], self.rows[part]
        clean = robust = 0
        with eval_mode(model):
            clean = count_correct(model, images, labels, batch_size, ctx.device)
            for start in range(0, int(images.shape[0]), batch_size):
                x = images[start:start + batch_size].to(ctx.device).to(torch.float32).div_(255.0)
                y = labels[start:start + batch_size].to(ctx.device)
                streams = RowGenerators.seeded(self.seed, "early-stop", rows=rows[start:start + batch_size],
                                               device=ctx.device)
                robust += int((~attack(model, x, y, generator=streams).success).sum().item())
        total_clean, total_robust = D.sum_across([float(clean), float(robust)], ctx)
        n = int(self.images.shape[0])
        return total_clean / n, total_robust / n


def judge(previous: dict[str, Any] | None, epoch: int, clean: float, robust: float,
          config: TrainConfig) -> dict[str, Any]:
    """The check's verdict for epoch ``epoch`` (1-based) from the previous epoch's check record.

    Args:
        previous: the :data:`RECORD_KEY` entry of the previous epoch's record, or None for the
            first checked epoch.
        clean, robust: this epoch's accuracies in [0, 1] on the held-out images.
        config: ``early_stop_drop`` and ``early_stop_floor``.
    Returns:
        ``clean_accuracy``, ``robust_accuracy``, ``best_epoch``, ``best_clean_accuracy``,
        ``best_robust_accuracy`` (this epoch if it is a new best, which a stopping epoch never
        is) and ``stop``: None, or the reason as one sentence.
    """
    out: dict[str, Any] = {"clean_accuracy": clean, "robust_accuracy": robust}
    if previous is None:
        return {**out, "best_epoch": epoch, "best_clean_accuracy": clean,
                "best_robust_accuracy": robust, "stop": None}
    best_epoch = int(previous["best_epoch"])
    best_clean, best_robust = float(previous["best_clean_accuracy"]), float(previous["best_robust_accuracy"])
    stop = None
    if best_robust - robust > config.early_stop_drop + _TOLERANCE:
        stop = (f"PGD accuracy of the held-out images fell to {100 * robust:.1f} %, more than "
                f"{100 * config.early_stop_drop:g} points below its best of {100 * best_robust:.1f} % "
                f"(epoch {best_epoch})")
    elif robust <= config.early_stop_floor + _TOLERANCE < best_robust and clean > best_clean + _TOLERANCE:
        stop = (f"PGD accuracy of the held-out images collapsed to {100 * robust:.1f} % (at most "
                f"{100 * config.early_stop_floor:g} %; best {100 * best_robust:.1f} % at epoch {best_epoch}) "
                f"while their clean accuracy rose to {100 * clean:.1f} % (from {100 * best_clean:.1f} %)")
    if stop is None and robust > best_robust + _TOLERANCE:
        best_epoch, best_clean, best_robust = epoch, clean, robust
    return {**out, "best_epoch": best_epoch, "best_clean_accuracy": best_clean,
            "best_robust_accuracy": best_robust, "stop": stop}


def stop_record(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The log record of the epoch whose check stopped the run, or None (the last record only
    can be one: nothing is trained after a stop)."""
    if history and (history[-1].get(RECORD_KEY) or {}).get("stop"):
        return history[-1]
    return None


def last_check(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The :data:`RECORD_KEY` entry of the latest record that has one, or None."""
    for record in reversed(history):
        if record.get(RECORD_KEY) is not None:
            return record[RECORD_KEY]
    return None
