"""Range checks of real-valued attack hyperparameters (ε, step sizes, rates).

Integers and enums go through :mod:`scfront.validate` (``positive_int``, ``to_enum``); this
module adds the check of a finite number in an interval, with the message naming the attack and
the field (``pgd-linf: rel_step_size must be a finite number > 0, got 0``) wherever the bad value
came from (Python, ``--set``, a suite spec).
"""

from __future__ import annotations

import math

from scfront.errors import ConfigError

__all__ = ["number"]


def number(attack: str, field: str, value: object, low: float = -math.inf, high: float = math.inf, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """``float(value)`` if it is a finite real number in the interval; ConfigError otherwise.

    Args:
        low, high: the bounds; ``low_open``/``high_open`` exclude them (``(low, high]`` etc.).
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        raise ConfigError(f"{attack}: {field} must be a finite number{_interval(low, high, low_open, high_open)}, "
                          f"got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """`` > 0``, `` in [0, 1)`` ... (empty for the whole line)."""
    if math.isinf(low) and math.isinf(high):
        return ""
    if math.isinf(high):
        return f" {'>' if low_open else '>='} {low:g}"
    if math.isinf(low):
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
