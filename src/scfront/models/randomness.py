"""A model's own randomness: which layers draw, whether inference is random, and its seed.

scfront's random layers (the encoder's noise and dropout, docs/method.md §2.2 and §2.4, and
:class:`~scfront.models.layers.SeededDropout`) draw from the ``torch.Generator`` held in their
``generator`` attribute. This module is the one place that finds and replaces those generators:

- :func:`attach_generator`: every random layer of a model draws from one given generator
  (training attaches the one derived from ``train.seed``, whose state each checkpoint stores);
- :func:`seed_model`: a fresh generator keyed by a seed and a purpose, attached to every random
  layer. :func:`~scfront.models.saving.load_model` (hence ``scfront.load``) calls
  ``seed_model(model, config.model.random_seed)``, so loading the same folder twice gives the
  same noise sequence; set the seed with ``--set model.random_seed=N`` when training, or call
  ``seed_model(model, N)`` on a loaded model.
- :func:`is_randomized`: whether the model's *eval-mode* forward pass draws at all (a model
  declaring ``randomized`` is believed; otherwise its layers say so).

The model's streams are keyed ``stable_seed("model-randomness", seed, *parts)``: a different
prefix from every attack stream (:func:`scfront.evaluation.spec.unit_generators`, keyed by the
evaluation seed, the attack and the image), so the model's noise and the attacks' random starts
never share a stream, whatever the two seeds are. An evaluation that wants results independent
of resuming and sharding reseeds the model per unit of work, e.g.
``seed_model(model, model_seed, "unit", position, attack_name, batch)``.
"""

from __future__ import annotations

import torch
from torch import nn

from scfront.sampling import stable_seed

__all__ = ["MODEL_STREAM", "attach_generator", "is_randomized", "model_generator", "random_layers",
           "seed_model"]

MODEL_STREAM = "model-randomness"  # the first part of every model stream's key


def random_layers(model: nn.Module) -> list[nn.Module]:
    """The submodules of ``model`` that draw from a ``generator`` attribute (a
    ``torch.Generator`` or ``None``: torch's default), in ``model.modules()`` order."""
    return [m for m in model.modules()
            if hasattr(m, "generator") and (m.generator is None or isinstance(m.generator, torch.Generator))]


def attach_generator(model: nn.Module, generator: torch.Generator) -> int:
    """Make every random layer of ``model`` draw from ``generator``; returns how many there are
    (noise and dropout layers of the frontend and of the classifiers)."""
    layers = random_layers(model)
    for module in layers:
        module.generator = generator
    return len(layers)


def _draws_in_eval(module: nn.Module) -> bool:
    declared = getattr(module, "randomized", None)
    if isinstance(declared, bool):
        return declared
    p = getattr(module, "p", 0.0)  # SeededDropout
    return bool(getattr(module, "always_on", False)) and isinstance(p, float) and p > 0.0


def is_randomized(model: nn.Module) -> bool:
    """Whether ``model``'s eval-mode forward pass is random.

    A ``randomized`` bool attribute on ``model`` itself (e.g. :class:`~scfront.models.ensemble.Ensemble`)
    is its declaration; otherwise any submodule declaring ``randomized = True`` (the encoder with
    test-time noise or dropout) or an always-on dropout layer with p > 0 makes it random.
    Training-only noise (``noise_gamma_test = 0``) leaves the deployed model deterministic.
    """
    declared = getattr(model, "randomized", None)
    if isinstance(declared, bool):
        return declared
    return any(_draws_in_eval(m) for m in model.modules() if m is not model)


def model_generator(seed: int, *parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``stable_seed(MODEL_STREAM, seed, *parts)`` (63 bits)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        from scfront.errors import ConfigError

        raise ConfigError(f"a model's random seed must be an integer >= 0, got {seed!r}")
    key = stable_seed(MODEL_STREAM, seed, *parts) & ((1 << 63) - 1)
    return torch.Generator(device).manual_seed(key)


def seed_model(model: nn.Module, seed: int, *parts: object,
               device: torch.device | str | None = None) -> torch.Generator:
    """Give every random layer of ``model`` one fresh generator keyed by ``seed`` and ``parts``.

    The same (seed, parts) gives the same draws; the generator lives on ``device`` (default: the
    device of the model's first parameter or buffer, else the CPU). When every random layer
    already shares one generator on that device, that generator is reseeded in place, so copies
    of the model that share it (:func:`scfront.models.prepare_for_attack`) follow; otherwise a
    new one is attached. Returns the generator (also for a model without random layers, where
    nothing changes).
    """
    if device is None:
        tensor = next(iter(model.parameters()), None)
        if tensor is None:
            tensor = next(iter(model.buffers()), None)
        device = tensor.device if tensor is not None else torch.device("cpu")
    fresh = model_generator(seed, *parts, device=device)
    shared = {id(m.generator): m.generator for m in random_layers(model)}
    if len(shared) == 1:
        (current,) = shared.values()
        if current is not None and current.device == fresh.device:
            current.set_state(fresh.get_state())
            return current
    attach_generator(model, fresh)
    return fresh
