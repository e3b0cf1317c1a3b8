"""Where registered classifiers are recorded: :func:`register_model` and the metadata it keeps.

The architecture modules import this module to decorate their factories; the public side
(:func:`~scfront.models.registry.create_model`, ``list_models``, ``model_info``) lives in
:mod:`scfront.models.registry`, which imports the architecture modules. Keeping the table here
means no architecture module imports the module that imports it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, TypeVar

from torch import nn

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "InputKind", "ModelInfo", "REGISTRY", "Entry", "register_model"]

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
        input_size: (C, H, W) the architecture was designed for, which the input check of
            :func:`~scfront.models.create_model` requires unless the model is built with
            ``image_size=`` (every model here ends with global pooling, so other sizes work).
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
class Entry:
    """A registered factory with its metadata."""

    info: ModelInfo
    factory: Callable[..., nn.Module]


REGISTRY: dict[str, Entry] = {}
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
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        info = ModelInfo(name, description, input_kind, input_size, mean, std, num_params)
        REGISTRY[name] = Entry(info, factory)
        return factory

    return decorate
