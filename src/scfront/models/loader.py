"""One loader for every kind of model scfront evaluates: :func:`load` behind ``scfront.load``.

A model *spec* is one of (decided by :func:`resolve_spec`, in this order):

1. an existing path:
   - a folder written by :func:`~scfront.models.saving.save_model` (a training run folder), or
     its ``model.safetensors`` file: rebuilt from ``config.toml``, checked against the card (a
     classifier saved as ``package.module:factory`` is rebuilt by importing that module);
   - a ``.pt`` / ``.pth`` checkpoint of the original implementation's ResNet-32, read with
     ``torch.load(weights_only=True)`` (:func:`~scfront.models.original.import_original_resnet32`);
2. ``package.module:factory``: an importable callable that takes no arguments and returns an
   ``nn.Module`` (input (N, C, H, W) in [0, 1], output logits), optionally with ``weights=FILE``:
   a safetensors file or a ``.pt`` state_dict (read with ``weights_only=True``), keys and shapes
   matching exactly;
3. the name of a model shipped in the package (:func:`~scfront.models.saving.list_pretrained`,
   e.g. ``"cifar10_cpu"``).

Anything else is a :class:`~scfront.errors.ConfigError` that lists these forms. Nothing is cached:
each call builds a new model, and a caller that needs the model again keeps it.

Every model returned checks its input (:mod:`scfront.models.inputs`): scfront's own models
their channels, trained size, dtype and range; a factory's model, which scfront knows nothing
about, the layout (N, C, H, W), dtype and range [0, 1] (unless the factory returned a model that
has a check already, e.g. one built with :func:`~scfront.models.create_model`).
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from scfront.errors import CheckpointError, ConfigError
from scfront.models.factory import import_callable, is_factory_spec

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary

__all__ = ["ModelSpec", "SpecKind", "load", "resolve_spec"]

ORIGINAL_SUFFIXES = (".pt", ".pth")
FORMS = ("a folder saved by scfront (or its model.safetensors)",
         "an original ResNet-32 checkpoint (.pt/.pth)",
         "package.module:factory (with weights=FILE: .safetensors or a .pt state_dict)",
         "the name of a shipped model")


class SpecKind(str, enum.Enum):
    """The kinds of model spec :func:`load` accepts."""

    SAVED = "saved"  # a folder written by save_model, or its model.safetensors
    ORIGINAL = "original"  # a .pt/.pth checkpoint of the original ResNet-32
    FACTORY = "factory"  # "package.module:callable"
    PRETRAINED = "pretrained"  # a model shipped in scfront/assets/models


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model spec.

    Attributes:
        kind: which loader reads it.
        target: the path (SAVED, ORIGINAL), ``"module:attribute"`` (FACTORY) or the name
            (PRETRAINED).
    """

    kind: SpecKind
    target: str

    @property
    def path(self) -> Path:
        """``target`` as a path (SAVED and ORIGINAL specs)."""
        return Path(self.target)

    @property
    def display_name(self) -> str:
        """A short name for reports: the folder's name for a saved model, else the target."""
        if self.kind is SpecKind.SAVED:
            path = self.path
            return path.parent.name if path.is_file() else path.name
        if self.kind is SpecKind.ORIGINAL:
            return self.path.name
        return self.target


def _accepted(available: list[str]) -> str:
    shipped = ", ".join(available) if available else "none in this installation"
    return "; a model spec is " + "; or ".join(FORMS) + f" (shipped: {shipped})"


def resolve_spec(spec: str | Path) -> ModelSpec:
    """Which kind of model ``spec`` names (see the module docstring for the rules).

    Raises:
        ConfigError: a path that does not exist or is no model file, a malformed factory, or an
            unknown name; the message lists the accepted forms.
    """
    from scfront.models.saving import MODEL_FILE, list_pretrained

    text = str(spec)
    if not text.strip():
        raise ConfigError("empty model spec" + _accepted(list_pretrained()))
    path = Path(text)
    if path.is_dir():
        return ModelSpec(SpecKind.SAVED, text)
    if path.is_file():
        if path.suffix == ".safetensors":
            if path.name != MODEL_FILE:
                raise ConfigError(f"{path} is a safetensors file but not a saved model's {MODEL_FILE}: give "
                                  "its architecture as package.module:factory with weights=FILE")
            return ModelSpec(SpecKind.SAVED, text)
        if path.suffix in ORIGINAL_SUFFIXES:
            return ModelSpec(SpecKind.ORIGINAL, text)
        raise ConfigError(f"{path} is not a model file" + _accepted(list_pretrained()))
    if isinstance(spec, str) and is_factory_spec(text):
        return ModelSpec(SpecKind.FACTORY, text)
    available = list_pretrained()
    if isinstance(spec, str) and text in available:
        return ModelSpec(SpecKind.PRETRAINED, text)
    if isinstance(spec, Path) or "/" in text or "\\" in text or path.suffix:
        raise ConfigError(f"model {text!r} does not exist" + _accepted(available))
    raise ConfigError(f"unknown model {text!r}" + _accepted(available))


def _factory(target: str) -> Callable[[], nn.Module]:
    """The callable ``module:attribute`` names, imported; ConfigError when it is not one or
    cannot be called without arguments."""
    value = import_callable(target, "model factory")
    try:
        inspect.signature(value).bind()
    except TypeError:
        raise ConfigError(f"model factory {target!r} must be callable without arguments "
                          f"(its signature: {inspect.signature(value)})") from None
    except ValueError:  # no signature available (some builtins): let the call decide
        pass
    return value  # type: ignore[return-value]


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a ``.pt`` state_dict (never unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from scfront.models.original import read_state_dict

    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    if path.suffix in ORIGINAL_SUFFIXES:
        return read_state_dict(path)
    raise ConfigError(f"weights file {path} must be .safetensors or a .pt/.pth state_dict")


def _from_factory(target: str, weights: Path | None) -> nn.Module:
    from scfront.models.inputs import InputSpec, attach_input_check
    from scfront.models.original import load_state_dict_strict

    model = _factory(target)()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {target!r} returned a {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        load_state_dict_strict(model, _read_weights(weights), str(weights))
    return attach_input_check(model, InputSpec(), replace=False)


def load(spec: str | Path | ModelSpec, *, weights: str | Path | None = None,
         device: torch.device | str = "cpu", dictionary: "Dictionary | None" = None) -> nn.Module:
    """The model ``spec`` names, on ``device``, in eval mode.

    Args:
        spec: a saved folder or its ``model.safetensors``, an original ResNet-32 ``.pt``,
            ``package.module:factory``, or a shipped model's name (see the module docstring);
            or a :class:`ModelSpec` from :func:`resolve_spec`.
        weights: for a factory only: the weights to load into what it returns (safetensors or
            a ``.pt`` state_dict; keys and shapes must match).
        device: where to put the model.
        dictionary: for a saved defended model only: its frontend's dictionary, when the name in
            its config does not resolve on this machine (the sha256 must match the card's).

    Returns:
        An ``nn.Module`` in eval mode mapping (N, C, H, W) float in [0, 1] to (N, K) logits
        (a factory's model is assumed to follow that convention), its input checked
        (:mod:`scfront.models.inputs`; :class:`~scfront.errors.InputError` for bad input).

    Raises:
        ConfigError: an unknown or malformed spec, or an option its kind does not take.
        CheckpointError: a missing, corrupt or mismatched file behind a valid spec.
    """
    from scfront.models.original import import_original_resnet32
    from scfront.models.saving import load_model, load_pretrained

    resolved = spec if isinstance(spec, ModelSpec) else resolve_spec(spec)
    if weights is not None and resolved.kind is not SpecKind.FACTORY:
        raise ConfigError(f"weights= applies to package.module:factory specs, not to a {resolved.kind.value} "
                          f"model ({resolved.target})")
    if dictionary is not None and resolved.kind is not SpecKind.SAVED:
        raise ConfigError(f"dictionary= applies to saved models, not to a {resolved.kind.value} model")
    if resolved.kind is SpecKind.SAVED:
        return load_model(resolved.path, device=device, dictionary=dictionary)
    if resolved.kind is SpecKind.PRETRAINED:
        return load_pretrained(resolved.target, device=device)
    if resolved.kind is SpecKind.ORIGINAL:
        model = import_original_resnet32(resolved.path)
    else:
        model = _from_factory(resolved.target, None if weights is None else Path(weights))
    return model.to(device).eval()
