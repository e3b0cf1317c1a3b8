"""Per-example attack objectives, all to be MAXIMISED by the attacker.

Every function maps logits ``z: (N, K)`` float and labels ``y: (N,)`` int64 to ``(N,)`` float.
"""

from __future__ import annotations

import enum
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["Loss", "LossFn", "cross_entropy", "cw_margin", "dlr", "dlr_targeted", "margin", "make_loss", "CW_KAPPA"]

CW_KAPPA = 50.0  # docs/method.md §7, column CW-Linf

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (N, K), y (N,)) -> (N,)


class Loss(str, enum.Enum):
    """The selectable objectives (``loss="ce"|"cw"|"dlr"``)."""

    CE = "ce"
    CW = "cw"
    DLR = "dlr"


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``-log softmax(z)_y``."""
    return F.cross_entropy(z, y, reduction="none")


def margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y − max_{j≠y} z_j``: negative exactly when the prediction is wrong (ties aside)."""
    z_y = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return z_y - other


def cw_margin(z: torch.Tensor, y: torch.Tensor, kappa: float = CW_KAPPA) -> torch.Tensor:
    """Carlini & Wagner (2017) margin as an ascent objective: ``−max(z_y − max_{j≠y} z_j + κ, 0)``.

    docs/method.md §7 minimises ``max(z_y − max_{j≠y} z_j + κ, 0)`` with κ = 50; the sign is
    flipped so that every loss here is maximised.
    """
    return -(margin(z, y) + kappa).clamp_min(0.0)


def _sorted(z: torch.Tensor) -> torch.Tensor:
    return torch.sort(z, dim=1, descending=True).values


def dlr(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020, eq. 5), shift and scale invariant.

    ``−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3 + 1e−12)`` with ``π`` the logits sorted decreasingly.
    The normaliser needs K ≥ 3 classes; with K = 2 (e.g. the binary models of the binarization
    test, :mod:`scfront.evaluation.binarization`) there is no third logit and the loss is the
    plain margin ``−(z_y − z_other)``, as in Zimmermann et al.'s (2022) patch of AutoAttack
    (``z_π1 − z_π2`` would make the ratio ±1, with no gradient).
    """
    if z.shape[1] < 3:
        return -margin(z, y)
    s = _sorted(z)
    return -margin(z, y) / (s[:, 0] - s[:, 2] + 1e-12)


def dlr_targeted(z: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6): ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e−12)``.

    ``target``: (N,) int64. The normaliser needs K ≥ 4 classes; with fewer the loss is the plain
    difference ``−(z_y − z_t)`` (as :func:`dlr` for K = 2; with K = 2 the only target is the
    other class).
    """
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    if z.shape[1] < 4:
        return -(z_y - z_t)
    s = _sorted(z)
    return -(z_y - z_t) / (s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12)


def make_loss(loss: Loss | str, kappa: float = CW_KAPPA) -> LossFn:
    """The function ``(z, y) -> (N,)`` for the enum value ``loss``."""
    loss = Loss(loss)
    if loss is Loss.CE:
        return cross_entropy
    if loss is Loss.DLR:
        return dlr

    def _cw(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cw_margin(z, y, kappa)

    return _cw
