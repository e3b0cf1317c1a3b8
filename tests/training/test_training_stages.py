"""Two-stage training (the unsupervised defense): stage plan, logs, frozen parts, resuming inside
and between the stages, and the recipes of the defense's variants in every preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scfront.config import PRESETS, RECIPES, dumps_config, load_preset, loads_config
from scfront.errors import ConfigError
from scfront.models.build import build_model
from scfront.training import loop
from scfront.training.loop import LOG_FILE, SUMMARY_FILE, derive_seed, train
from scfront.training.stages import PLOT_FILE, Stage, StagePlan

from tiny_run import TINY  # type: ignore[import-not-found]

# Synthetic 16x16 images, 4 batches per epoch: 2 autoencoder epochs, then 2 classifier epochs.
TWO_STAGE = [*TINY, "train.autoencoder_epochs=2", "train.autoencoder_lr_max=0.5"]


def _config(extra: tuple[str, ...] = ()):
    return load_preset("smoke", "cifar10", [*TWO_STAGE, *extra], recipe="defense_unsupervised")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]


def test_stage_plan() -> None:
    plan = StagePlan(2, 3)
    assert [plan.stage_of(e) for e in range(5)] == [Stage.AUTOENCODER] * 2 + [Stage.CLASSIFIER] * 3
    assert [plan.stage_epoch(e) for e in range(5)] == [0, 1, 0, 1, 2]
    assert [plan.checkpoint_stage(k) for k in (0, 1, 2, 3)] == [Stage.AUTOENCODER] * 3 + [Stage.CLASSIFIER]
    one = StagePlan(0, 3)
    assert not one.two_stage and {one.stage_of(e) for e in range(3)} == {Stage.JOINT}
    with pytest.raises(ValueError):
        plan.stage_of(5)
    tc = _config().train
    stage1 = plan.schedule(tc, Stage.AUTOENCODER)
    assert (stage1.epochs, stage1.lr_max, stage1.schedule.value) == (2, 0.5, "onecycle")
    assert plan.schedule(tc, Stage.CLASSIFIER) is tc


def test_two_stages_in_one_run_folder(tmp_path: Path) -> None:
    config = _config()
    run = tmp_path / "run"
    summary = train(config, run, progress=False)
    log = _log(run)
    assert [(r["epoch"], r["stage"]) for r in log] == [(1, "autoencoder"), (2, "autoencoder"),
                                                       (3, "classifier"), (4, "classifier")]
    for r in log[:2]:
        assert "train_accuracy" not in r and r["reconstruction_mse"] > 0
        assert r["reconstruction_psnr"] == pytest.approx(-10 * math.log10(r["reconstruction_mse"]))
    assert log[1]["loss"] < log[0]["loss"]  # the decoder learns to reconstruct
    assert 0 <= log[3]["train_accuracy"] <= 1 and log[3]["monitor_accuracy"] is not None
    assert (run / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = summary["reconstruction"]
    assert summary["autoencoder_epochs"] == 2 and summary["epochs"] == 2
    assert rec["test_images"] == 512 and rec["psnr"] == pytest.approx(-10 * math.log10(rec["mse"]))
    assert json.loads((run / "model_card.json").read_text())["metrics"]["reconstruction"] == rec


def _checkpointed_weights(run: Path) -> dict[str, torch.Tensor]:
    """The model state in the run's checkpoint."""
    record = json.loads((run / "checkpoint.json").read_text())
    tensors = load_file(str(run / record["tensors"]))
    return {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}


def _interrupt_at(config, run: Path, epoch: int, batch: int) -> None:
    """Train ``run`` and interrupt it at batch ``batch`` of global epoch ``epoch`` (0-based), i.e.
    after ``batch`` optimiser steps of that epoch, like a kill."""
    current = {"epoch": -1}
    real_epoch, real_rate = loop._Run.epoch, loop.learning_rate

    def epoch_spy(self, index, progress):
        current["epoch"] = index
        return real_epoch(self, index, progress)

    def rate_spy(tc, stage_epoch, step, steps):
        if (current["epoch"], step) == (epoch, batch):
            raise KeyboardInterrupt
        return real_rate(tc, stage_epoch, step, steps)

    loop._Run.epoch, loop.learning_rate = epoch_spy, rate_spy
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, run, progress=False)
    finally:
        loop._Run.epoch, loop.learning_rate = real_epoch, real_rate


def test_resumes_inside_and_between_the_stages(tmp_path: Path) -> None:
    config = _config()
    straight = tmp_path / "straight"
    train(config, straight, progress=False)
    killed = tmp_path / "killed"
    _interrupt_at(config, killed, 1, 2)  # inside stage 1: checkpoint after epoch 1
    assert [r["epoch"] for r in _log(killed)] == [1]
    _interrupt_at(config, killed, 2, 0)  # between the stages: checkpoint of stage 1's last epoch
    assert [r["stage"] for r in _log(killed)] == ["autoencoder", "autoencoder"]
    after_stage1 = _checkpointed_weights(killed)
    _interrupt_at(config, killed, 3, 1)  # inside stage 2
    assert [r["epoch"] for r in _log(killed)] == [1, 2, 3]
    summary = train(config, killed, progress=False)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    # Stage 1 leaves the classifier at its initial weights, stage 2 the frontend as stage 1 left it.
    initial = build_model(config, generator=torch.Generator().manual_seed(derive_seed(config.train.seed, "init")))
    for key, value in initial.state_dict().items():
        if key.startswith("classifier.") and "running_" not in key and "num_batches" not in key:
            assert torch.equal(after_stage1[key], value), key
        if key.startswith("frontend."):
            assert torch.equal(b[key], after_stage1[key]), key
    assert any(not torch.equal(initial.state_dict()[k], b[k]) for k in b if k.startswith("frontend.decoder"))
    reference = json.loads((straight / SUMMARY_FILE).read_text())
    assert summary["reconstruction"] == reference["reconstruction"]
    assert [r["loss"] for r in summary["history"]] == [r["loss"] for r in reference["history"]]


def test_one_stage_runs_have_no_stage_records(tmp_path: Path) -> None:
    config = load_preset("smoke", "cifar10", [*TINY, "train.epochs=1"], recipe="defense")
    summary = train(config, tmp_path / "run", progress=False)
    assert "stage" not in summary["history"][0] and "reconstruction" not in summary
    assert not (tmp_path / "run" / PLOT_FILE).exists()


@pytest.mark.parametrize("override, message", [
    ("frontend.enabled=false", "frontend.enabled = false"),
    ("frontend.decoder=identity", "identity decoder"),
    ("frontend.learnable_dictionary=true", "learnable_dictionary"),
    ("train.autoencoder_epochs=-1", "train.autoencoder_epochs must be"),
    ("train.autoencoder_lr_max=0", "train.autoencoder_lr_max must be"),
])
def test_two_stage_settings_are_checked(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config((override,))


@pytest.mark.parametrize("dataset", ["cifar10", "imagenette"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_the_variant_recipes(dataset: str, preset: str) -> None:
    defense = load_preset(preset, dataset)
    assert {"defense_unsupervised", "defense_noisy", "defense_noisy_test", "defense_dropout"} <= set(RECIPES)
    unsup = load_preset(preset, dataset, recipe="defense_unsupervised")
    assert unsup.train.autoencoder_epochs >= 1 and unsup.frontend == defense.frontend
    noisy = load_preset(preset, dataset, recipe="defense_noisy").frontend
    assert (noisy.noise_gamma_train, noisy.noise_gamma_test, noisy.dropout_p) == (100.0, 0.0, 0.0)
    noisy_test = load_preset(preset, dataset, recipe="defense_noisy_test")
    assert (noisy_test.frontend.noise_gamma_train, noisy_test.frontend.noise_gamma_test) == (100.0, 100.0)
    dropout = load_preset(preset, dataset, recipe="defense_dropout")
    assert dropout.frontend.dropout_p == 0.95 and dropout.frontend.noise_gamma_train == 0.0
    assert noisy_test.model.ensemble_samples == dropout.model.ensemble_samples == 10
    # apart from the variant's own settings, each is the defense
    for variant in (unsup, noisy_test, dropout):
        assert variant.data == defense.data and variant.evaluation == defense.evaluation
        assert variant.model.classifier == defense.model.classifier
    # the other recipes keep the defaults of the new fields: their runs are what they were
    for recipe in ("defense", "natural", "pgd_at", "trades", "defense_noisy"):
        config = load_preset(preset, dataset, recipe=recipe)
        assert config.train.autoencoder_epochs == 0
        assert (config.model.ensemble_samples, config.model.random_seed) == (1, 0)


@pytest.mark.parametrize("recipe", ["defense", "natural"])
def test_configs_saved_before_the_new_fields_still_match(recipe: str) -> None:
    config = load_preset("cpu", "imagenette", recipe=recipe)
    text = "\n".join(line for line in dumps_config(config).splitlines()
                     if not line.startswith(("autoencoder_", "ensemble_samples", "random_seed")))
    assert loads_config(text) == config  # a run folder written by the earlier code resumes
