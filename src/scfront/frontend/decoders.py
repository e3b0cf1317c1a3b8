"""Decoders: sparse codes → images (docs/method.md §3), one implementation over a layer spec.

Every decoder is a stack of transposed convolutions with bias, each followed by ReLU (the last
one too, as in the original; the final clamp makes that ReLU a no-op in the forward pass), with
optional bicubic resizes to ``image_size + 2``, then a center crop to the image size and a clamp
to [0, 1]. The first layer of ``default``, ``small`` and ``deep`` mirrors the encoder: kernel =
patch size, stride = encoder stride (k4 s2 on CIFAR-10, as in the paper's table).

| name     | layers (n = atoms)                                                | params, n = 500 |
|----------|-------------------------------------------------------------------|-----------------|
| default  | ConvT(n→300, p, s), ConvT(300→100, 3), ConvT(100→3, 3)            | 2,673,103       |
| small    | ConvT(n→30, p, s), ConvT(30→10, 3), ConvT(10→3, 3)                | 243,013         |
| deep     | default's first two, ConvT(100→30, 3), resize, ConvT(30→10, 3),   | 2,700,413       |
|          | ConvT(10→3, 3)                                                    |                 |
| resize   | ConvT(n→300, 3, 1), resize, ConvT(300→100, 3), ConvT(100→3, 3)    | 1,623,103       |
| identity | none: the classifier receives the codes                           | 0               |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from scfront.config import DecoderName
from scfront.errors import ConfigError
from scfront.frontend.codes import SparseCodes

__all__ = ["ConvT", "DECODER_LAYERS", "Decoder", "Resize", "build_decoder", "center_crop"]


@dataclass(frozen=True)
class ConvT:
    """A transposed convolution (+ bias, + ReLU); ``None`` kernel/stride: the encoder's patch/stride."""

    out_channels: int
    kernel: int | None = 3
    stride: int | None = 1


@dataclass(frozen=True)
class Resize:
    """Bicubic resize of the feature maps to (image_size + 2)² (the original's choice)."""

    margin: int = 2


Layer = Union[ConvT, Resize]

DECODER_LAYERS: dict[DecoderName, tuple[Layer, ...]] = {
    DecoderName.DEFAULT: (ConvT(300, None, None), ConvT(100), ConvT(3)),
    DecoderName.SMALL: (ConvT(30, None, None), ConvT(10), ConvT(3)),
    DecoderName.DEEP: (ConvT(300, None, None), ConvT(100), ConvT(30), Resize(), ConvT(10), ConvT(3)),
    DecoderName.RESIZE: (ConvT(300, 3, 1), Resize(), ConvT(100), ConvT(3)),
    DecoderName.IDENTITY: (),
}


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size×size window of x (B, C, H, W) with H, W ≥ size."""
    top = (x.shape[2] - size) // 2
    left = (x.shape[3] - size) // 2
    return x[:, :, top:top + size, left:left + size]


class Decoder(nn.Module):
    """Codes (B, n_atoms, H', W') → images (B, 3, H, W) float in [0, 1] (docs/method.md §3).

    Args:
        layers: the layer spec (see :data:`DECODER_LAYERS`); empty = identity decoder.
        in_channels: number of atoms.
        image_size: H = W of the images to reconstruct.
        patch_size, stride: the encoder's, used by layers whose kernel/stride is ``None``.

    ``forward`` also accepts :class:`SparseCodes`; the first transposed convolution is then
    computed from the active atoms only (:func:`~scfront.frontend.sparse.sparse_conv_transpose`), which gives the same
    result as the dense layer (up to float summation order) at a fraction of the cost.
    """

    def __init__(self, layers: tuple[Layer, ...], in_channels: int, image_size: int,
                 patch_size: int, stride: int) -> None:
        super().__init__()
        self.spec = tuple(layers)
        self.image_size = image_size
        self.convs = nn.ModuleList()
        code_size = (image_size - patch_size) // stride + 1
        if code_size < 1:
            raise ConfigError(f"images of size {image_size} are smaller than the {patch_size}x{patch_size} patches")
        size, channels = code_size, in_channels
        for layer in self.spec:
            if isinstance(layer, Resize):
                size = image_size + layer.margin
                continue
            kernel = patch_size if layer.kernel is None else layer.kernel
            step = stride if layer.stride is None else layer.stride
            self.convs.append(nn.ConvTranspose2d(channels, layer.out_channels, kernel, step, bias=True))
            size = (size - 1) * step + kernel
            channels = layer.out_channels
        if self.spec and size < image_size:
            raise ConfigError(f"this decoder produces {size}x{size} maps from {code_size}x{code_size} "
                              f"codes, smaller than the {image_size}x{image_size} images")
        self.out_size = size if self.spec else code_size

    @property
    def is_identity(self) -> bool:
        return not self.spec

    @property
    def first(self) -> nn.ConvTranspose2d | None:
        """The first transposed convolution if the decoder starts with one (sparse-able)."""
        if self.spec and isinstance(self.spec[0], ConvT):
            return self.convs[0]
        return None

    def forward(self, codes: torch.Tensor | SparseCodes) -> torch.Tensor:
        """codes: (B, n_atoms, H', W') float or SparseCodes → (B, 3, H, W) float in [0, 1]."""
        if self.is_identity:
            return codes.to_dense() if isinstance(codes, SparseCodes) else codes
        convs = iter(self.convs)
        out: torch.Tensor | SparseCodes = codes
        for i, layer in enumerate(self.spec):
            if isinstance(layer, Resize):
                size = self.image_size + layer.margin
                out = F.interpolate(out, size=(size, size), mode="bicubic", align_corners=False)
                continue
            conv = next(convs)
            if isinstance(out, SparseCodes):
                from scfront.frontend.sparse import sparse_conv_transpose

                out = sparse_conv_transpose(out, conv.weight, conv.bias, conv.stride[0])
            else:
                out = conv(out)
            out = F.relu(out)
        if isinstance(out, SparseCodes):  # pragma: no cover - a spec always has a ConvT
            raise ConfigError("decoder spec has no transposed convolution")
        return center_crop(out, self.image_size).clamp(0.0, 1.0)


def build_decoder(name: DecoderName | str, n_atoms: int, image_size: int, patch_size: int,
                  stride: int) -> Decoder:
    """The decoder ``name`` of docs/method.md §3 for codes of ``n_atoms`` channels."""
    try:
        key = DecoderName(name)
    except ValueError:
        choices = ", ".join(d.value for d in DecoderName)
        raise ConfigError(f"unknown decoder {name!r}; choose one of {choices}") from None
    return Decoder(DECODER_LAYERS[key], n_atoms, image_size, patch_size, stride)
