"""BPDA: the backward rules of the encoder's non-differentiable steps (PAPER.md section 6).

The forward pass of every rule here is the exact encoder step; only the gradient is replaced:

- top-T (keep the T largest |z| per location): :class:`TopUMaskBackward` lets the gradient
  through on the U > T coefficients of largest |z| (zero elsewhere); with ``top_u=None`` the
  gradient passes unchanged (:class:`IdentityBackward`).
- ternary activation ``‖d_k‖₁·sign(u)·[|u| > j]`` with ``u = z/‖d_k‖₁``:
  :class:`TanhSurrogateBackward` uses the derivative of the smooth step
  ``q(u) = 0.5[tanh(s(u−j)) + tanh(s(u+j))]``; with ``steepness=0`` the gradient passes unchanged.

Which rule is used is chosen at attack time, never when the model is built: assign
``encoder.bpda = BPDA(top_u=..., steepness=...)`` or use the :func:`bpda` context manager, which
sets the rule on every :class:`~scfront.frontend.encoder.Encoder` inside a model and restores the
previous rules on exit. There is no global or class-level state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from scfront.errors import ConfigError

__all__ = [
    "BPDA",
    "IdentityBackward",
    "TanhSurrogateBackward",
    "TopUMaskBackward",
    "bpda",
    "smooth_step",
    "smooth_step_derivative",
]


@dataclass(frozen=True)
class BPDA:
    """Backward rules of the encoder (PAPER.md section 6; defaults U = 30, s = 4 from the paper).

    Attributes:
        top_u: gradient flows to the ``top_u`` coefficients of largest |z| at each location
            (must be ≥ 1); ``None``: identity through top-T (every coefficient gets gradient).
        steepness: ``s`` of the tanh surrogate of the ternary activation (≥ 0); ``0``: identity
            through the activation.
    """

    top_u: int | None = 30
    steepness: float = 4.0

    def __post_init__(self) -> None:
        if self.top_u is not None and (isinstance(self.top_u, bool) or not isinstance(self.top_u, int)
                                       or self.top_u < 1):
            raise ConfigError(f"BPDA top_u must be a positive integer or None, got {self.top_u!r}")
        if isinstance(self.steepness, bool) or not isinstance(self.steepness, (int, float)) \
                or not math.isfinite(self.steepness) or self.steepness < 0:
            raise ConfigError(f"BPDA steepness must be a finite number >= 0, got {self.steepness!r}")
        object.__setattr__(self, "steepness", float(self.steepness))


# --------------------------------------------------------------------------- autograd rules
class IdentityBackward(torch.autograd.Function):
    """Forward: ``op(x)`` exactly. Backward: the gradient passes unchanged (straight-through).

    Used for top-T with ``top_u=None`` and for the activation with ``steepness=0``; ``op`` must
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
    """``q'(u) = 0.5·s·[sech²(s(u−j)) + sech²(s(u+j))]`` (PAPER.md section 6)."""
    a = torch.tanh(steepness * (u - jump))
    b = torch.tanh(steepness * (u + jump))
    return 0.5 * steepness * ((1.0 - a * a) + (1.0 - b * b))


def ternary(z: torch.Tensor, l1: torch.Tensor, jump: float) -> torch.Tensor:
    """The exact activation: ``‖d_k‖₁·sign(u)`` where ``|u| > j`` else 0, ``u = z/‖d_k‖₁``.

    Args:
        z: coefficients, float. l1: ‖d_k‖₁ broadcastable to ``z`` (e.g. (1, n, 1, 1)).
        jump: the threshold j = β·ε_a (PAPER.md section 2).
    """
    u = z / l1
    return torch.where(u.abs() > jump, torch.sign(u) * l1, torch.zeros((), dtype=z.dtype, device=z.device))


class TanhSurrogateBackward(torch.autograd.Function):
    """Forward: the exact ternary activation. Backward: ``grad · q'(z/‖d_k‖₁)``.

    The surrogate output is ``‖d_k‖₁·q(u)`` with ``u = z/‖d_k‖₁``, so by the chain rule
    ``∂/∂z = ‖d_k‖₁·q'(u)·(1/‖d_k‖₁) = q'(u)``: the L1 factors cancel (PAPER.md section 6).
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


# --------------------------------------------------------------------------- attack-time switch
_KEEP = object()  # "leave this field as each encoder has it"


@contextlib.contextmanager
def bpda(model: nn.Module, top_u: Any = _KEEP, steepness: Any = _KEEP) -> Iterator[list[nn.Module]]:
    """Use other backward rules on every encoder inside ``model`` for the duration of the block.

    Fields not given keep each encoder's current value (``top_u=None`` means identity, so it is
    not the same as leaving it out). The previous rules are restored on exit, also on error.

    Example::

        with scfront.frontend.bpda(model, top_u=60, steepness=8.0):
            x_adv = attack(model, x, y)

    Yields the list of encoders that were changed. Raises ConfigError if ``model`` holds no
    encoder (so an attack cannot silently run with the rules it asked not to use).
    """
    from scfront.frontend.encoder import Encoder

    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not encoders:
        raise ConfigError(f"{type(model).__name__} contains no sparse coding Encoder to set BPDA rules on")
    changes = {k: v for k, v in (("top_u", top_u), ("steepness", steepness)) if v is not _KEEP}
    previous = [enc.bpda for enc in encoders]
    try:
        for enc in encoders:
            enc.bpda = dataclasses.replace(enc.bpda, **changes)
        yield encoders
    finally:
        for enc, rule in zip(encoders, previous):
            enc.bpda = rule
