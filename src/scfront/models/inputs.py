"""One input check for every model scfront builds or loads.

Every model takes a batch of images ``(N, C, H, W)`` with values in ``[0, 1]``; a mistake there
(uint8 pixels, 0-255 floats, a missing batch axis, 28x28 images for a 32x32 model) used to give
meaningless logits or a torch traceback. :func:`attach_input_check` registers
:class:`InputCheck`, a forward pre-hook, on a model; what it accepts is an :class:`InputSpec`.
It is attached where models come from, so a new model cannot miss it:

- :func:`~scfront.models.create_model` attaches it to every registered classifier (channels and
  size from the registry's ``input_size``, or the ``image_size`` it is built for);
- :class:`~scfront.models.defended.DefendedModel` attaches it in its constructor (the size its
  decoder reconstructs, which must be tiled by the encoder's patches and stride);
- :func:`~scfront.models.build_model` (hence training, saved and shipped models) builds through
  those two, with the configuration's ``data.image_size``;
- :func:`scfront.load` attaches it to a ``package.module:factory`` model (range and dtype only:
  its channels and size are unknown), unless the factory returned a model that has one.

The rules, for input ``x`` (:func:`check_input`), each violation an
:class:`~scfront.errors.InputError` naming the fix:

- a ``torch.Tensor`` of 4 dimensions with the spec's channels, ``N >= 1``, and the spec's
  spatial size (the size the model was trained for);
- floating point: uint8 (0-255 pixels) is refused with "divide by 255"; other integer and bool
  dtypes are refused. **dtype rule**: a floating dtype other than the model's parameters'
  (float32 for every scfront model) is converted to it: float16 and bfloat16 exactly, float64
  rounded to the nearest float32; the gradient flows back to the caller's tensor in its dtype;
- values in ``[0, 1]`` within :data:`RANGE_TOLERANCE` (one ``aminmax`` pass), no NaN or
  infinity; values up to 255 are reported as 0-255 pixels to divide by 255. Models reading the
  frontend's codes (``InputSpec(images=False)``) skip the range rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scfront.errors import InputError

__all__ = ["InputCheck", "InputSpec", "RANGE_TOLERANCE", "attach_input_check", "check_input", "input_spec",
           "remove_input_check"]

RANGE_TOLERANCE = 1e-6  # inputs may leave [0, 1] by this much (float rounding in attacks)


@dataclass(frozen=True)
class InputSpec:
    """What a model accepts.

    Attributes:
        channels: C (``None``: any).
        size: (H, W) the model was trained for (``None``: any).
        images: values must be images in [0, 1] (``False``: codes, any finite values).
        tile: ``(patch, stride)`` of a sparse coding frontend: ``(H - patch)`` and
            ``(W - patch)`` must be multiples of ``stride`` (``None``: no such rule).
    """

    channels: int | None = None
    size: tuple[int, int] | None = None
    images: bool = True
    tile: tuple[int, int] | None = None

    def describe(self) -> str:
        """``"(N, 3, 32, 32) float32 images in [0, 1]"`` and the like."""
        c = "C" if self.channels is None else str(self.channels)
        h, w = ("H", "W") if self.size is None else self.size
        what = "float32 images in [0, 1]" if self.images else "float32 codes"
        return f"(N, {c}, {h}, {w}) {what}"


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (float32 if none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in model.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def check_input(x: Any, spec: InputSpec, dtype: torch.dtype = torch.float32,
                where: str = "model input") -> torch.Tensor:
    """``x`` checked against ``spec`` and converted to ``dtype`` if it is floating point of
    another precision (the module docstring has the rules).

    Returns:
        ``x`` itself when it already has ``dtype``, else ``x.to(dtype)``.

    Raises:
        InputError: naming what is wrong and how to fix it.
    """
    expected = spec.describe()
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{where} must be a torch.Tensor {expected}, got a {type(x).__name__}")
    shape = tuple(x.shape)
    if x.ndim != 4:
        hint = "; add the batch axis with x.unsqueeze(0)" if x.ndim == 3 else ""
        raise InputError(f"{where} must be a batch {expected}, got shape {shape}{hint}")
    if spec.channels is not None and shape[1] != spec.channels:
        hint = ("; channels-last (N, H, W, C) images need x.permute(0, 3, 1, 2)"
                if shape[3] == spec.channels else "")
        raise InputError(f"{where} must have {spec.channels} channels, {expected}, got shape {shape}{hint}")
    if shape[0] == 0:
        raise InputError(f"{where} is an empty batch (N = 0); give at least one image")
    if spec.size is not None and shape[2:] != spec.size:
        h, w = spec.size
        raise InputError(f"{where}: this model was trained on {h}x{w} images, got {shape[2]}x{shape[3]}; "
                         f"resize them to {h}x{w} (e.g. torch.nn.functional.interpolate(x, size=({h}, {w}), "
                         "mode='bilinear', antialias=True))")
    if spec.tile is not None:
        patch, stride = spec.tile
        if any(side < patch or (side - patch) % stride for side in shape[2:]):
            raise InputError(f"{where}: {shape[2]}x{shape[3]} images are not tiled by the frontend's "
                             f"{patch}x{patch} patches at stride {stride} (H - {patch} and W - {patch} must be "
                             f"multiples of {stride})")
    if x.dtype == torch.uint8:
        raise InputError(f"{where} is uint8 (0-255 pixels); give float images in [0, 1]: x.float() / 255")
    if not x.is_floating_point():
        raise InputError(f"{where} must be floating point {expected}, got {x.dtype}")
    if x.dtype != dtype:
        x = x.to(dtype)
    low, high = torch.aminmax(x.detach())
    lo, hi = float(low), float(high)
    if math.isnan(lo) or math.isnan(hi):
        raise InputError(f"{where} contains NaN; expected {expected}")
    if math.isinf(lo) or math.isinf(hi):
        raise InputError(f"{where} contains infinite values; expected {expected}")
    if spec.images and (lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE):
        if lo >= -RANGE_TOLERANCE and hi <= 255.0 + RANGE_TOLERANCE:
            raise InputError(f"{where} has values in [{lo:.4g}, {hi:.4g}]: 0-255 pixels, it seems; "
                             "divide them by 255 (the model takes images in [0, 1])")
        raise InputError(f"{where} must be images in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


class InputCheck:
    """Forward pre-hook (registered ``with_kwargs=True``) applying :func:`check_input` with
    ``spec`` to a model's input: its first positional argument, else its only keyword argument;
    converted to the model's parameter dtype when needed. Picklable and deep-copyable, so a copy
    of the model (``copy.deepcopy``, :func:`~scfront.models.prepare_for_attack`) keeps it."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def __call__(self, module: nn.Module, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        dtype = _model_dtype(module)
        if args:
            checked = check_input(args[0], self.spec, dtype)
            return None if checked is args[0] else ((checked, *args[1:]), kwargs)
        if len(kwargs) != 1:
            raise InputError(f"the model takes one input {self.spec.describe()}, got "
                             f"{len(kwargs)} keyword arguments")
        ((name, x),) = kwargs.items()
        checked = check_input(x, self.spec, dtype)
        return None if checked is x else (args, {name: checked})

    def __repr__(self) -> str:
        return f"InputCheck({self.spec})"


def input_spec(model: nn.Module) -> InputSpec | None:
    """The :class:`InputSpec` checked on ``model``'s input, or None when it has no check."""
    hook = next((h for h in model._forward_pre_hooks.values() if isinstance(h, InputCheck)), None)
    return None if hook is None else hook.spec


def attach_input_check(model: nn.Module, spec: InputSpec, *, replace: bool = True) -> nn.Module:
    """Register :class:`InputCheck` with ``spec`` on ``model`` (the model itself, returned).

    A model holds at most one: with ``replace`` an existing check gets ``spec``; without it an
    existing check is kept as it is.
    """
    for key, hook in list(model._forward_pre_hooks.items()):
        if isinstance(hook, InputCheck):
            if replace:
                hook.spec = spec
            return model
    model.register_forward_pre_hook(InputCheck(spec), with_kwargs=True)
    return model


def remove_input_check(model: nn.Module) -> nn.Module:
    """Remove ``model``'s :class:`InputCheck` (a classifier inside a defended model, whose
    input the defended model checks); returns the model."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if isinstance(hook, InputCheck):
            del model._forward_pre_hooks[key]
            model._forward_pre_hooks_with_kwargs.pop(key, None)
    return model
