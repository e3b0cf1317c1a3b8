"""Threat model: which perturbations an attack may use (norm, radius ε, pixel box).

The norm geometry is written once here (foolbox 3 style) and every attack uses it: random
starts, steepest-ascent step directions, exact projections and the feasibility check. Images
are ``(N, C, H, W)`` float tensors in ``[lower, upper]`` (``[0, 1]`` throughout scfront).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch

from scfront.attacks.projections import project_l1_box, project_l2_box, project_linf_box, rescale_radially
from scfront.attacks.validate import number
from scfront.errors import ConfigError, InputError
from scfront.sampling import Randomness, normal, uniform
from scfront.validate import radius, to_enum

__all__ = ["Norm", "ThreatModel"]


class Norm(str, enum.Enum):
    """The perturbation norms of the paper's Table 1 (docs/method.md §7)."""

    LINF = "Linf"
    L2 = "L2"
    L1 = "L1"

    @property
    def p(self) -> float:
        """The exponent for ``torch.linalg.vector_norm``."""
        return {Norm.LINF: math.inf, Norm.L2: 2.0, Norm.L1: 1.0}[self]


@dataclass(frozen=True)
class ThreatModel:
    """``{x' : ‖x' − x‖_norm ≤ eps, lower ≤ x' ≤ upper}``.

    Attributes:
        norm: a :class:`Norm` (a string such as ``"Linf"`` is converted).
        eps: radius in the units of the pixel values (8/255 for the paper's Linf column): > 0,
            and for Linf at most ``upper - lower`` (:func:`scfront.validate.radius`); the L2 and
            L1 bounds (``(upper - lower)·sqrt(D)``, ``(upper - lower)·D``) depend on the image
            size and are checked by :meth:`check_dims` (every attack does, on its input).
        lower, upper: the pixel box.
    """

    norm: Norm
    eps: float
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", to_enum(Norm, self.norm, "threat model: norm"))
        lower = number("threat model", "lower", self.lower)
        upper = number("threat model", "upper", self.upper)
        if not lower < upper:
            raise ConfigError(f"the pixel box needs lower < upper, got [{self.lower}, {self.upper}]")
        object.__setattr__(self, "eps", radius(self.norm, self.eps, "threat model: eps", box=(lower, upper)))

    def check_dims(self, dims: int, where: str = "threat model: eps") -> None:
        """Raise ConfigError unless ``eps`` is at most the box's diameter for images of ``dims``
        values (C·H·W) in this norm (:func:`scfront.validate.radius`)."""
        radius(self.norm, self.eps, where, dims=dims, box=(self.lower, self.upper))

    # ------------------------------------------------------------------ geometry
    def random_start(self, x: torch.Tensor, generator: Randomness = None) -> torch.Tensor:
        """A random point of the ball around ``x``, projected onto the box.

        Sampling: Linf draws each coordinate uniformly in ``[-eps, eps]`` (uniform in the cube,
        Madry et al. 2018); L2 and L1 draw a direction uniform on the sphere (normalised
        Gaussian for L2; normalised i.i.d. Laplace for L1, whose cone measure is the uniform
        surface measure) and a radius ``eps·U^(1/D)``, which is uniform in the ball's volume.
        The final box clipping keeps the point inside the ball (it only shrinks coordinates).

        Args:
            x: (N, C, H, W) float in [lower, upper]. generator: the source of randomness
                (``None``: torch's default generator, never reseeded; per-example generators:
                one per row of ``x``).
        Returns:
            (N, C, H, W), same dtype and device as ``x``.
        """
        n = x.shape[0]
        d = x[0].numel()
        if self.norm is Norm.LINF:
            delta = (2.0 * uniform(x.shape, generator, x) - 1.0) * self.eps
        else:
            if self.norm is Norm.L2:
                direction = normal((n, d), generator, x)
            else:
                exponential = -torch.log1p(-uniform((n, d), generator, x))  # log1p: U=0 is finite
                direction = exponential * torch.sign(uniform((n, d), generator, x) - 0.5)
            norm = torch.linalg.vector_norm(direction, ord=self.norm.p, dim=1, keepdim=True)
            radius = self.eps * uniform((n, 1), generator, x).pow(1.0 / d)
            delta = (direction / norm.clamp_min(1e-12) * radius).view_as(x)
        return self.project(x + delta, x)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The nearest point (Euclidean) of ``{ball around x} ∩ box`` to ``x_adv``, exact.

        Linf: coordinate clipping; L2 and L1: sort-based exact projection onto the
        intersection (see :mod:`scfront.attacks.projections`).

        Args:
            x_adv, x: (N, C, H, W) float; ``x`` in [lower, upper].
        Returns:
            (N, C, H, W), ``x_adv.dtype``.
        """
        v, lo, hi = self._flat(x_adv, x)
        if self.norm is Norm.LINF:
            delta = project_linf_box(v, lo, hi, self.eps)
        elif self.norm is Norm.L2:
            delta = project_l2_box(v, lo, hi, self.eps)
        else:
            delta = project_l1_box(v, lo, hi, self.eps)
        return self._back(delta, x, x_adv.dtype)

    def rescale(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The original code's feasibility step: radial scaling onto the ball, then box clipping.

        Feasible but not the nearest point for L2/L1 (equal to :meth:`project` for Linf). Kept
        for the faithful ``pgd-l1`` of docs/method.md §7.
        """
        if self.norm is Norm.LINF:
            return self.project(x_adv, x)
        v, lo, hi = self._flat(x_adv, x)
        return self._back(rescale_radially(v, lo, hi, self.eps, self.norm.p), x, x_adv.dtype)

    def normalize_step(self, grad: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent direction of unit norm for a first-order step.

        Linf: ``sign(g)``; L2: ``g/‖g‖₂``; L1: ``g/‖g‖₁`` (the original code's dense L1 step,
        docs/method.md §7 — the true L1 steepest direction is one coordinate; the sparse
        attack ``pgd-l1-sparse`` takes its own top-q step). A zero gradient gives a zero step.

        Args:
            grad: (N, C, H, W) float.
        """
        if self.norm is Norm.LINF:
            return torch.sign(grad)
        flat = grad.flatten(1)
        norm = torch.linalg.vector_norm(flat, ord=self.norm.p, dim=1, keepdim=True)
        return (flat / norm.clamp_min(1e-12)).view_as(grad)

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``‖x_adv − x‖`` per example, computed in float64: (N,) float64."""
        diff = (x_adv.double() - x.double()).flatten(1)
        return torch.linalg.vector_norm(diff, ord=self.norm.p, dim=1)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, atol: float = 1e-5) -> torch.Tensor:
        """Whether each ``x_adv`` lies in the ball and the box: (N,) bool.

        Tolerance: ``distance ≤ eps + atol·max(1, eps)`` (relative for large radii such as the
        L1 ε = 30, where float32 rounding of 3,072 coordinates adds up) and every pixel within
        ``atol`` of the box.
        """
        if x_adv.shape != x.shape:
            raise InputError(f"x_adv has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)} like x")
        in_ball = self.distance(x_adv, x) <= self.eps + atol * max(1.0, self.eps)
        flat = x_adv.flatten(1)
        in_box = (flat >= self.lower - atol).all(dim=1) & (flat <= self.upper + atol).all(dim=1)
        return in_ball & in_box

    # ------------------------------------------------------------------ helpers
    def _flat(self, x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x_adv.shape != x.shape:
            raise InputError(f"x_adv has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)} like x")
        xf = x.flatten(1)
        return (x_adv - x).flatten(1), self.lower - xf, self.upper - xf

    def _back(self, delta: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # Clamping after the addition removes a rounding excursion past the box by one ulp.
        return (x + delta.view_as(x)).clamp(self.lower, self.upper).to(dtype)

