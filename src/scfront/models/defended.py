"""The defended model: sparse coding frontend followed by a classifier (docs/method.md §2-§5)."""

from __future__ import annotations

import torch
from torch import nn

from scfront.frontend.encoder import Encoder
from scfront.frontend.frontend import Frontend
from scfront.models.features import feature_readout
from scfront.models.inputs import InputSpec, attach_input_check, input_spec

__all__ = ["DefendedModel"]


class DefendedModel(nn.Module):
    """x (B, 3, H, W) float in [0, 1] → logits (B, num_classes) float32.

    A plain ``nn.Module``, so torchattacks, foolbox and ART use it as is; their gradient calls go
    through the encoder's BPDA rules (change them with ``scfront.frontend.use_bpda(model, BPDA(...))``).
    The dictionary atoms are registered buffers of the encoder, so ``state_dict()`` (and a
    safetensors file written from it) is self-contained.

    Its input is checked (:mod:`scfront.models.inputs`): (B, C, H, W) float32 images in [0, 1] of
    the size the decoder reconstructs (the size the model was trained for), tiled by the
    encoder's patches and stride; other float dtypes are converted, anything else is an
    :class:`~scfront.errors.InputError`.

    Args:
        frontend: the :class:`~scfront.frontend.Frontend` (its output is the classifier's input:
            a reconstructed image, or the codes for the identity decoder).
        classifier: any module taking that output (it normalises its input itself). A
            classifier from :func:`~scfront.models.create_model` keeps its own input check
            (which then checks the reconstruction) unless built with ``input_check=False``, as
            :func:`~scfront.models.build_model` does.
    """

    def __init__(self, frontend: Frontend, classifier: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.classifier = classifier
        encoder, size = frontend.encoder, frontend.decoder.image_size
        attach_input_check(self, InputSpec(channels=encoder.channels, size=(size, size), images=True,
                                           tile=(encoder.patch_size, encoder.stride)))

    @property
    def input_spec(self) -> InputSpec | None:
        """What the model's input check accepts."""
        return input_spec(self)

    @property
    def encoder(self) -> Encoder:
        return self.frontend.encoder

    @property
    def readout(self) -> nn.Linear:
        """The classifier's last layer (the feature hook of :mod:`scfront.models.features`).

        Raises:
            ConfigError: the classifier does not declare its features and readout.
        """
        return feature_readout(self.classifier)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) float in [0, 1] → (B, D): the classifier's features of the frontend's
        output, so that ``model(x) == model.readout(model.features(x))``."""
        feature_readout(self.classifier)  # one clear error for a classifier without the hook
        return self.classifier.features(self.frontend(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) float in [0, 1] → logits (B, num_classes)."""
        return self.classifier(self.frontend(x))
