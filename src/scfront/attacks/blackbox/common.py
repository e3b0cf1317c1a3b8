"""Pieces shared by the black-box attacks: default radii, the black-box marker, minimum-norm mode."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from scfront.attacks.base import Attack
from scfront.attacks.threat import Norm, ThreatModel
from scfront.errors import ConfigError

# The radii of the paper's Table 1 columns (PAPER.md section 7), used when ``eps`` is not given.
DEFAULT_EPS = {Norm.LINF: 8.0 / 255.0, Norm.L2: 0.6, Norm.L1: 30.0}


def as_norm(value: Any, allowed: tuple[Norm, ...], attack: str) -> Norm:
    """``value`` (a :class:`Norm` or its string) checked against the norms ``attack`` supports."""
    try:
        norm = Norm(value)
    except ValueError:
        norm = None
    if norm is None or norm not in allowed:
        raise ConfigError(f"attack {attack!r} supports norm {' or '.join(n.value for n in allowed)}, got {value!r}")
    return norm


class BlackBoxAttack(Attack):
    """An attack that only queries the model's outputs (never its gradients).

    The evaluation's gradient-masking check compares what these attacks find with what the
    white-box attacks find (``black_box = True``). Subclasses are frozen dataclasses with fields
    ``norm`` and ``eps`` (``None``: :data:`DEFAULT_EPS` of the norm).
    """

    black_box: ClassVar[bool] = True
    # Minimum-norm attacks (decision-based, ZOO) search for the smallest adversarial
    # perturbation without a radius; their ε-constrained result is the projection of it.
    minimum_norm: ClassVar[bool] = False
    # Fields that are inputs rather than hyperparameters, left out of params().
    _not_params: ClassVar[tuple[str, ...]] = ()

    def _check_common(self, allowed: tuple[Norm, ...]) -> None:
        object.__setattr__(self, "norm", as_norm(getattr(self, "norm"), allowed, self.name))
        eps = getattr(self, "eps")
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0):
            raise ConfigError(f"attack {self.name!r}: eps must be a number >= 0 or None, got {eps!r}")

    @property
    def radius(self) -> float:
        """``eps``, or the paper's radius for the norm when ``eps`` is None."""
        eps = getattr(self, "eps")
        return DEFAULT_EPS[getattr(self, "norm")] if eps is None else float(eps)

    @property
    def threat(self) -> ThreatModel | None:  # type: ignore[override]
        if getattr(self, "unconstrained", False):
            return None
        return ThreatModel(getattr(self, "norm"), self.radius)

    def constrained_threat(self) -> ThreatModel:
        """The ε-ball of this attack even in unconstrained mode (for ε-constrained accuracy)."""
        return ThreatModel(getattr(self, "norm"), self.radius)

    def unbounded(self) -> "BlackBoxAttack":
        """A copy that returns the unconstrained adversarials (only for minimum-norm attacks)."""
        if not self.minimum_norm:
            raise ConfigError(f"attack {self.name!r} has no unconstrained mode")
        return dataclasses.replace(self, unconstrained=True)  # type: ignore[type-var]

    def params(self) -> dict[str, Any]:
        out = super().params()
        for key in self._not_params:
            out.pop(key, None)
        out["eps"] = self.radius
        return out
