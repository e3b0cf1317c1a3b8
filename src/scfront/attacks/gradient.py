"""What every gradient attack shares, written once: the EOT gradient oracle, the per-example
worst case over restarts, BPDA rules, and the ε-bounded threat model.

:class:`GradientAttack` is a :class:`~scfront.attacks.base.FixedBudgetAttack` whose fields
``eps``, ``restarts``, ``bpda`` and ``eot_samples`` every gradient attack has.

- :func:`loss_and_grad` averages the gradient over ``eot_samples`` forward/backward passes
  (Expectation over Transformation, Athalye et al. 2018); with one sample it is the plain
  gradient. Gradients are taken with ``torch.autograd.grad`` with respect to the input only, so
  nothing accumulates in the model's parameters.
- :func:`keep_worst` runs a sequence of attack runs (restarts, targets) AutoAttack style: each
  run only sees the points no earlier run has fooled, the first fooling point is kept, and for
  points never fooled the one with the smallest margin ``z_y − max_{j≠y} z_j`` is kept. A run
  draws from the randomness of its own rows (:func:`~scfront.sampling.rows_of`), so with
  per-example generators a point's result never depends on the other points of the batch.

The runs themselves stop computing a point once it is misclassified (PGD, APGD, FAB): the
working batch shrinks to the still-robust rows, so later steps cost only those. Every quantity
of a run is per example, so the result of each point is what it is without the shrinking.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Iterator

import torch
from torch import nn

from scfront.attacks.base import FixedBudgetAttack
from scfront.attacks.losses import LossFn, margin
from scfront.attacks.threat import Norm, ThreatModel
from scfront.attacks.validate import number
from scfront.errors import ConfigError
from scfront.frontend.bpda import BPDA
from scfront.frontend.encoder import use_bpda
from scfront.sampling import Randomness, rows_of
from scfront.validate import positive_int, radius

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool

__all__ = ["GradientAttack", "keep_worst", "loss_and_grad", "Run", "target_ranks"]

#: One run of an attack on a subset of the batch: ``(rows, x_sub, y_sub, generator_sub) -> x_adv_sub``
#: with ``rows`` (M,) int64 the subset's positions in the attacked batch, ``x_sub`` (M, C, H, W),
#: ``y_sub`` (M,) and ``generator_sub`` the randomness of those rows.
Run = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Randomness], torch.Tensor]


def loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                  eot_samples: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example loss, its gradient with respect to ``x`` and the logits, averaged over EOT.

    Args:
        model: maps (N, C, H, W) to logits (N, K); may be random (then EOT averages it).
        x: (N, C, H, W) float. y: (N,) int64 (labels or whatever ``loss_fn`` expects).
        loss_fn: ``(logits, y) -> (N,)``; examples must not interact (eval-mode BatchNorm).
        eot_samples: number of forward/backward passes averaged (≥ 1).
    Returns:
        ``(loss (N,), grad (N, C, H, W), logits (N, K))``, all detached, means over the samples.
    """
    loss_sum = grad_sum = logits_sum = None
    with torch.enable_grad():
        for _ in range(eot_samples):
            xr = x.detach().requires_grad_(True)
            logits = model(xr)
            loss = loss_fn(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), xr)
            loss, logits = loss.detach(), logits.detach()
            if loss_sum is None:
                loss_sum, grad_sum, logits_sum = loss, grad, logits
            else:
                loss_sum, grad_sum, logits_sum = loss_sum + loss, grad_sum + grad, logits_sum + logits
    assert loss_sum is not None and grad_sum is not None and logits_sum is not None
    return loss_sum / eot_samples, grad_sum / eot_samples, logits_sum / eot_samples


def target_ranks(clean_logits: torch.Tensor, n_target_classes: int,
                 restarts: int) -> Iterator[tuple[torch.Tensor, int, int]]:
    """The runs of a targeted attack (APGD-T, FAB-T), AutoAttack's order: ``(order, rank,
    restart)`` for rank 1, ..., ``n_target_classes`` and ``restarts`` runs each.

    ``order`` (N, K) int64 holds each row's classes by decreasing clean logit, from one forward
    pass for all ranks; rank r targets ``order[:, r]``, the r-th most likely class after the top
    one (the true class of every attacked point: only correctly classified points are attacked).
    """
    order = torch.sort(clean_logits, dim=1, descending=True).indices
    for rank in range(1, n_target_classes + 1):
        for restart in range(restarts):
            yield order, rank, restart


def keep_worst(model: nn.Module, x: torch.Tensor, y: torch.Tensor, runs: Iterable[Run],
               generator: Randomness = None, clean_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example worst case over ``runs`` (restarts, target classes), AutoAttack protocol.

    Args:
        x: (N, C, H, W) float in [0, 1]. y: (N,) int64.
        runs: each maps ``(rows, x[rows], y[rows], rows_of(generator, rows))`` to adversarial
            points of the subset's shape.
        generator: the randomness of the batch; each run gets that of the rows it attacks.
        clean_logits: (N, K) logits of ``x`` if the caller has them (saves a forward pass).
    Returns:
        (N, C, H, W): for each example the first point that fooled the model, else the point of
        smallest margin; points misclassified already are returned unchanged and never attacked.
    """
    if clean_logits is None:
        with torch.inference_mode():
            clean_logits = model(x)
    fooled = clean_logits.argmax(dim=1) != y
    best_margin = margin(clean_logits, y)
    x_best = x.clone()
    for run in runs:
        idx = torch.nonzero(~fooled).squeeze(1)
        if idx.numel() == 0:
            break
        x_run = run(idx, x[idx], y[idx], rows_of(generator, idx)).detach()
        with torch.inference_mode():
            logits = model(x_run)
        m = margin(logits, y[idx])
        f = logits.argmax(dim=1) != y[idx]
        better = f | (m < best_margin[idx])
        x_best[idx[better]] = x_run[better]
        best_margin[idx[better]] = m[better]
        fooled[idx[f]] = True
    return x_best


@dataclass(frozen=True)
class GradientAttack(FixedBudgetAttack):
    """Base of the ε-bounded gradient attacks (fields shared by all of them).

    Attributes:
        eps: radius of the threat model (units of pixel values in [0, 1]).
        restarts: independent runs; the per-example worst case is kept (:func:`keep_worst`).
        bpda: the frontend's backward rules during the attack
            (:class:`~scfront.frontend.bpda.BPDA`, e.g. ``BPDA(top_u=0, steepness=0)`` for the
            identity through top-T and the activation; docs/method.md §6); ``None`` keeps the
            model's own rules and works on models without a frontend.
        eot_samples: gradients averaged per step (EOT, for randomised frontends).
    """

    norm: ClassVar[Norm]
    eps: float = 8.0 / 255.0
    restarts: int = 1
    bpda: BPDA | None = None
    eot_samples: int = 1

    def __post_init__(self) -> None:
        norm = getattr(self, "norm", None)  # a ClassVar of the registered attacks
        if norm is None:
            number(self.name, "eps", self.eps, low=0.0, low_open=True)
        else:
            radius(norm, self.eps, f"{self.name}: eps")
        positive_int(self.restarts, f"{self.name}: restarts")
        positive_int(self.eot_samples, f"{self.name}: eot_samples")
        if self.bpda is not None and not isinstance(self.bpda, BPDA):
            raise ConfigError(f"{self.name}: bpda must be a scfront.frontend.BPDA value or None "
                              f"(the model's own rules), got {self.bpda!r}")

    @property
    def threat(self) -> ThreatModel:
        return ThreatModel(self.norm, self.eps)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        rules = contextlib.nullcontext() if self.bpda is None else use_bpda(model, self.bpda)
        with rules:
            with torch.inference_mode():
                clean_logits = model(x)
            runs = self.runs(model, x, y, clean_logits)
            return keep_worst(model, x, y, runs, generator, clean_logits)

    def runs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             clean_logits: torch.Tensor) -> Iterator[Run]:
        """The runs whose worst case is kept: ``restarts`` calls of :meth:`attack_once`.

        Args:
            x: (N, C, H, W), y: (N,): the whole batch; clean_logits: (N, K) the model's logits
                on it (e.g. for the target classes of a targeted attack).
        """
        for _ in range(self.restarts):
            yield lambda rows, xs, ys, gen: self.attack_once(model, xs, ys, gen)

    def gradient(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`loss_and_grad` with this attack's ``eot_samples``."""
        return loss_and_grad(model, x, y, loss_fn, self.eot_samples)

    @abc.abstractmethod
    def attack_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    generator: Randomness) -> torch.Tensor:
        """One run on ``x``: (N, C, H, W) float in [0, 1], ``y``: (N,) int64 → (N, C, H, W);
        ``generator``: the randomness of these N rows."""
