"""Checks of user-given settings, written once: each returns the checked value or raises a
:class:`~scfront.errors.ConfigError` that names the setting and what it accepts.

- :func:`to_enum`, :func:`positive_int`: enum members and integers with a lower bound;
- :class:`Range`: the documented valid interval of a numeric setting (the typed configuration
  of :mod:`scfront.config` declares one per numeric field);
- :func:`radius`: a perturbation radius ε that means something for its norm on images in a
  pixel box (``[0, 1]`` throughout scfront);
- :func:`device_name`, :func:`available_device`: a torch device string, and one this machine has.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, TypeVar

from scfront.errors import ConfigError, ScfrontError

if TYPE_CHECKING:
    import torch

__all__ = ["Range", "available_device", "device_name", "positive_int", "radius", "to_enum"]

E = TypeVar("E", bound=enum.Enum)


def to_enum(kind: type[E], value: object, where: str, allowed: Sequence[E] | None = None) -> E:
    """``kind(value)`` (a member, or a member's value such as ``"pgd_at"``), restricted to
    ``allowed`` when given.

    Raises:
        ConfigError: ``"{where} must be one of ..., got {value!r}"`` listing the accepted values.
    """
    choices = list(kind) if allowed is None else list(allowed)
    try:
        member = kind(value)
    except ValueError:
        member = None
    if member is None or member not in choices:
        names = ", ".join(repr(c.value) for c in choices)
        raise ConfigError(f"{where} must be one of {names}, got {value!r}")
    return member


def positive_int(value: object, where: str, minimum: int = 1, *,
                 error: type[ScfrontError] = ConfigError) -> int:
    """``value`` when it is an ``int`` (a bool is not) of at least ``minimum``.

    Raises:
        ``error`` (default ConfigError): ``"{where} must be an integer >= {minimum}, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Range:
    """The valid interval of a numeric setting: ``low``/``high`` (``None``: unbounded), each
    included unless ``low_open``/``high_open``. Every bound is finite; NaN and infinities are
    never in a range.

    Example: ``Range(0, 1, high_open=True)`` is ``[0, 1)``, ``Range(0, low_open=True)`` is ``> 0``.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"

    def contains(self, value: float) -> bool:
        """Whether ``value`` (a finite number) lies in the interval."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def check(self, value: object, where: str, *, error: type[ScfrontError] = ConfigError) -> None:
        """Raise ``error`` (default ConfigError) ``"{where} must be {self}, got {value!r}"``
        unless ``value`` is a number (not a bool) in the interval."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{where} must be a number {self}, got {value!r}")
        if not self.contains(float(value)):
            raise error(f"{where} must be {self}, got {value!r}")


_RADIUS_HINT = {"Linf": "8/255 is the paper's", "L2": "0.6 is the paper's", "L1": "30 is the paper's"}


def radius(norm: str, eps: object, where: str, dims: int | None = None,
           box: tuple[float, float] = (0.0, 1.0)) -> float:
    """``float(eps)`` when it is a radius the norm ``norm`` can mean on images in ``box``.

    Valid radii: a finite number > 0 and at most the diameter of the box in that norm, the
    largest distance two images can have: ``upper - lower`` for ``"Linf"``, and, when the number
    of values per image ``dims`` (C·H·W) is known, ``(upper - lower)·sqrt(dims)`` for ``"L2"``
    and ``(upper - lower)·dims`` for ``"L1"``. A larger radius allows every image (the attack is
    unconstrained), zero allows none, so both are refused as mistakes (a radius in 0-255 units
    given for [0, 1] images, typically: write 8/255, not 8).

    Args:
        norm: ``"Linf"``, ``"L2"`` or ``"L1"`` (a :class:`~scfront.attacks.threat.Norm` works).
        where: the setting's name for the message (e.g. ``"pgd-linf: eps"``, ``"--eps"``).
        dims: values per image, when known (for the L2 and L1 upper bounds).
        box: the pixel range (lower, upper).

    Raises:
        ConfigError: ``"{where} must be a radius in (0, 1] for Linf on [0, 1] images ..."``.
    """
    name = getattr(norm, "value", norm)
    width = float(box[1]) - float(box[0])
    bound: float | None
    if name == "Linf":
        bound = width
    elif name in ("L2", "L1"):
        bound = None if dims is None else width * (math.sqrt(dims) if name == "L2" else dims)
    else:
        raise ConfigError(f"{where}: unknown norm {name!r} (Linf, L2 or L1)")
    valid = Range(0.0, bound, low_open=True)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not valid.contains(float(eps)):
        limit = "" if bound is None else f" (the diameter of the [{box[0]:g}, {box[1]:g}] box"
        if bound is not None:
            limit += "" if name == "Linf" else f" for {dims} values per image"
            limit += ")"
        raise ConfigError(f"{where} must be a radius {valid} for {name} on [{box[0]:g}, {box[1]:g}] "
                          f"images{limit}, got {eps!r}; {_RADIUS_HINT[name]}")
    return float(eps)


_DEVICE_HINT = "a torch device such as cpu, cuda or cuda:1"


def device_name(value: object, where: str = "device") -> str:
    """``value`` when it is a device string torch understands (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"``, ...); whether this machine has it is :func:`available_device`'s
    business (a configuration saved on a GPU machine stays readable on a CPU one).

    Raises:
        ConfigError: ``"{where} must be a torch device such as cpu, cuda or cuda:1, got 'gpu'"``.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be {_DEVICE_HINT}, got {value!r}")
    if value == "cpu":
        return value  # the default: no torch import
    import torch

    try:
        torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{where} must be {_DEVICE_HINT}, got {value!r}") from None
    return value


def available_device(value: object, where: str = "device") -> "torch.device":
    """The :class:`torch.device` ``value`` names, when this machine has it.

    Raises:
        ConfigError: not a device string (:func:`device_name`), or CUDA / MPS requested where
            torch has none (a CPU-only build, no GPU, no driver), or a CUDA index beyond the
            devices present; the message says what is available.
    """
    import torch

    device = torch.device(device_name(value, where))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{where} {value!r}: CUDA is not available (this torch "
                              f"{'is a CPU-only build' if torch.version.cuda is None else 'finds no GPU'}); "
                              "use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{where} {value!r}: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ConfigError(f"{where} {value!r}: MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        module = getattr(torch, device.type, None)
        is_available = getattr(module, "is_available", None)
        if not callable(is_available) or not is_available():
            raise ConfigError(f"{where} {value!r}: this torch has no usable {device.type} device; "
                              "use --device cpu")
    return device
