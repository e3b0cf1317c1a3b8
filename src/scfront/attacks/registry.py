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
from scfront.naming import NameRegistry

__all__ = ["attack_class", "attack_parameters", "available_attacks", "create_attack", "register_attack",
           "with_params"]

_REGISTRY: NameRegistry[type[Attack]] = NameRegistry("attack")

A = TypeVar("A", bound=type[Attack])


def register_attack(cls: A) -> A:
    """Class decorator: register ``cls`` under its own ``name`` class attribute (names are unique)."""
    return _REGISTRY.register(cls)


def available_attacks() -> list[str]:
    """The registered attack names, sorted."""
    return sorted(_REGISTRY.names())


def attack_class(name: str) -> type[Attack]:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    return _REGISTRY.get(name)


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


def attack_parameters(name: str) -> dict[str, Any]:
    """{parameter: default} that the attack ``name`` declares (its constructor's keyword
    arguments; ``dataclasses.MISSING`` for one without a default), in declaration order.

    The one place that reads an attack class's fields for other packages: the evaluation's
    suite-wide overrides, its ``--help`` list of attacks and the checks that vary a parameter.
    """
    cls = attack_class(name)
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f.default for f in dataclasses.fields(cls) if f.init}


def with_params(attack: Attack, **changes: Any) -> Attack:
    """A copy of ``attack`` with some hyperparameters changed (validated like a new attack).

    Raises:
        ConfigError: for a parameter the attack does not declare, or a value it refuses.
    """
    declared = attack_parameters(attack.name)
    unknown = sorted(set(changes) - set(declared))
    if unknown:
        raise ConfigError(f"attack {attack.name!r} has no parameter(s) {', '.join(unknown)}")
    return dataclasses.replace(attack, **changes)  # type: ignore[type-var]
