"""Seeded weight initialisation: the same initial weights from the same ``torch.Generator``.

PyTorch modules initialise themselves from the global generator when they are built. Training
needs initial weights that depend on the run's seed only (a resumed or a multi-process run must
start from the same point as an uninterrupted one) without reseeding the global generator, so
:func:`initialize_` redraws every parameter from an explicit generator:

- convolutions, transposed convolutions and linear layers: PyTorch's own default distribution
  (Kaiming-uniform with ``a = √5`` for weights, ``U(±1/√fan_in)`` for biases);
- normalisation layers: weight 1, bias 0, running statistics reset;
- then any module defining ``init_parameters(generator)`` overrides its own layers (e.g. the
  Xavier-normal convolutions of the ResNet-32 units, as in the original code).

Buffers that are not statistics (e.g. a frontend's dictionary atoms) are left untouched.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_DEFAULT_INIT = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def _default_init(module: nn.Module, generator: torch.Generator) -> None:
    weight = module.weight
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if module.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(module.bias, -bound, bound, generator=generator)


@torch.no_grad()
def initialize_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every parameter of ``model`` in place from ``generator``; returns ``model``.

    Deterministic: the same architecture and generator state give bit-identical weights. The
    generator must live on the parameters' device (CPU for a model not yet moved).
    """
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, _DEFAULT_INIT):
            _default_init(module, generator)
        elif isinstance(module, _NORMS):
            module.reset_parameters()
    for module in modules:
        custom = getattr(module, "init_parameters", None)
        if callable(custom):
            custom(generator)
    return model
