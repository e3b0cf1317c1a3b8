"""Name → attack class registry, filled by the :func:`register_attack` decorator (timm style).

Attack modules register themselves when imported; :func:`create_attack` and
:func:`available_attacks` import the known attack modules first, so callers never depend on
import side effects. The black-box package ``scfront.attacks.blackbox`` is imported when present.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any, TypeVar

from scfront.attacks.base import Attack
from scfront.errors import ConfigError

__all__ = ["register_attack", "create_attack", "available_attacks", "attack_class"]

_REGISTRY: dict[str, type[Attack]] = {}

# White-box modules (always present) and optional packages registered by other parts of scfront.
_MODULES = ("scfront.attacks.pgd", "scfront.attacks.fgsm", "scfront.attacks.sparse_l1",
            "scfront.attacks.apgd", "scfront.attacks.fab")
_OPTIONAL_PACKAGES = ("scfront.attacks.blackbox",)

A = TypeVar("A", bound=type[Attack])


def register_attack(cls: A) -> A:
    """Class decorator: register ``cls`` under ``cls.name`` (names must be unique)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must define a class attribute `name` to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"attack name {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)
    for package in _OPTIONAL_PACKAGES:
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)


def available_attacks() -> list[str]:
    """The registered attack names, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def attack_class(name: str) -> type[Attack]:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown attack {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def create_attack(name: str, **overrides: Any) -> Attack:
    """Build the attack ``name`` with its documented defaults, replacing those in ``overrides``.

    Example: ``create_attack("pgd-linf", restarts=10, top_u=60)``. Unknown override keys raise
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
