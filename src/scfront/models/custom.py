"""``scfront.defend``: put the sparse coding frontend in front of any classifier, in one call.

The frontend is built by the same function as every scfront model
(:func:`~scfront.frontend.build_frontend`, from a :class:`~scfront.config.FrontendConfig`) and
joined to the classifier by :func:`~scfront.models.build.defended_model`, so a defended user
network behaves exactly as the defended ResNet-32: a :class:`~scfront.models.defended.DefendedModel`
whose encoder carries the BPDA rule given here (changed for an attack with
``scfront.frontend.use_bpda(model, BPDA(...))`` or an attack's ``bpda=``), whose input is
checked, and which any attack library can use as it is.

To train such a model with ``scfront train`` (and save and reload it), name the classifier's
factory instead: ``--classifier package.module:factory`` (docs/architecture.md, "Defend your own
classifier").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from scfront.config import DecoderName, FrontendConfig
from scfront.errors import ConfigError
from scfront.frontend.bpda import BPDA
from scfront.models.build import defended_model
from scfront.validate import positive_int

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary
    from scfront.models.defended import DefendedModel

__all__ = ["defend"]

_PAPER = FrontendConfig(enabled=True)  # the paper's settings (docs/method.md §2, §6)


def _dictionary(dictionary: "str | Path | Dictionary") -> tuple["Dictionary", str]:
    from scfront.dictionary.core import Dictionary
    from scfront.dictionary.registry import get_dictionary

    if isinstance(dictionary, Dictionary):
        return dictionary, str(dictionary.meta.get("source", "a Dictionary object"))
    if isinstance(dictionary, (str, Path)):
        return get_dictionary(dictionary), str(dictionary)
    raise ConfigError(f"dictionary must be a shipped dictionary's name, an .npz path or a "
                      f"scfront.dictionary.Dictionary, got a {type(dictionary).__name__}")


def _image_size(dictionary: "Dictionary", name: str, image_size: int | None) -> int:
    if image_size is not None:
        return image_size
    recorded = dictionary.meta.get("image_size")
    if isinstance(recorded, bool) or not isinstance(recorded, int):
        raise ConfigError(f"the dictionary {name!r} records no image size; pass image_size= (the side of "
                          "the square images the model takes)")
    return recorded


def defend(classifier: nn.Module, *, dictionary: "str | Path | Dictionary" = "cifar10",
           decoder: DecoderName | str = DecoderName.SMALL, top_t: int | None = _PAPER.top_t,
           stride: int | None = None, image_size: int | None = None, beta: float = _PAPER.beta,
           assumed_eps: float = _PAPER.assumed_eps, activation: bool = _PAPER.activation,
           bpda: BPDA = BPDA(_PAPER.bpda_top_u, _PAPER.bpda_steepness),
           noise_gamma_train: float = _PAPER.noise_gamma_train,
           noise_gamma_test: float = _PAPER.noise_gamma_test, dropout_p: float = _PAPER.dropout_p,
           learnable_dictionary: bool = _PAPER.learnable_dictionary,
           num_classes: int | None = None) -> "DefendedModel":
    """``classifier`` behind a new sparse coding frontend: x (N, 3, S, S) in [0, 1] → logits (N, K).

    The frontend's decoder is freshly initialised (PyTorch's default initialisation): the
    defended model is meant to be trained, decoder and classifier together (docs/method.md §5).

    Args:
        classifier: any ``nn.Module`` mapping what the decoder produces, (N, 3, S, S) images in
            [0, 1] (for ``decoder="identity"``: the codes (N, n_atoms, S', S')), to (N, K)
            logits. It normalises its input itself. The frontend is put on its device.
        dictionary: a shipped dictionary ("cifar10", "cifar10_fast", "imagenette", "dct4", ...),
            an .npz path, or a :class:`~scfront.dictionary.Dictionary`.
        decoder: "small" (default; the CPU presets' and the shipped model's), "default" (the
            paper's), "deep", "resize" or "identity" (docs/method.md §3).
        top_t: coefficients kept per location, 1 to the number of atoms, or None (no top-T).
        stride: step of the patch grid; None: half the patch size (the paper's 2 for 4x4
            CIFAR-10 atoms, 4 for 8x8 Imagenette atoms).
        image_size: S, the side of the images; None: the size the dictionary was learned on
            (its ``meta["image_size"]``: 32 for "cifar10", 160 for "imagenette").
        beta, assumed_eps, activation: the ternary activation (threshold ``beta * assumed_eps``
            in units of each atom's L1 norm; ``activation=False`` keeps the raw top-T values).
        bpda: the model's own backward rules (default: the paper's U = 30, s = 4), used by
            attacks that do not choose others.
        noise_gamma_train, noise_gamma_test, dropout_p: the noisy and dropout variants
            (docs/method.md §2.2, §2.4); 0 by default.
        learnable_dictionary: train the atoms too (an ablation).
        num_classes: K, when known: the classifier's output is checked against it.

    Returns:
        A :class:`~scfront.models.defended.DefendedModel` in the classifier's train/eval mode,
        its input checked ((N, 3, S, S) float images in [0, 1]).

    Raises:
        ConfigError: a setting out of its range (the ranges of :class:`~scfront.config.FrontendConfig`),
            ``top_t`` above the dictionary's atoms, an image size the patches do not tile, or a
            classifier that fails on, or does not return (N, K) logits for, the decoder's output
            (the message says what it was given).
    """
    if not isinstance(classifier, nn.Module):
        raise ConfigError(f"defend needs the classifier as a torch.nn.Module, got a {type(classifier).__name__}")
    if not isinstance(bpda, BPDA):
        raise ConfigError(f"bpda must be a scfront.frontend.BPDA value, got a {type(bpda).__name__}")
    atoms, name = _dictionary(dictionary)
    size = _image_size(atoms, name, image_size)
    settings = FrontendConfig(
        enabled=True, dictionary=name, stride=max(1, atoms.patch_size // 2) if stride is None else stride,
        top_t=top_t, beta=beta, assumed_eps=assumed_eps, activation=activation,
        noise_gamma_train=noise_gamma_train, noise_gamma_test=noise_gamma_test, dropout_p=dropout_p,
        learnable_dictionary=learnable_dictionary, decoder=decoder, bpda_top_u=bpda.top_u,
        bpda_steepness=bpda.steepness)
    from scfront.frontend.frontend import build_frontend

    if num_classes is not None:
        positive_int(num_classes, "num_classes", 2)
    model = defended_model(build_frontend(settings, size, dictionary=atoms), classifier, num_classes)
    # The classifier's own submodules keep their modes (e.g. a frozen BatchNorm in eval mode).
    model.training = classifier.training
    model.frontend.train(classifier.training)
    return model
