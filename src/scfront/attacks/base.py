"""The attack interface: hyperparameters in the object, the model (and any data) at call time.

Two kinds of attack, each with one final public call written once here (foolbox 3 style):

- :class:`FixedBudgetAttack`: searches inside its ε-ball. ``attack(model, x, y)`` validates the
  input, puts the model in eval mode with its parameters frozen, runs the subclass's
  :meth:`Attack.run`, projects the result onto the threat model's ball and box, verifies it and
  measures success with a gradient-free forward. It returns an :class:`AttackResult`.
- :class:`MinimumNormAttack`: searches for the smallest adversarial perturbation without a
  radius (Boundary, HopSkipJump, ZOO). Its call returns a :class:`MinimumNormResult`: the
  unconstrained adversarial, its norm, and the ε-constrained verdict (the projection of it onto
  the ε-ball, checked again on the model).

What an attack is, is declared by its class, never probed: :attr:`Attack.black_box` (only
queries outputs), :attr:`Attack.randomized` (built for random models: averages over their
randomness, EOT), :attr:`Attack.uses_starts` (takes a pool of starting images at call time),
:attr:`Attack.eot_samples`, :attr:`Attack.bpda` and :attr:`Attack.threat` (norm and ε). No attack
can return a point outside its ε-ball.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, final

import torch
from torch import nn

from scfront.attacks.threat import ThreatModel
from scfront.errors import InputError
from scfront.models.layers import eval_mode
from scfront.sampling import Randomness, RowGenerators

if TYPE_CHECKING:  # annotations only: the black-box package imports this module
    from scfront.attacks.blackbox.starts import StartPool
    from scfront.frontend.bpda import BPDA

__all__ = ["Attack", "AttackResult", "FixedBudgetAttack", "MinimumNormAttack", "MinimumNormResult",
           "frozen_parameters", "predict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: (N, C, H, W) float in [0, 1], inside the attack's threat model (its ε-ball).
        success: (N,) bool: the model's prediction on ``x_adv`` differs from ``y``.
        extra: attack-specific diagnostics (e.g. ``"distance"``: (N,) float64 perturbation norm).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MinimumNormResult(AttackResult):
    """What a :class:`MinimumNormAttack` returns: the ε-constrained verdict and what it found.

    Attributes (besides :class:`AttackResult`'s, which hold the ε-constrained result):
        x_unbounded: (N, C, H, W) float in [0, 1]: the closest adversarial found (any distance).
        found: (N,) bool: ``x_unbounded`` is misclassified.
        norm: (N,) float64: ``‖x_unbounded − x‖`` in the threat norm, ``inf`` where not found.
    """

    x_unbounded: torch.Tensor
    found: torch.Tensor
    norm: torch.Tensor


class Attack(abc.ABC):
    """Base class of every attack; subclasses are frozen dataclasses holding hyperparameters.

    Subclasses derive from :class:`FixedBudgetAttack` or :class:`MinimumNormAttack`, set
    ``name`` (the CLI name) and implement :meth:`run` and :attr:`threat`.
    """

    name: ClassVar[str]
    #: Only queries the model's outputs, never its gradients.
    black_box: ClassVar[bool] = False
    #: Built for randomised models: averages over the model's randomness (EOT).
    randomized: ClassVar[bool] = False
    #: Takes a :class:`~scfront.attacks.blackbox.starts.StartPool` at call time (``starts=``).
    uses_starts: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def threat(self) -> ThreatModel:
        """The ε-ball (norm, ε, pixel box) of this attack's result."""

    @property
    def eot_samples(self) -> int:
        """Forward/backward passes averaged per gradient (1: no EOT; black-box attacks: 1)."""
        return 1

    @property
    def bpda(self) -> BPDA | None:
        """The BPDA rules this attack differentiates the frontend with (``None``: the model's own)."""
        return None

    def params(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-friendly dict (for results files)."""
        if not dataclasses.is_dataclass(self):
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a BPDA value
                value = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
            out[f.name] = _plain(value)
        return out

    @abc.abstractmethod
    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        """Compute the adversarial points.

        Args:
            model: in eval mode, maps (N, C, H, W) in [0, 1] to logits (N, K).
            x: (N, C, H, W) float in [0, 1]. y: (N,) int64 true labels.
            generator: the only source of randomness the attack may use, drawn from through
                :mod:`scfront.sampling` only, example dimension first; wherever the attack works
                on a subset of its rows it draws from :func:`~scfront.sampling.rows_of` of it
                (a :class:`~scfront.sampling.RowGenerators` has one stream per row of ``x``).
            starts: candidate starting images (only attacks with ``uses_starts`` read it).
        Returns:
            (N, C, H, W) float; the public call projects it (fixed budget) or reports it
            (minimum norm).
        """

    def _attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: Randomness, starts: StartPool | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated ``(x, run(...))`` inside eval mode with frozen parameters."""
        threat = self.threat
        y = _validate(x, y, threat.lower, threat.upper)
        threat.check_dims(x[0].numel(), f"{self.name}: eps")
        if isinstance(generator, RowGenerators) and len(generator) != x.shape[0]:
            raise InputError(f"{self.name}: {len(generator)} per-example generators for {x.shape[0]} images; "
                             "give one per image")
        x = x.detach()
        with frozen_parameters(model):
            x_adv = self.run(model, x, y, generator, starts).detach()
        if x_adv.shape != x.shape:
            raise RuntimeError(f"{self.name} returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
        return y, x_adv

    def _verified(self, model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x_adv`` projected onto the threat model and checked to lie in it."""
        x_adv = self.threat.project(x_adv, x)
        outside = ~self.threat.contains(x_adv, x)
        if bool(outside.any()):  # a bug in the projection, never the user's fault
            raise RuntimeError(f"{self.name}: {int(outside.sum())} points left the threat model")
        return x_adv


class FixedBudgetAttack(Attack):
    """An attack that searches inside its ε-ball (PGD, APGD, FAB, Square, ...)."""

    @final
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 generator: Randomness = None, starts: StartPool | None = None) -> AttackResult:
        """Attack ``model`` at ``(x, y)``.

        Args:
            model: maps (N, C, H, W) float in [0, 1] to logits (N, K); kept in eval mode during
                the attack (every submodule's previous mode is restored afterwards); its
                parameters receive no gradient.
            x: (N, C, H, W) float in [0, 1]. y: (N,) integer labels.
            generator: explicit randomness: a ``torch.Generator`` for the whole batch, or
                :class:`~scfront.sampling.RowGenerators` with one stream per image (then the
                result of an image does not depend on the other images of the batch; for a
                deterministic model, up to the floating-point rounding of batched kernels);
                ``None``: torch's default generator.
            starts: starting images for attacks that use them (ignored by the others).
        Returns:
            :class:`AttackResult` with ``x_adv`` inside the threat model and ``success``.
        Raises:
            InputError: for a bad ``x`` or ``y``.
        """
        with eval_mode(model):
            y, x_adv = self._attack(model, x, y, generator, starts)
            x = x.detach()
            x_adv = self._verified(model, x_adv, x)
            success = predict(model, x_adv) != y
        return AttackResult(x_adv=x_adv, success=success, extra={"distance": self.threat.distance(x_adv, x)})


class MinimumNormAttack(Attack):
    """An attack that looks for the smallest adversarial perturbation, without a radius.

    Its :attr:`threat` is the ball of the ε-constrained verdict; :meth:`run` returns the
    unconstrained points (only the pixel box is enforced on them).
    """

    @final
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 generator: Randomness = None, starts: StartPool | None = None) -> MinimumNormResult:
        """Attack ``model`` at ``(x, y)``; arguments as :meth:`FixedBudgetAttack.__call__`.

        Returns:
            :class:`MinimumNormResult`: ``x_adv``/``success`` the ε-constrained verdict (the
            unconstrained point projected onto the ε-ball, re-checked on the model),
            ``x_unbounded``/``found``/``norm`` what the search found.
        """
        with eval_mode(model):
            y, x_free = self._attack(model, x, y, generator, starts)
            x = x.detach()
            threat = self.threat
            x_free = x_free.clamp(threat.lower, threat.upper)
            found = predict(model, x_free) != y
            norm = threat.distance(x_free, x)
            norm = torch.where(found, norm, torch.full_like(norm, float("inf")))
            x_adv = self._verified(model, x_free, x)
            success = predict(model, x_adv) != y
        return MinimumNormResult(x_adv=x_adv, success=success, extra={"distance": threat.distance(x_adv, x)},
                                 x_unbounded=x_free, found=found, norm=norm)


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


def _plain(value: Any) -> Any:
    """An enum member as its value (``Norm.L2`` → ``"L2"``), anything else unchanged."""
    return value.value if isinstance(value, enum.Enum) else value


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
