"""User code named by ``package.module:attribute``: importing it, and checking the classifier it makes.

Two places accept such a string:

- ``scfront.load("package.module:factory")`` (:mod:`scfront.models.loader`): a whole model, from a
  callable taking no arguments;
- ``model.classifier = "package.module:factory"`` in a run configuration (``scfront train
  --classifier ...``, :func:`~scfront.models.build_model`, :func:`~scfront.defend`): the
  classifier behind the frontend (or alone, without a frontend). The callable is called as
  ``factory(num_classes=K)`` when its signature has a ``num_classes`` parameter (or takes
  ``**kwargs``), else as ``factory()``; either way the module it returns must map the images
  (or codes) it is given to ``(N, K)`` logits, which :func:`check_classifier` verifies with one
  forward pass before anything trains or loads weights.

Importing the module runs its code: a configuration or a saved model naming a factory is as
trusted as that module. This module imports torch only when a factory is used, so the
configuration (which checks the syntax with :func:`is_factory_spec`) stays light.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import TYPE_CHECKING, Callable

from scfront.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FACTORY_SPEC", "check_classifier", "classifier_from_factory", "import_callable",
           "is_factory_spec", "module_device"]

# "package.module:attribute" (dotted on both sides of the colon).
FACTORY_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def is_factory_spec(text: str) -> bool:
    """Whether ``text`` has the form ``package.module:attribute`` (nothing is imported)."""
    return bool(FACTORY_SPEC.match(text))


def import_callable(target: str, what: str = "model factory") -> Callable[..., object]:
    """The callable ``module:attribute`` names, imported (``what`` names it in messages).

    Raises:
        ConfigError: a malformed target, a module that cannot be found, a missing attribute, or
            an attribute that is not callable. An import error raised *inside* the factory's
            module (one of its own dependencies is missing) is not caught: it is that module's
            traceback to read.
    """
    if not is_factory_spec(target):
        raise ConfigError(f"{what} {target!r} must look like package.module:factory")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise  # the factory's module exists but one of its own imports is missing
        raise ConfigError(f"{what} {target!r}: no module named {exc.name!r} (is its folder on "
                          "PYTHONPATH?)") from None
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"{what} {target!r}: {module_name} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not callable(value):
        raise ConfigError(f"{what} {target!r} is a {type(value).__name__}, not a callable")
    return value


def _takes_num_classes(factory: Callable[..., object], target: str) -> bool:
    """Whether ``factory`` is called with ``num_classes=`` (else without arguments)."""
    try:
        signature = inspect.signature(factory)
    except ValueError:  # no signature available (some builtins): call it without arguments
        return False
    try:
        signature.bind(num_classes=2)
        return True
    except TypeError:
        pass
    try:
        signature.bind()
    except TypeError:
        raise ConfigError(f"classifier factory {target!r} must be callable as factory(num_classes=K) or "
                          f"factory() (its signature: {signature})") from None
    return False


def classifier_from_factory(target: str, num_classes: int) -> "nn.Module":
    """The classifier ``package.module:factory`` builds for ``num_classes`` classes (train mode,
    as the factory returned it; its output is checked by :func:`check_classifier`, not here).

    Raises:
        ConfigError: see :func:`import_callable`; a signature that takes neither
            ``num_classes=`` nor no argument; a return value that is not an ``nn.Module``.
    """
    from torch import nn

    factory = import_callable(target, "classifier factory")
    model = factory(num_classes=num_classes) if _takes_num_classes(factory, target) else factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"classifier factory {target!r} returned a {type(model).__name__}, not a "
                          "torch.nn.Module")
    return model


def module_device(module: "nn.Module") -> "torch.device":
    """The device of ``module``'s first parameter or buffer (CPU for a module without any)."""
    import torch

    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def check_classifier(classifier: "nn.Module", input_shape: tuple[int, int, int],
                     num_classes: int | None = None, *, name: str = "the classifier",
                     what: str = "images", source: str = "its input") -> int:
    """Run ``classifier`` once on two constant inputs of ``input_shape`` (C, H, W) and check that
    it returns ``(2, K)`` floating-point logits, ``K`` = ``num_classes`` when given (else K >= 2).

    The pass runs without gradients, with every submodule in eval mode (each gets its own
    mode back afterwards), so no BatchNorm statistic moves; the inputs are 0.5 everywhere
    (``what="codes"``: zeros), on the classifier's device. ``source`` says in messages where
    that input comes from (e.g. "the decoder's reconstruction"). Returns K.

    Raises:
        ConfigError: the classifier fails on such input (the message says what it was given
            and the error it raised) or returns anything but (2, K) logits.
    """
    import torch

    from scfront.errors import ScfrontError, one_line
    from scfront.models.layers import eval_mode

    c, h, w = input_shape
    given = f"(N, {c}, {h}, {w}) {what}"
    fill = 0.5 if what == "images" else 0.0
    probe = torch.full((2, c, h, w), fill, device=module_device(classifier))
    try:
        with torch.no_grad(), eval_mode(classifier):
            out = classifier(probe)
    except (RuntimeError, ValueError, TypeError, IndexError, ScfrontError) as exc:
        raise ConfigError(f"{name} fails on {source}, {given}: {type(exc).__name__}: {one_line(exc)}; "
                          f"it must map {given} to logits (N, num_classes)") from None
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{name} returned a {type(out).__name__} for {given}; it must return a "
                          "tensor of logits (N, num_classes)")
    expected = "(N, num_classes)" if num_classes is None else f"(N, {num_classes})"
    if out.ndim != 2 or out.shape[0] != 2 or not out.is_floating_point():
        raise ConfigError(f"{name} returned {out.dtype} of shape {tuple(out.shape)} for a batch of 2 "
                          f"{given}; expected floating-point logits {expected}")
    k = int(out.shape[1])
    if num_classes is not None and k != num_classes:
        raise ConfigError(f"{name} returns {k} logits per image, but num_classes is {num_classes}")
    if k < 2:
        raise ConfigError(f"{name} returns {k} logit per image; a classifier needs at least 2 classes")
    return k
