"""The adversarial-training recipes of issue 19: the controlled comparison's two arms differ in
``frontend.enabled`` only, and each recipe is what its preset comment says."""

from __future__ import annotations

import pytest

from scfront.config import PRESETS, TrainMethod, flat_settings, load_preset


def _differences(a, b) -> list[str]:
    fa, fb = flat_settings(a), flat_settings(b)
    return sorted(key for key in fa.keys() | fb.keys() if fa.get(key) != fb.get(key))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_two_arms_differ_only_in_the_frontend(preset: str) -> None:
    defended = load_preset(preset, "cifar10", recipe="defense_fast_at")
    plain = load_preset(preset, "cifar10", recipe="fast_at")
    assert _differences(defended, plain) == ["frontend.enabled"]
    assert defended.frontend.enabled and not plain.frontend.enabled


@pytest.mark.parametrize("preset", PRESETS)
def test_the_at_recipes_change_only_the_training_of_the_defense(preset: str) -> None:
    defense = load_preset(preset, "cifar10")
    for recipe, method in (("defense_pgd_at", TrainMethod.PGD_AT), ("defense_fast_at", TrainMethod.FGSM_RS)):
        config = load_preset(preset, "cifar10", recipe=recipe)
        assert config.train.method is method and config.frontend.enabled
        assert all(key.startswith("train.") for key in _differences(defense, config)), recipe
        # the model's own BPDA rules, which the inner maximisation uses, are the paper's
        assert (config.frontend.bpda_top_u, config.frontend.bpda_steepness) == (30, 4.0)
    fast = load_preset(preset, "cifar10", recipe="defense_fast_at").train
    assert fast.fgsm_alpha == 1.25 and fast.early_stop_images > 0 and fast.schedule.value == "onecycle"
    assert (fast.early_stop_steps, fast.early_stop_rel_step, fast.early_stop_drop) == (5, 0.25, 0.2)


def test_new_fields_default_to_the_previous_behaviour() -> None:
    for recipe in ("defense", "natural", "pgd_at", "trades"):
        train = load_preset("cpu", "cifar10", recipe=recipe).train
        assert train.early_stop_images == 0  # no check, no held-out images
    natural = load_preset("cpu", "imagenette", recipe="natural")
    assert natural.train.early_stop_images == 0 and natural.train.method is TrainMethod.NATURAL
