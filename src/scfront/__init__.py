"""scfront: the sparse coding frontend defense (Bakiskan, Cekic, Sezer, Madhow, 2021).

Subpackages follow the pipeline: ``data`` -> ``dictionary`` -> ``frontend`` -> ``models`` ->
``training`` -> ``attacks`` -> ``evaluation``. Heavy modules are imported lazily so that
``import scfront`` and ``scfront --help`` stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scfront.version import __version__

if TYPE_CHECKING:
    from torch import nn

__all__ = ["__version__", "defend", "evaluate", "load", "load_pretrained"]


def load(spec: str | Path, **kwargs: Any) -> "nn.Module":
    """The model ``spec`` names, in eval mode, input (N, C, H, W) float in [0, 1].

    ``spec`` is a folder saved by scfront (or its ``model.safetensors``), an original ResNet-32
    ``.pt`` checkpoint, ``"package.module:factory"`` (``weights=FILE`` loads a state_dict into
    it), or a shipped model's name such as ``"cifar10_cpu"``. Keyword arguments (``weights``,
    ``device``, ``dictionary``) are those of :func:`scfront.models.loader.load`.
    """
    from scfront.models.loader import load as _load

    return _load(spec, **kwargs)


def defend(classifier: "nn.Module", **settings: Any) -> "nn.Module":
    """``classifier`` (any ``nn.Module`` from the decoder's (N, 3, S, S) images in [0, 1] to
    logits) behind a new sparse coding frontend: the defended model, its BPDA rules set with
    ``scfront.frontend.use_bpda`` as for scfront's own. Keyword settings (``dictionary="cifar10"``,
    ``decoder="small"``, ``top_t=15``, ``stride``, ``image_size``, ``bpda``, ...) are those of
    :func:`scfront.models.custom.defend`.
    """
    from scfront.models.custom import defend as _defend

    return _defend(classifier, **settings)


def evaluate(model: "nn.Module | str | Path", images: Any, labels: Any, attacks: Any = "@autoattack",
             **kwargs: Any) -> Any:
    """Attack ``model`` (an ``nn.Module`` or anything :func:`load` accepts) on ``images``
    ((N, C, H, W) uint8, or float in [0, 1]) with labels (N,), and return the typed results
    (:class:`scfront.evaluation.api.Evaluation`: clean, per-attack and worst-case accuracy,
    per-example ``broken_by``, checks, seconds). Keyword arguments (``eps=8/255``,
    ``norm="Linf"``, ``out=None``, ``checks``, ``device``, ...) are those of
    :func:`scfront.evaluation.api.evaluate`.
    """
    from scfront.evaluation.api import evaluate as _evaluate

    return _evaluate(model, images, labels, attacks, **kwargs)


def load_pretrained(name: str = "cifar10_cpu", **kwargs: Any) -> "nn.Module":
    """The model shipped inside the package under ``name`` (see ``scfront/assets/models``),
    in eval mode; ``device=`` as for :func:`load`."""
    from scfront.models.saving import load_pretrained as _load_pretrained

    return _load_pretrained(name, **kwargs)
