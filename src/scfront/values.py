"""Values typed on the command line, parsed the same way everywhere.

``scfront train --set train.attack_eps=8/255``, ``scfront evaluate --eps 8/255`` and an attack
item ``pgd-linf:eps=8/255:steps=100`` all go through :func:`parse_value`, so a radius written as
a fraction of 255 (the paper's unit) is understood wherever a number is expected.
"""

from __future__ import annotations

import tomllib
from typing import Any

__all__ = ["parse_value"]


def _fraction(text: str) -> float | None:
    """``a/b`` with two numbers, as ``float(a) / float(b)`` (so 8/255 equals ``8 / 255``)."""
    num, sep, den = text.partition("/")
    if not sep:
        return None
    try:
        return float(num) / float(den)
    except (ValueError, ZeroDivisionError):
        return None


def parse_value(text: str) -> Any:
    """One value from the command line.

    In this order: ``true``/``false`` (any case) -> bool; ``none`` (any case) -> None; an integer
    -> int; a decimal number -> float; a fraction ``a/b`` -> float; any other TOML value (a
    quoted string, a list such as ``["pgd-linf", "square"]``) -> that value; anything else is
    kept as the bare word (a path, an enum value such as ``pgd_at``).
    """
    stripped = text.strip()
    low = stripped.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    fraction = _fraction(stripped)
    if fraction is not None:
        return fraction
    try:
        return tomllib.loads(f"v = {stripped}")["v"]
    except tomllib.TOMLDecodeError:
        return stripped
