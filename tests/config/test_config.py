"""Typed run configuration: presets, round trips, overrides and strict validation."""

from __future__ import annotations

import dataclasses

import pytest

from scfront.config import (
    PRESETS,
    RECIPES,
    DatasetName,
    DecoderName,
    RunConfig,
    Schedule,
    TrainMethod,
    dumps_config,
    load_config,
    load_preset,
    loads_config,
    save_config,
)
from scfront.errors import ConfigError


@pytest.mark.parametrize("dataset", ["cifar10", "imagenette"])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_preset_round_trips(tmp_path, dataset, preset, recipe):
    config = load_preset(preset, dataset, recipe=recipe)
    assert config.data.dataset is DatasetName(dataset)
    path = save_config(config, tmp_path / "config.toml")
    assert load_config(path) == config
    assert loads_config(dumps_config(config)) == config


def test_recipes_change_what_the_paper_says():
    defense = load_preset("paper", "cifar10")
    assert defense.frontend.enabled and defense.frontend.decoder is DecoderName.DEFAULT
    assert (defense.train.epochs, defense.train.batch_size, defense.train.lr_max) == (70, 64, 0.02)
    natural = load_preset("paper", "cifar10", recipe="natural")
    assert not natural.frontend.enabled and natural.train.lr_max == 0.05
    pgd = load_preset("paper", "cifar10", recipe="pgd_at")
    assert pgd.train.method is TrainMethod.PGD_AT
    trades = load_preset("paper", "cifar10", recipe="trades")
    assert trades.train.schedule is Schedule.STEP and trades.train.lr_milestones == (35,)
    assert trades.train.trades_beta == 6.0


def test_overrides_are_parsed_as_toml_values():
    config = load_preset("smoke", overrides=[
        "train.epochs=3", "frontend.top_t=none", "evaluation.attacks=[\"pgd-linf\", \"apgd-ce\"]",
        "frontend.decoder=deep", "train.lr_max=0.1",
    ])
    assert config.train.epochs == 3
    assert config.frontend.top_t is None
    assert config.evaluation.attacks == ("pgd-linf", "apgd-ce")
    assert config.frontend.decoder is DecoderName.DEEP
    assert config.train.lr_max == 0.1
    # Mapping form and RunConfig.replace agree with the string form.
    assert RunConfig().replace({"train.epochs": 3}).train.epochs == 3


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown key"),
    ("trian.epochs=3", "unknown key"),
    ("train.epochs=three", "expected an integer"),
    ("train.epochs=2.5", "expected an integer"),
    ("frontend.activation=1", "expected true or false"),
    ("frontend.decoder=huge", "is not one of"),
    ("train.lr_milestones=5", "expected a list"),
    ("epochs=3", "section.key"),
    ("train.epochs", "section.key=value"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_preset("smoke", overrides=[override])


def test_unknown_keys_in_files_are_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 2\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(path)
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_unknown_preset_and_recipe():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_preset("huge")
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_preset("cpu", recipe="magic")


def test_configs_are_frozen():
    config = load_preset("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 1  # type: ignore[misc]
