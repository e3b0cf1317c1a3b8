"""Classifiers (a registry filled by a decorator), the defended model, import and saving.

- :func:`create_model` / :func:`list_models` / :func:`model_info`: registered classifiers
  ("resnet32", "resnet32_wide", "preact_resnet101", "efficientnet_b0", and the ablation
  networks "resnet32_codes" and "resnet32_dropout"), all taking input in [0, 1].
- :func:`import_original_resnet32`: the original implementation's checkpoints, read safely.
- :func:`build_model`: the classifier or frontend + classifier a :class:`~scfront.config.RunConfig`
  describes (``model.classifier`` a registered name or ``package.module:factory``).
- :func:`defend` (``scfront.defend``): the frontend in front of any classifier module.
- :func:`save_model` / :func:`load_model` / :func:`load_pretrained`: safetensors + model card;
  :func:`export_model`: a run's model alone (optionally float16 parameters), as a package ships it.
- :func:`load` (``scfront.load``): any model spec (a saved folder, an original ``.pt``,
  ``package.module:factory``, a shipped name); :func:`resolve_spec` says which kind a spec is.

Names are imported lazily (PEP 562) so that ``import scfront.models`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_EXPORTS = {
    "ModelInfo": "scfront.models.registration",
    "InputKind": "scfront.models.registration",
    "create_model": "scfront.models.registry",
    "list_models": "scfront.models.registry",
    "model_info": "scfront.models.registry",
    "register_model": "scfront.models.registration",
    "count_parameters": "scfront.models.registry",
    "import_original_resnet32": "scfront.models.original",
    "build_model": "scfront.models.build",
    "defend": "scfront.models.custom",
    "save_model": "scfront.models.saving",
    "export_model": "scfront.models.saving",
    "load_model": "scfront.models.saving",
    "load_pretrained": "scfront.models.saving",
    "list_pretrained": "scfront.models.saving",
    "load": "scfront.models.loader",
    "resolve_spec": "scfront.models.loader",
    "ModelSpec": "scfront.models.loader",
    "SpecKind": "scfront.models.loader",
    "prepare_for_attack": "scfront.models.fast",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scfront.models.build import build_model
    from scfront.models.custom import defend
    from scfront.models.fast import prepare_for_attack
    from scfront.models.loader import ModelSpec, SpecKind, load, resolve_spec
    from scfront.models.original import import_original_resnet32
    from scfront.models.registration import InputKind, ModelInfo, register_model
    from scfront.models.registry import count_parameters, create_model, list_models, model_info
    from scfront.models.saving import export_model, list_pretrained, load_model, load_pretrained, save_model


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
