"""Pieces shared by the black-box attacks: default radii and the two black-box base classes.

- :class:`BlackBoxAttack`: a fixed-budget attack that only queries outputs (Square, transfer).
- :class:`MinimumNormBlackBoxAttack`: a minimum-norm attack that only queries outputs
  (Boundary, HopSkipJump, ZOO); its call returns a
  :class:`~scfront.attacks.base.MinimumNormResult`.

Both hold the dataclass fields ``norm`` and ``eps`` (``None``: the paper's radius of the norm,
:data:`DEFAULT_EPS`), from which :attr:`~scfront.attacks.base.Attack.threat` is derived.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scfront.attacks.base import FixedBudgetAttack, MinimumNormAttack
from scfront.attacks.threat import Norm, ThreatModel
from scfront.validate import radius, to_enum

__all__ = ["DEFAULT_EPS", "BlackBoxAttack", "MinimumNormBlackBoxAttack"]

# The radii of the paper's Table 1 columns (docs/method.md §7), used when ``eps`` is not given.
DEFAULT_EPS = {Norm.LINF: 8.0 / 255.0, Norm.L2: 0.6, Norm.L1: 30.0}


class _NormAndRadius:
    """The ``norm``/``eps`` fields of a black-box attack and the threat model they define.

    A mixin placed before the attack base class; subclasses are frozen dataclasses declaring
    ``norm`` and ``eps`` and the norms they support in ``norms``.
    """

    name: ClassVar[str]
    black_box: ClassVar[bool] = True
    #: The norms the attack supports; the first is its default.
    norms: ClassVar[tuple[Norm, ...]]
    norm: Norm
    eps: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", to_enum(Norm, self.norm, f"{self.name}: norm", self.norms))
        if self.eps is not None:
            radius(self.norm, self.eps, f"{self.name}: eps")

    @property
    def threat(self) -> ThreatModel:
        """The ``norm`` ball of radius ``eps`` (the paper's radius when ``eps`` is None)."""
        return ThreatModel(self.norm, DEFAULT_EPS[self.norm] if self.eps is None else float(self.eps))

    def params(self) -> dict[str, Any]:
        """The fields, with ``eps`` resolved to the radius used."""
        out: dict[str, Any] = super().params()  # type: ignore[misc]
        out["eps"] = self.threat.eps
        return out


class BlackBoxAttack(_NormAndRadius, FixedBudgetAttack):
    """A fixed-budget attack that only queries the model's outputs (never its gradients).

    The evaluation's gradient-masking check compares what black-box attacks find with what the
    white-box attacks find (``black_box = True``).
    """


class MinimumNormBlackBoxAttack(_NormAndRadius, MinimumNormAttack):
    """A minimum-norm attack that only queries the model's outputs.

    :meth:`run` returns the closest adversarial found at any distance; the public call reports
    it (``x_unbounded``, ``norm``) together with its projection onto the ε-ball of ``threat``.
    """
