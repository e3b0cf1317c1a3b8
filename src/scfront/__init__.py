"""scfront: the sparse coding frontend defense (Bakiskan, Cekic, Sezer, Madhow, 2021).

Subpackages follow the pipeline: ``data`` -> ``dictionary`` -> ``frontend`` -> ``models`` ->
``training`` -> ``attacks`` -> ``evaluation``. Heavy modules are imported lazily so that
``import scfront`` and ``scfront --help`` stay fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load", "load_pretrained"]


def load(path: Any, **kwargs: Any) -> Any:
    """A model saved by scfront (classifier or defended), in eval mode, input [0, 1]."""
    from scfront.models.saving import load_model

    return load_model(path, **kwargs)


def load_pretrained(name: str = "cifar10_cpu", **kwargs: Any) -> Any:
    """The defended model shipped inside the package (see ``scfront/assets/models``)."""
    from scfront.models.saving import load_pretrained as _load_pretrained

    return _load_pretrained(name, **kwargs)
