"""A name → class table filled by a class decorator: one implementation for every registry of
classes in scfront (attacks, gradient-masking checks).

Each class declares its own ``name`` class attribute (never inherited, so a subclass cannot
silently take its parent's entry); names are unique; lookups of unknown names raise a
:class:`~scfront.errors.ConfigError` that lists the registered ones. Iteration follows
registration order.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from scfront.errors import ConfigError

__all__ = ["NameRegistry"]

T = TypeVar("T", bound=type)


class NameRegistry(Generic[T]):
    """Classes by their ``name`` attribute.

    Args:
        kind: what the classes are, for messages (e.g. ``"attack"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: add ``cls`` under its own ``name``. TypeError for a missing or taken name."""
        name = vars(cls).get("name")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} must define its own class attribute `name` to be registered")
        known = self._classes.get(name)
        if known is not None and known is not cls:
            raise TypeError(f"{self.kind} name {name!r} is registered twice ({known.__name__}, {cls.__name__})")
        self._classes[name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class registered under ``name``; ConfigError naming the choices otherwise."""
        try:
            return self._classes[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self._classes)}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._classes)

    def __iter__(self) -> Iterator[T]:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)
