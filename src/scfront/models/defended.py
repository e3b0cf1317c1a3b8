"""The defended model: sparse coding frontend followed by a classifier (PAPER.md sections 2-5)."""

from __future__ import annotations

import torch
from torch import nn

from scfront.frontend.encoder import Encoder
from scfront.frontend.frontend import Frontend

__all__ = ["DefendedModel"]


class DefendedModel(nn.Module):
    """x (B, 3, H, W) float in [0, 1] → logits (B, num_classes) float32.

    A plain ``nn.Module``, so torchattacks, foolbox and ART use it as is; their gradient calls go
    through the encoder's BPDA rules (change them with ``scfront.frontend.bpda(model, ...)``).
    The dictionary atoms are registered buffers of the encoder, so ``state_dict()`` (and a
    safetensors file written from it) is self-contained.

    Args:
        frontend: the :class:`~scfront.frontend.Frontend` (its output is the classifier's input:
            a reconstructed image, or the codes for the identity decoder).
        classifier: any module taking that output (it normalises its input itself).
    """

    def __init__(self, frontend: Frontend, classifier: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.classifier = classifier

    @property
    def encoder(self) -> Encoder:
        return self.frontend.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) float in [0, 1] → logits (B, num_classes)."""
        return self.classifier(self.frontend(x))
