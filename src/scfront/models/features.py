"""The feature hook: how a classifier exposes the input of its last linear layer.

Some evaluations replace a model's last layer, e.g. the active binarization test
(:mod:`scfront.evaluation.binarization`) fits a new two-way readout on the penultimate
features. A model declares where that layer is; nothing walks its modules to guess. The
protocol (:class:`FeatureModel`):

- ``features(x) -> (N, D)``: the penultimate features, ``x`` (N, C, H, W) float32 in [0, 1] as
  for ``forward`` (``features`` does not run the input check of :mod:`scfront.models.inputs`,
  which is a forward pre-hook: pass valid images, or call the model once first);
- ``readout``: the final ``nn.Linear(D, num_classes)`` (an attribute or a property naming the
  module, so its weights stay those of the model);
- the invariant ``model(x) == model.readout(model.features(x))``, exactly (scfront's models
  compute ``forward`` that way).

scfront's own models implement it: the ResNet-32 family (also the original checkpoints read by
:func:`~scfront.models.import_original_resnet32`), the pre-activation ResNet-101, EfficientNet-B0,
and :class:`~scfront.models.defended.DefendedModel` (the frontend followed by its classifier's
features, with the classifier's readout). A model of your own (``package.module:factory``)
adds the two members, e.g.::

    class Net(nn.Module):
        def features(self, x):            # (N, 3, H, W) in [0, 1] -> (N, D)
            return self.body(x).flatten(1)

        @property
        def readout(self) -> nn.Linear:   # the last layer, D -> num_classes
            return self.fc

        def forward(self, x):
            return self.readout(self.features(x))
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from scfront.errors import ConfigError

__all__ = ["FEATURE_HOOK_HINT", "FeatureModel", "feature_readout"]

#: How to give a model the hook, for error messages.
FEATURE_HOOK_HINT = ("give the model a method features(x) -> (N, D) returning the input of its last "
                     "linear layer and an attribute `readout` naming that nn.Linear, with "
                     "model(x) == model.readout(model.features(x)) (see scfront.models.features)")


class FeatureModel(Protocol):
    """A classifier that exposes its penultimate features and its final linear layer (for type
    annotations; :func:`feature_readout` is the check)."""

    @property
    def readout(self) -> nn.Linear:
        """The last layer: ``nn.Linear(D, num_classes)``."""
        ...

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 in [0, 1] → (N, D) features, the input of :attr:`readout`."""
        ...


def feature_readout(model: nn.Module) -> nn.Linear:
    """The declared final layer of ``model`` (checking that the hook is there).

    Args:
        model: an ``nn.Module`` implementing :class:`FeatureModel`.
    Returns:
        ``model.readout``, an ``nn.Linear(D, num_classes)``.
    Raises:
        ConfigError: ``model`` has no ``features`` method or no ``readout`` linear layer; the
            message says how to add them. (A :class:`~scfront.models.defended.DefendedModel`
            whose classifier lacks the hook raises it naming the classifier.)
    """
    name = type(model).__name__
    if not callable(getattr(model, "features", None)):
        raise ConfigError(f"{name} does not expose its features (no method `features`); {FEATURE_HOOK_HINT}")
    readout = getattr(model, "readout", None)
    if not isinstance(readout, nn.Linear):
        what = "no attribute `readout`" if readout is None else f"`readout` is a {type(readout).__name__}"
        raise ConfigError(f"{name} does not declare its last layer ({what}, expected an nn.Linear); "
                          f"{FEATURE_HOOK_HINT}")
    return readout
