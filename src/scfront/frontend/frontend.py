"""The frontend: encoder followed by decoder, images in, images (or codes) out (docs/method.md §2-§3)."""

from __future__ import annotations

import torch
from torch import nn

from scfront.config import FrontendConfig
from scfront.dictionary.core import Dictionary
from scfront.errors import ConfigError
from scfront.frontend.bpda import BPDA
from scfront.frontend.decoders import Decoder, build_decoder
from scfront.frontend.encoder import Encoder

__all__ = ["Frontend", "build_frontend", "SPARSE_MAX_FRACTION"]

# The sparse first layer costs about T/n_atoms of the dense one plus fixed gather/fold overhead;
# below a quarter of the atoms it wins clearly on CPU (benchmarks/).
SPARSE_MAX_FRACTION = 0.25


class Frontend(nn.Module):
    """Sparse coding frontend: x (B, 3, H, W) float in [0, 1] → (B, 3, H, W) float in [0, 1].

    With the identity decoder the output is the codes (B, n_atoms, H', W').

    Args:
        encoder, decoder: the two halves (see :class:`Encoder`, :class:`Decoder`).
        fast: how the decoder's first layer is computed. ``None`` (default) picks the sparse
            path (:mod:`scfront.frontend.sparse`) whenever the codes are sparse (top-T
            keeps at most a quarter of the atoms); ``False`` always uses the dense reference
            layer; ``True`` always uses the sparse path (ConfigError where it does not apply).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, fast: bool | None = None) -> None:
        super().__init__()
        if not decoder.is_identity and decoder.convs[0].in_channels != encoder.n_atoms:
            raise ConfigError(f"decoder expects {decoder.convs[0].in_channels} code channels, "
                              f"the encoder has {encoder.n_atoms} atoms")
        self.encoder = encoder
        self.decoder = decoder
        if fast and (encoder.top_t is None or decoder.first is None):
            raise ConfigError("the sparse fast path needs top-T in the encoder and a decoder that "
                              "starts with a transposed convolution")
        self.fast = fast

    def _sparse(self) -> bool:
        # Decided from the architecture only, never from the BPDA rule or the grad mode, so that
        # the forward output is bit-identical whatever backward rule an attack picks.
        if self.fast is not None:
            return self.fast
        enc = self.encoder
        if enc.top_t is None or self.decoder.first is None:
            return False
        return enc.top_t <= SPARSE_MAX_FRACTION * enc.n_atoms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) float in [0, 1] → reconstruction (B, 3, H, W) float in [0, 1]."""
        if self._sparse():
            return self.decoder(self.encoder.sparse_codes(x))
        return self.decoder(self.encoder(x))


def build_frontend(cfg: FrontendConfig, image_size: int, dictionary: Dictionary | None = None,
                   generator: torch.Generator | None = None, fast: bool | None = None) -> Frontend:
    """The frontend described by ``cfg`` for images of ``image_size``².

    ``dictionary`` defaults to ``scfront.dictionary.get_dictionary(cfg.dictionary)`` (a shipped
    name or an .npz path). ``cfg.enabled`` is the caller's business: this builds the frontend
    the section describes either way. ``generator`` drives the noise/dropout variants.

    Raises:
        ConfigError: an image size smaller than the dictionary's patches or not tiled by them at
            ``cfg.stride``, or ``cfg.top_t`` above the dictionary's number of atoms (the bounds a
            :class:`~scfront.config.FrontendConfig` cannot check without the dictionary).
    """
    if dictionary is None:
        from scfront.dictionary import get_dictionary

        dictionary = get_dictionary(cfg.dictionary)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < dictionary.patch_size:
        raise ConfigError(f"image_size must be an integer ≥ the patch size {dictionary.patch_size}, "
                          f"got {image_size!r}")
    if cfg.stride >= 1 and (image_size - dictionary.patch_size) % cfg.stride:
        raise ConfigError(f"{image_size}x{image_size} images are not tiled by the dictionary's "
                          f"{dictionary.patch_size}x{dictionary.patch_size} patches at frontend.stride "
                          f"{cfg.stride}: image_size - {dictionary.patch_size} must be a multiple of the stride")
    if cfg.top_t is not None and cfg.top_t > dictionary.n_atoms:  # the range the config cannot know
        raise ConfigError(f"frontend.top_t must be at most the {dictionary.n_atoms} atoms of the dictionary "
                          f"{cfg.dictionary!r} (or none), got {cfg.top_t}")
    encoder = Encoder(
        dictionary, stride=cfg.stride, top_t=cfg.top_t, beta=cfg.beta, assumed_eps=cfg.assumed_eps,
        activation=cfg.activation, noise_gamma_train=cfg.noise_gamma_train,
        noise_gamma_test=cfg.noise_gamma_test, dropout_p=cfg.dropout_p,
        learnable=cfg.learnable_dictionary, bpda=BPDA(cfg.bpda_top_u, cfg.bpda_steepness),
        generator=generator,
    )
    decoder = build_decoder(cfg.decoder, dictionary.n_atoms, image_size, dictionary.patch_size, cfg.stride)
    return Frontend(encoder, decoder, fast=fast)
