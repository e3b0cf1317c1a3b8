"""BPDA: the backward rules of the encoder's non-differentiable steps (docs/method.md §6).

The forward pass of every rule here is the exact encoder step; only the gradient is replaced:

- top-T (keep the T largest |z| per location): :class:`TopUMaskBackward` lets the gradient
  through on the U > T coefficients of largest |z| (zero elsewhere); with ``top_u=0`` the
  gradient passes unchanged (:class:`IdentityBackward`).
- ternary activation ``‖d_k‖₁·sign(u)·[|u| > j]`` with ``u = z/‖d_k‖₁``:
  :class:`TanhSurrogateBackward` uses the derivative of the smooth step
  ``q(u) = 0.5[tanh(s(u−j)) + tanh(s(u+j))]``; with ``steepness=0`` the gradient passes unchanged.

Which rule is used is chosen at attack time, never when the model is built: assign
``encoder.bpda = BPDA(top_u=..., steepness=...)``, give an attack ``bpda=BPDA(...)``, or use the
context manager :func:`scfront.frontend.use_bpda` (in :mod:`scfront.frontend.encoder`, next to
the encoder it walks), which sets the rule on every encoder inside a model and restores the
previous rules on exit. There is no global or class-level state. ``0`` means "identity" for both
fields, the same in Python and on the command line (``--top-u 0``, ``--steepness 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from scfront.errors import ConfigError

__all__ = [
    "BPDA",
    "IdentityBackward",
    "TanhSurrogateBackward",
    "TopUMaskBackward",
    "smooth_step",
    "smooth_step_derivative",
]


@dataclass(frozen=True)
class BPDA:
    """Backward rules of the encoder (docs/method.md §6; defaults U = 30, s = 4 from the paper).

    Attributes:
        top_u: integer ≥ 0. ``U ≥ 1``: the gradient flows to the U coefficients of largest |z| at
            each location (top-U ⊇ top-T when U ≥ T); ``0``: identity through top-T (every
            coefficient gets gradient).
        steepness: number ≥ 0, ``s`` of the tanh surrogate of the ternary activation; ``0``:
            identity through the activation.
    """

    top_u: int = 30
    steepness: float = 4.0

    def __post_init__(self) -> None:
        if self.top_u is None:
            raise ConfigError("BPDA top_u=None is no longer accepted: use top_u=0 for the identity through top-T")
        if isinstance(self.top_u, bool) or not isinstance(self.top_u, int) or self.top_u < 0:
            raise ConfigError(f"BPDA top_u must be an integer >= 0 (0: identity through top-T), got {self.top_u!r}")
        if isinstance(self.steepness, bool) or not isinstance(self.steepness, (int, float)) \
                or not math.isfinite(self.steepness) or self.steepness < 0:
            raise ConfigError(f"BPDA steepness must be a finite number >= 0, got {self.steepness!r}")
        object.__setattr__(self, "steepness", float(self.steepness))


# --------------------------------------------------------------------------- autograd rules
class IdentityBackward(torch.autograd.Function):
    """Forward: ``op(x)`` exactly. Backward: the gradient passes unchanged (straight-through).

    Used for top-T with ``top_u=0`` and for the activation with ``steepness=0``; ``op`` must
    keep the shape of ``x``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return op(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class TopUMaskBackward(torch.autograd.Function):
    """Forward: ``where(keep, z, 0)`` (top-T). Backward: ``grad · pass_`` (the top-U mask).

    Args:
        z: any shape, float.
        keep: bool, broadcastable to ``z``: the coefficients top-T keeps.
        pass_: bool, broadcastable to ``z``: where the gradient flows (top-U ⊇ top-T).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, keep: torch.Tensor, pass_: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pass_)
        return torch.where(keep, z, torch.zeros((), dtype=z.dtype, device=z.device))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (pass_,) = ctx.saved_tensors
        return grad * pass_, None, None


def smooth_step(u: torch.Tensor, jump: float, steepness: float) -> torch.Tensor:
    """``q(u) = 0.5[tanh(s(u−j)) + tanh(s(u+j))]``: the smooth stand-in for the ternary step."""
    return 0.5 * (torch.tanh(steepness * (u - jump)) + torch.tanh(steepness * (u + jump)))


def smooth_step_derivative(u: torch.Tensor, jump: float, steepness: float) -> torch.Tensor:
    """``q'(u) = 0.5·s·[sech²(s(u−j)) + sech²(s(u+j))]`` (docs/method.md §6)."""
    a = torch.tanh(steepness * (u - jump))
    b = torch.tanh(steepness * (u + jump))
    return 0.5 * steepness * ((1.0 - a * a) + (1.0 - b * b))


def ternary(z: torch.Tensor, l1: torch.Tensor, jump: float) -> torch.Tensor:
    """The exact activation: ``‖d_k‖₁·sign(u)`` where ``|u| > j`` else 0, ``u = z/‖d_k‖₁``.

    Args:
        z: coefficients, float. l1: ‖d_k‖₁ broadcastable to ``z`` (e.g. (1, n, 1, 1)).
        jump: the threshold j = β·ε_a (docs/method.md §2).
    """
    u = z / l1
    return torch.where(u.abs() > jump, torch.sign(u) * l1, torch.zeros((), dtype=z.dtype, device=z.device))


class TanhSurrogateBackward(torch.autograd.Function):
    """Forward: the exact ternary activation. Backward: ``grad · q'(z/‖d_k‖₁)``.

    The surrogate output is ``‖d_k‖₁·q(u)`` with ``u = z/‖d_k‖₁``, so by the chain rule
    ``∂/∂z = ‖d_k‖₁·q'(u)·(1/‖d_k‖₁) = q'(u)``: the L1 factors cancel (docs/method.md §6).
    ``‖d_k‖₁`` is treated as a constant (as in the original; it is recomputed, not learned
    through, in the learnable-dictionary ablation).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, l1: torch.Tensor, jump: float, steepness: float) -> torch.Tensor:
        ctx.save_for_backward(z, l1)
        ctx.jump = jump
        ctx.steepness = steepness
        return ternary(z, l1, jump)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        z, l1 = ctx.saved_tensors
        return grad * smooth_step_derivative(z / l1, ctx.jump, ctx.steepness), None, None, None
