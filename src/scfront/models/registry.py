"""The classifier registry: one public constructor over models registered by a decorator.

Each architecture module decorates its factory with
:func:`~scfront.models.registration.register_model`, giving typed :class:`ModelInfo` metadata.
The registry imports those modules itself (a fixed list, no star-import side effects), so
``create_model`` works without importing anything else first. The table and the decorator live
in :mod:`scfront.models.registration`, so the architectures never import this module back.
"""

from __future__ import annotations

import importlib

from torch import nn

from scfront.errors import ConfigError
from scfront.models.inputs import InputSpec, attach_input_check
from scfront.models.registration import REGISTRY, Entry, InputKind, ModelInfo, register_model
from scfront.validate import positive_int

__all__ = ["InputKind", "ModelInfo", "count_parameters", "create_model", "input_spec_of", "list_models",
           "model_info", "register_model"]

# The modules that register architectures; imported on first use of the registry.
_ARCHITECTURE_MODULES = (
    "scfront.models.resnet32",
    "scfront.models.preact_resnet",
    "scfront.models.efficientnet",
)

_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        for module in _ARCHITECTURE_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models() -> list[str]:
    """Registered names, sorted."""
    _ensure_loaded()
    return sorted(REGISTRY)


def _entry(name: str) -> Entry:
    _ensure_loaded()
    if name not in REGISTRY:
        raise ConfigError(f"unknown classifier {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered classifier."""
    return _entry(name).info


def create_model(name: str, num_classes: int = 10, *, image_size: int | None = None,
                 input_check: bool = True, **kwargs: object) -> nn.Module:
    """A freshly initialised classifier ``name`` (train mode) taking input in [0, 1].

    Args:
        name: one of :func:`list_models` ("resnet32", "resnet32_wide", "preact_resnet101",
            "efficientnet_b0", "resnet32_codes", "resnet32_dropout").
        num_classes: size of the output layer.
        image_size: the side of the square images the model is for (default: the registry's
            ``input_size``, e.g. 32 for "resnet32", 160 for "efficientnet_b0"); its input check
            refuses other sizes. Ignored by classifiers reading codes.
        input_check: attach the input check of :mod:`scfront.models.inputs` (default). Only a
            model whose input another model checks (the classifier inside a
            :class:`~scfront.models.defended.DefendedModel`) goes without.
        kwargs: architecture options (see each factory's docstring).

    Returns:
        The module; its ``forward`` maps (N, C, H, W) float32 inputs (images in [0, 1]) of the
        expected channels and size to (N, num_classes) logits, and raises
        :class:`~scfront.errors.InputError` for anything else. The model's :class:`ModelInfo`
        is attached as ``model.info``.
    """
    entry = _entry(name)
    positive_int(num_classes, "num_classes")
    if image_size is not None:
        positive_int(image_size, "image_size")
    try:
        model = entry.factory(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"classifier {name!r}: invalid arguments {sorted(kwargs)} ({exc})") from None
    model.info = entry.info  # type: ignore[assignment]
    if input_check:
        attach_input_check(model, input_spec_of(entry.info, image_size, kwargs))
    return model


def input_spec_of(info: ModelInfo, image_size: int | None = None,
                  kwargs: dict[str, object] | None = None) -> InputSpec:
    """What a classifier built from ``info`` (with architecture options ``kwargs``) accepts:
    images of ``info.input_size`` (or ``image_size`` squared), or codes with ``in_channels``
    channels of any spatial size."""
    channels, height, width = info.input_size
    if info.input_kind is InputKind.CODES:
        in_channels = (kwargs or {}).get("in_channels", channels)
        return InputSpec(channels=int(in_channels), size=None, images=False)  # type: ignore[call-overload]
    size = (height, width) if image_size is None else (image_size, image_size)
    return InputSpec(channels=channels, size=size, images=True)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
