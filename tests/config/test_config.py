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

# Recipes the Imagenette presets do not define (adversarial training through the frontend, issue 19).
CIFAR10_ONLY = ("defense_pgd_at", "defense_fast_at", "fast_at")


@pytest.mark.parametrize("dataset", ["cifar10", "imagenette"])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_preset_round_trips(tmp_path, dataset, preset, recipe):
    if dataset == "imagenette" and recipe in CIFAR10_ONLY:
        with pytest.raises(ConfigError, match=f"defines no recipe '{recipe}'"):
            load_preset(preset, dataset, recipe=recipe)  # never the defense in its place
        return
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
    ("frontend.decoder=huge", "frontend.decoder must be one of 'default', .*got 'huge'"),
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


def test_fractions_are_numbers_in_overrides():
    config = load_preset("smoke", overrides=["train.attack_eps=8/255", "train.attack_step=1/255",
                                             "frontend.assumed_eps=4/255"])
    assert config.train.attack_eps == 8 / 255 and config.train.attack_step == 1 / 255
    assert config.frontend.assumed_eps == 4 / 255
    with pytest.raises(ConfigError, match="train.epochs: expected an integer, got 0.5"):
        load_preset("smoke", overrides=["train.epochs=1/2"])


def test_sections_built_in_python_are_converted_and_checked():
    from scfront.config import DataConfig, FrontendConfig, TrainConfig

    train = TrainConfig(method="pgd_at", schedule="step", lr_milestones=[10, 20], lr_max=1)
    assert train.method is TrainMethod.PGD_AT and train.schedule is Schedule.STEP
    assert train.lr_milestones == (10, 20) and isinstance(train.lr_max, float)
    assert DataConfig(dataset="synthetic").dataset is DatasetName.SYNTHETIC
    assert FrontendConfig(decoder="small", top_t="none").top_t is None
    assert RunConfig(train=train).train is train
    with pytest.raises(ConfigError, match="train.method must be one of 'natural', 'pgd_at', 'trades', 'fgsm_rs', got 'pgd'"):
        TrainConfig(method="pgd")
    with pytest.raises(ConfigError, match="data.image_size: expected an integer, got 32.0"):
        DataConfig(image_size=32.0)
    with pytest.raises(ConfigError, match="config.train: expected a table"):
        RunConfig(train="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("text, value", [
    ("8/255", 8 / 255), ("-1/4", -0.25), ("40", 40), ("0.075", 0.075), ("1e-3", 1e-3), ("5.", 5.0),
    ("True", True), ("false", False), ("none", None), ("None", None),
    ('["pgd-linf", "square"]', ["pgd-linf", "square"]), ('"quoted"', "quoted"),
    ("pgd_at", "pgd_at"), ("runs/a.pt", "runs/a.pt"), ("1/0", "1/0"), (" 7 ", 7),
])
def test_one_parser_for_command_line_values(text, value):
    from scfront.values import parse_value

    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_every_numeric_setting_has_a_documented_range():
    """A numeric field without a valid range (or missing from its section's docstring) fails."""
    import typing

    from scfront.config import (RANGES, DataConfig, EvalConfig, FrontendConfig, ModelConfig,
                                TrainConfig, _is_optional)

    sections = {"data": DataConfig, "frontend": FrontendConfig, "model": ModelConfig,
                "train": TrainConfig, "evaluation": EvalConfig}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = _is_optional(hints[f.name])[1]
            item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
            if item in (int, float):
                key = f"{section}.{f.name}"
                assert key in RANGES, f"{key} has no valid range"
                assert f.name in (cls.__doc__ or ""), f"{key} is not documented"
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                values = default if isinstance(default, tuple) else (default,)
                assert all(RANGES[key].contains(v) for v in values if v is not None), key


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "train.epochs must be >= 1, got -1"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.lr_max=-0.1", "train.lr_max must be > 0"),
    ("train.momentum=1.0", r"train.momentum must be in \[0, 1\)"),
    ("train.weight_decay=-1e-4", "train.weight_decay must be >= 0"),
    ("train.attack_eps=8", r"train.attack_eps must be in \(0, 1\]"),
    ("train.attack_steps=0", "train.attack_steps must be >= 1"),
    ("train.num_threads=0", "train.num_threads must be >= 1 or none"),
    ("train.device=gpu", "train.device must be a torch device"),
    ("frontend.top_t=0", "frontend.top_t must be >= 1 or none, got 0"),
    ("frontend.stride=0", "frontend.stride must be >= 1"),
    ("frontend.beta=0", "frontend.beta must be > 0"),
    ("frontend.noise_gamma_train=-1", "frontend.noise_gamma_train must be >= 0"),
    ("frontend.dropout_p=1", r"frontend.dropout_p must be in \[0, 1\)"),
    ("data.image_size=0", "data.image_size must be >= 1"),
    ("data.crop_padding=-1", "data.crop_padding must be >= 0"),
    ("data.monitor_images=-5", "data.monitor_images must be >= 0"),
    ("model.num_classes=1", "model.num_classes must be >= 2"),
    ("evaluation.n_images=0", "evaluation.n_images must be >= 1"),
    ("evaluation.attacks=[]", "evaluation.attacks must list at least one attack"),
])
def test_out_of_range_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_preset("cpu", overrides=[override])
