"""The classifier registry: one public constructor over models registered by a decorator.

Each architecture module decorates its factory with :func:`register_model`, giving typed
:class:`ModelInfo` metadata. The registry imports those modules itself (a fixed list, no
star-import side effects), so ``create_model`` works without importing anything else first.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import Callable, TypeVar

from torch import nn

from scfront.errors import ConfigError

# The modules that register architectures; imported on first use of the registry.
_ARCHITECTURE_MODULES = (
    "scfront.models.resnet32",
    "scfront.models.preact_resnet",
    "scfront.models.efficientnet",
)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


class InputKind(str, enum.Enum):
    """What a classifier reads: an image in [0, 1], or the frontend's sparse codes."""

    IMAGE = "image"
    CODES = "codes"


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered classifier.

    Attributes:
        name: registry name.
        description: one line, with the paper or code it follows.
        input_kind: images (normalised inside with ``mean``/``std``) or codes (taken as is).
        input_size: (C, H, W) the architecture was designed for; every model here ends with
            global pooling, so other spatial sizes work too.
        mean, std: per-channel statistics applied inside the model (``None`` for codes).
        num_params: trainable parameters with 10 classes and default arguments.
    """

    name: str
    description: str
    input_kind: InputKind
    input_size: tuple[int, int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    num_params: int


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    factory: Callable[..., nn.Module]


_REGISTRY: dict[str, _Entry] = {}
_loaded = False
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(
    name: str,
    *,
    description: str,
    input_size: tuple[int, int, int],
    num_params: int,
    input_kind: InputKind = InputKind.IMAGE,
    mean: tuple[float, ...] | None = CIFAR10_MEAN,
    std: tuple[float, ...] | None = CIFAR10_STD,
) -> Callable[[F], F]:
    """Decorator registering ``factory(num_classes=10, **kwargs) -> nn.Module`` as ``name``."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        info = ModelInfo(name, description, input_kind, input_size, mean, std, num_params)
        _REGISTRY[name] = _Entry(info, factory)
        return factory

    return decorate


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        for module in _ARCHITECTURE_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models() -> list[str]:
    """Registered names, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown classifier {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered classifier."""
    return _entry(name).info


def create_model(name: str, num_classes: int = 10, **kwargs: object) -> nn.Module:
    """A freshly initialised classifier ``name`` (train mode) taking input in [0, 1].

    Args:
        name: one of :func:`list_models` ("resnet32", "resnet32_wide", "preact_resnet101",
            "efficientnet_b0", "resnet32_codes", "resnet32_dropout").
        num_classes: size of the output layer.
        kwargs: architecture options (see each factory's docstring).

    Returns:
        The module; its ``forward`` maps (N, C, H, W) inputs to (N, num_classes) logits. The
        model's :class:`ModelInfo` is attached as ``model.info``.
    """
    entry = _entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:
        model = entry.factory(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"classifier {name!r}: invalid arguments {sorted(kwargs)} ({exc})") from None
    model.info = entry.info  # type: ignore[assignment]
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
