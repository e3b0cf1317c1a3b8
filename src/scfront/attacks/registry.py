"""Name → attack class registry, filled by the :func:`register_attack` decorator (timm style).

Attack modules register themselves when imported, and this module imports none of them: the
package ``scfront.attacks`` imports every attack module, and Python runs the package before any
of its modules, so :func:`create_attack` and :func:`available_attacks` always see every attack
whichever module a caller imports first (and there is no import cycle back into the attacks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from scfront.attacks.base import Attack
from scfront.errors import ConfigError

__all__ = ["register_attack", "create_attack", "available_attacks", "attack_class"]

_REGISTRY: dict[str, type[Attack]] = {}

A = TypeVar("A", bound=type[Attack])


def register_attack(cls: A) -> A:
    """Class decorator: register ``cls`` under its own ``name`` class attribute (names are unique)."""
    name = vars(cls).get("name")  # declared by the class itself, never inherited
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must define its own class attribute `name` to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"attack name {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def available_attacks() -> list[str]:
    """The registered attack names, sorted."""
    return sorted(_REGISTRY)


def attack_class(name: str) -> type[Attack]:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown attack {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def create_attack(name: str, **overrides: Any) -> Attack:
    """Build the attack ``name`` with its documented defaults, replacing those in ``overrides``.

    Example: ``create_attack("pgd-linf", restarts=10, bpda=BPDA(top_u=60))``. Unknown override keys raise
    :class:`~scfront.errors.ConfigError` listing the accepted ones.
    """
    cls = attack_class(name)
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"attack {name!r} has no parameter(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(known))}")
    try:
        return cls(**overrides)
    except TypeError as err:  # wrong keyword for a non-dataclass attack
        raise ConfigError(f"attack {name!r}: {err}") from None
