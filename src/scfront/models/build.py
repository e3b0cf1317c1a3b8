"""Build the network a :class:`~scfront.config.RunConfig` describes.

``frontend.enabled = false``: the classifier alone. Otherwise the defended model
``DefendedModel(frontend, classifier)``; with the identity decoder the classifier must read codes
(``resnet32_codes``) and gets as many input channels as the dictionary has atoms.

``model.classifier`` is a registered name or ``package.module:factory`` (:mod:`scfront.models.factory`):
a user's classifier, imported, called with ``num_classes=`` when it takes it, and checked with
one forward pass on what it will be given (the decoder's reconstruction, the codes of the
identity decoder, or the images themselves without a frontend). :func:`defended_model` joins a
frontend and any classifier; :func:`scfront.defend` uses it with the same frontend builder
(:func:`~scfront.frontend.build_frontend`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scfront.config import DecoderName, RunConfig
from scfront.errors import ConfigError
from scfront.models.factory import check_classifier, classifier_from_factory, is_factory_spec, module_device
from scfront.models.init import initialize_
from scfront.models.inputs import InputSpec, attach_input_check
from scfront.models.registry import InputKind, create_model, list_models, model_info

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary
    from scfront.frontend.frontend import Frontend
    from scfront.models.defended import DefendedModel

__all__ = ["build_model", "defended_model", "frontend_output"]


def _codes_classifiers() -> str:
    return ", ".join(n for n in list_models() if model_info(n).input_kind is InputKind.CODES)


def frontend_output(frontend: "Frontend") -> tuple[tuple[int, int, int], str]:
    """What ``frontend`` hands its classifier per image: ``((C, H, W), "images")`` for a
    reconstruction, ``((n_atoms, H', W'), "codes")`` for the identity decoder."""
    encoder, decoder = frontend.encoder, frontend.decoder
    if decoder.is_identity:
        side = (decoder.image_size - encoder.patch_size) // encoder.stride + 1
        return (encoder.n_atoms, side, side), "codes"
    return (encoder.channels, decoder.image_size, decoder.image_size), "images"


def defended_model(frontend: "Frontend", classifier: nn.Module, num_classes: int | None = None, *,
                   name: str = "the classifier") -> "DefendedModel":
    """``DefendedModel(frontend, classifier)`` after checking that ``classifier`` maps the
    frontend's output (:func:`frontend_output`) to (N, K) logits, K = ``num_classes`` when given
    (:func:`~scfront.models.factory.check_classifier`). The frontend is moved to the classifier's
    device.

    Raises:
        ConfigError: the classifier does not accept the frontend's output or returns something
            other than logits; the message says what it was given.
    """
    from scfront.models.defended import DefendedModel

    frontend = frontend.to(module_device(classifier))
    shape, what = frontend_output(frontend)
    source = ("the identity decoder's codes" if what == "codes" else
              f"the decoder's reconstruction of the {shape[1]}x{shape[2]} input images")
    check_classifier(classifier, shape, num_classes, name=name, what=what, source=source)
    return DefendedModel(frontend, classifier)


def _user_classifier(config: RunConfig, frontend: "Frontend | None") -> nn.Module:
    """The classifier ``package.module:factory`` of ``config``, alone (its input checked) or
    behind ``frontend``, checked on what it is given."""
    target, num_classes, size = config.model.classifier, config.model.num_classes, config.data.image_size
    classifier = classifier_from_factory(target, num_classes)
    name = f"classifier {target!r}"
    if frontend is not None:
        return defended_model(frontend, classifier, num_classes, name=name)
    check_classifier(classifier, (3, size, size), num_classes, name=name,
                     source=f"the {size}x{size} images (data.image_size)")
    return attach_input_check(classifier, InputSpec(channels=3, size=(size, size), images=True))


def build_model(config: RunConfig, dictionary: "Dictionary | None" = None,
                generator: torch.Generator | None = None) -> nn.Module:
    """The classifier, or frontend + classifier, of ``config`` (train mode, on the CPU).

    Args:
        config: uses ``model`` (classifier name or ``package.module:factory``, classes),
            ``frontend`` and ``data.image_size``.
        dictionary: the frontend's atoms; default: the dictionary ``config.frontend.dictionary``
            names (a shipped name or an .npz path). Ignored without a frontend.
        generator: if given, every parameter is drawn from it (:func:`initialize_`), so the
            same seed gives the same initial weights; otherwise PyTorch's default initialisation.
            A factory's classifier is re-initialised the same way (its convolutions, linear and
            normalisation layers, and whatever its modules' ``init_parameters(generator)`` draw).

    Returns:
        An ``nn.Module`` mapping (N, 3, H, W) images in [0, 1] to (N, num_classes) logits, its
        input checked (:mod:`scfront.models.inputs`): H = W = ``config.data.image_size``.

    Raises:
        ConfigError: an unknown classifier, a classifier that does not fit the decoder, a
            factory that cannot be imported or called or whose module does not map its input
            to (N, num_classes) logits, or a frontend setting that does not fit the dictionary
            (``frontend.top_t`` above its number of atoms, an image size smaller than its patches).
    """
    name = config.model.classifier
    num_classes = config.model.num_classes
    user = is_factory_spec(name)
    info = None if user else model_info(name)
    if not config.frontend.enabled:
        if user:
            model: nn.Module = _user_classifier(config, None)
        else:
            assert info is not None
            if info.input_kind is not InputKind.IMAGE:
                raise ConfigError(f"classifier {name!r} reads frontend codes; enable the frontend "
                                  "(frontend.enabled = true) with the identity decoder")
            model = create_model(name, num_classes=num_classes, image_size=config.data.image_size)
    else:
        from scfront.frontend.frontend import build_frontend
        from scfront.models.defended import DefendedModel

        frontend = build_frontend(config.frontend, config.data.image_size, dictionary=dictionary)
        if user:
            model = _user_classifier(config, frontend)
        else:
            assert info is not None
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
