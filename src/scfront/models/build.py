"""Build the network a :class:`~scfront.config.RunConfig` describes.

``frontend.enabled = false``: the classifier alone. Otherwise the defended model
``DefendedModel(frontend, classifier)``; with the identity decoder the classifier must read codes
(``resnet32_codes``) and gets as many input channels as the dictionary has atoms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scfront.config import DecoderName, RunConfig
from scfront.errors import ConfigError
from scfront.models.init import initialize_
from scfront.models.registry import InputKind, create_model, list_models, model_info

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary


def _codes_classifiers() -> str:
    return ", ".join(n for n in list_models() if model_info(n).input_kind is InputKind.CODES)


def build_model(config: RunConfig, dictionary: "Dictionary | None" = None,
                generator: torch.Generator | None = None) -> nn.Module:
    """The classifier, or frontend + classifier, of ``config`` (train mode, on the CPU).

    Args:
        config: uses ``model`` (classifier name, classes), ``frontend`` and ``data.image_size``.
        dictionary: the frontend's atoms; default: the dictionary ``config.frontend.dictionary``
            names (a shipped name or an .npz path). Ignored without a frontend.
        generator: if given, every parameter is drawn from it (:func:`initialize_`), so the
            same seed gives the same initial weights; otherwise PyTorch's default initialisation.

    Returns:
        An ``nn.Module`` mapping (N, 3, H, W) images in [0, 1] to (N, num_classes) logits, its
        input checked (:mod:`scfront.models.inputs`): H = W = ``config.data.image_size``.

    Raises:
        ConfigError: an unknown classifier, a classifier that does not fit the decoder, or a
            frontend setting that does not fit the dictionary (``frontend.top_t`` above its
            number of atoms, an image size smaller than its patches).
    """
    name = config.model.classifier
    info = model_info(name)
    num_classes = config.model.num_classes
    if not config.frontend.enabled:
        if info.input_kind is not InputKind.IMAGE:
            raise ConfigError(f"classifier {name!r} reads frontend codes; enable the frontend "
                              "(frontend.enabled = true) with the identity decoder")
        model: nn.Module = create_model(name, num_classes=num_classes, image_size=config.data.image_size)
    else:
        from scfront.frontend.frontend import build_frontend
        from scfront.models.defended import DefendedModel

        frontend = build_frontend(config.frontend, config.data.image_size, dictionary=dictionary)
        identity = config.frontend.decoder is DecoderName.IDENTITY
        if identity and info.input_kind is not InputKind.CODES:
            raise ConfigError(f"the identity decoder feeds codes to the classifier; {name!r} reads "
                              f"images (choose one of: {_codes_classifiers()})")
        if not identity and info.input_kind is InputKind.CODES:
            raise ConfigError(f"classifier {name!r} reads codes; it needs frontend.decoder = "
                              "\"identity\"")
        # The defended model checks the input; its classifier reads the frontend's output.
        if identity:
            classifier = create_model(name, num_classes=num_classes, input_check=False,
                                      in_channels=frontend.encoder.n_atoms)
        else:
            classifier = create_model(name, num_classes=num_classes, input_check=False)
        model = DefendedModel(frontend, classifier)
    if generator is not None:
        initialize_(model, generator)
    return model
