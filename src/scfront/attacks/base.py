"""The attack interface: hyperparameters in the object, the model at call time.

The public call lives once, in :meth:`Attack.__call__` (foolbox 3 style): it validates the input,
puts the model in eval mode with its parameters frozen, runs the subclass's :meth:`Attack.run`,
projects the result onto the threat model's ball and box, verifies it, and measures success
with a gradient-free forward.
No attack can return a point outside its ε-ball.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from scfront.attacks.threat import ThreatModel
from scfront.errors import InputError
from scfront.models.layers import eval_mode

__all__ = ["Attack", "AttackResult", "bpda_rules", "frozen_parameters", "predict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: (N, C, H, W) float in [0, 1], inside the attack's threat model.
        success: (N,) bool: the model's prediction on ``x_adv`` differs from ``y``.
        extra: attack-specific diagnostics (e.g. ``"distance"``: (N,) float64 perturbation norm).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class Attack(abc.ABC):
    """Base class of every attack; subclasses are frozen dataclasses holding hyperparameters.

    Subclasses set ``name`` (the CLI name) and implement :meth:`run`. ``threat`` is the
    :class:`ThreatModel` the result is projected onto, or ``None`` for unbounded attacks (then
    only the pixel box is enforced).
    """

    name: ClassVar[str]

    @property
    def threat(self) -> ThreatModel | None:
        """The threat model of this attack (``None``: unbounded, only the box [0, 1])."""
        return None

    def params(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-friendly dict (for results files)."""
        if not dataclasses.is_dataclass(self):
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if hasattr(value, "value") else value
        return out

    @abc.abstractmethod
    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
        """Compute the adversarial points.

        Args:
            model: in eval mode, maps (N, C, H, W) in [0, 1] to logits (N, K).
            x: (N, C, H, W) float in [0, 1]. y: (N,) int64 true labels.
            generator: the only source of randomness the attack may use.
        Returns:
            (N, C, H, W) float; :meth:`__call__` projects it onto the threat model.
        """

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 generator: torch.Generator | None = None) -> AttackResult:
        """Attack ``model`` at ``(x, y)``.

        Args:
            model: maps (N, C, H, W) float in [0, 1] to logits (N, K); kept in eval mode during
                the attack (every submodule's previous mode is restored afterwards); its
                parameters receive no gradient.
            x: (N, C, H, W) float in [0, 1]. y: (N,) integer labels.
            generator: explicit randomness (``None``: torch's default generator).
        Returns:
            :class:`AttackResult` with ``x_adv`` inside the threat model and ``success``.
        Raises:
            InputError: for a bad ``x`` or ``y``.
        """
        lower, upper = (0.0, 1.0) if self.threat is None else (self.threat.lower, self.threat.upper)
        y = _validate(x, y, lower, upper)
        with eval_mode(model):
            x = x.detach()
            with frozen_parameters(model):
                x_adv = self.run(model, x, y, generator).detach()
            if x_adv.shape != x.shape:
                raise RuntimeError(f"{self.name} returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
            if self.threat is None:
                x_adv = x_adv.clamp(lower, upper)
                extra: dict[str, Any] = {}
            else:
                x_adv = self.threat.project(x_adv, x)
                outside = ~self.threat.contains(x_adv, x)
                if bool(outside.any()):  # a bug in the projection, never the user's fault
                    raise RuntimeError(f"{self.name}: {int(outside.sum())} points left the threat model")
                extra = {"distance": self.threat.distance(x_adv, x)}
            success = predict(model, x_adv) != y
        return AttackResult(x_adv=x_adv, success=success, extra=extra)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Inside the block no parameter of ``model`` requires a gradient; the flags are restored.

    Attacks need the gradient with respect to the input only. Built-in operations skip weight
    gradients that ``torch.autograd.grad(loss, x)`` does not ask for, but custom autograd
    functions (the frontend's sparse decoder layer) only see ``needs_input_grad``, which is true
    for every parameter that requires a gradient. Freezing made a PGD step on the shipped
    defended model 1.20x faster (one thread, 188 test images, bit-identical gradients;
    ``python -m benchmarks.bench_attack_cpu``).
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels without building a graph: (N,) int64."""
    with torch.inference_mode():
        return model(x).argmax(dim=1)


@contextlib.contextmanager
def bpda_rules(model: nn.Module, top_u: int | None, steepness: float | None) -> Iterator[None]:
    """Enter :func:`scfront.frontend.bpda` for the fields an attack sets.

    ``top_u``: ``None`` keeps each encoder's rule, ``0`` is the identity through top-T (every
    coefficient gets gradient), ``U ≥ 1`` the top-U mask. ``steepness``: ``None`` keeps the rule,
    ``0`` is the identity through the activation. With both ``None`` nothing is entered, so
    attacks work on models without a frontend.
    """
    if top_u is None and steepness is None:
        yield
        return
    from scfront.frontend.bpda import bpda

    changes: dict[str, Any] = {}
    if top_u is not None:
        changes["top_u"] = None if top_u == 0 else int(top_u)
    if steepness is not None:
        changes["steepness"] = float(steepness)
    with bpda(model, **changes):
        yield


def _validate(x: torch.Tensor, y: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"x must be a float tensor (N, C, H, W) in [{lower}, {upper}], got {shape}")
    if x.shape[0] == 0:
        raise InputError("x is empty: expected at least one image (N ≥ 1)")
    if not bool(torch.isfinite(x).all()):
        raise InputError("x contains NaN or infinite values; expected images in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < lower or hi > upper:
        raise InputError(f"x must lie in [{lower}, {upper}], got values in [{lo:.4g}, {hi:.4g}]")
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool \
            or y.shape != (x.shape[0],):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise InputError(f"y must be an integer tensor of shape ({x.shape[0]},) (one label per image), got {shape}")
    if bool((y < 0).any()):
        raise InputError("y contains negative labels; expected class indices ≥ 0")
    return y.to(device=x.device, dtype=torch.int64)
