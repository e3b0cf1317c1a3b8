"""The training loop in-process: it learns, writes its run folder, and guards the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import scfront
from scfront.cli import main as cli_main
from scfront.config import dumps_config
from scfront.errors import ConfigError
from scfront.models import create_model
from scfront.training.loop import LOG_FILE, SUMMARY_FILE, attach_generator, train

from tiny_run import TINY, tiny_config  # type: ignore[import-not-found]


def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path: Path) -> None:
    config = tiny_config("natural", ("train.epochs=3", "train.lr_max=0.1"))
    summary = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    history = [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[2]["loss"] < history[1]["loss"] < history[0]["loss"]
    assert history[-1]["train_accuracy"] > history[0]["train_accuracy"]
    assert set(history[0]) >= {"loss", "train_accuracy", "monitor_accuracy", "lr", "seconds"}
    assert 0 <= summary["monitor_accuracy"] <= 1 and summary["monitor_images"] == 64
    assert json.loads((run / SUMMARY_FILE).read_text())["history"] == history
    model = scfront.load(run)
    x = torch.rand(4, 3, 16, 16)
    assert model(x).shape == (4, 10) and not model.training
    # Running the finished command again reports the same summary without training.
    assert train(config, run, progress=False) == summary


def test_cli_trains_pgd_at(tmp_path: Path, capsys) -> None:
    args = ["train", "--preset", "smoke", "--recipe", "pgd_at", "--out", str(tmp_path / "pgd"),
            "--no-progress"]
    for item in [*TINY, "train.attack_steps=1", "train.epochs=1"]:
        args += ["--set", item]
    assert cli_main(args) == 0
    assert "pgd_at" in capsys.readouterr().out
    card = json.loads((tmp_path / "pgd" / "model_card.json").read_text())
    assert card["training"]["method"] == "pgd_at" and card["training"]["epochs"] == 1


def test_refuses_a_run_folder_of_another_configuration(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(dumps_config(tiny_config()))
    with pytest.raises(ConfigError, match=r"another configuration \(train.lr_max: 0.05 -> 0.07"):
        train(tiny_config(extra=("train.lr_max=0.07",)), run, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a scfront run folder"):
        train(tiny_config(), other, progress=False)


def test_device_and_threads_are_not_part_of_a_runs_identity(tmp_path: Path) -> None:
    on_gpu = tiny_config(extra=("train.device='cuda'",))
    run = tmp_path / "run"
    summary = train(tiny_config(), run, progress=False)
    (run / "config.toml").write_text(dumps_config(on_gpu))  # as if it had been trained on a GPU
    assert train(tiny_config(), run, progress=False) == summary  # reused, not retrained
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.toml").write_text(dumps_config(on_gpu))
    with pytest.raises(ConfigError, match="unfinished run started with --device cuda"):
        train(tiny_config(), partial, progress=False)
    threads = tmp_path / "threads"
    threads.mkdir()
    (threads / "config.toml").write_text(dumps_config(tiny_config(extra=("train.num_threads=1",))))
    assert train(tiny_config(), threads, progress=False)["epochs"] == tiny_config().train.epochs


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert cli_main(["train", "--preset", "smoke", "--config", str(tmp_path / "x.toml"),
                     "--recipe", "natural", "--out", str(tmp_path / "r")]) == 2
    assert "--recipe applies to presets" in capsys.readouterr().err


def test_attach_generator_reaches_random_layers() -> None:
    model = create_model("resnet32_dropout", filters=8)
    gen = torch.Generator()
    assert attach_generator(model, gen) == 1
    assert model.stem_dropout.generator is gen


def test_defense_with_learnable_noisy_frontend(tmp_path: Path) -> None:
    from scfront.dictionary import get_dictionary

    config = tiny_config("defense", ("train.epochs=1", "frontend.learnable_dictionary=true",
                                     "frontend.noise_gamma_train=100.0"))
    run = tmp_path / "defense"
    train(config, run, progress=False)
    card = json.loads((run / "model_card.json").read_text())
    named = get_dictionary("cifar10")
    # The card names the dictionary the run started from; the weights carry the learned atoms.
    assert card["dictionary"]["sha256"] == named.sha256() and card["dictionary"]["learnable"]
    model = scfront.load(run)
    assert not torch.equal(model.encoder.atoms.detach(), named.atoms)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 10)


def test_a_finished_run_without_its_resume_checkpoints_is_not_retrained(tmp_path: Path) -> None:
    import shutil

    config = tiny_config()
    first = train(config, tmp_path, progress=False)
    # results/ keeps finished runs without checkpoint.json and checkpoints/
    (tmp_path / "checkpoint.json").unlink()
    shutil.rmtree(tmp_path / "checkpoints")
    weights = (tmp_path / "model.safetensors").stat().st_mtime_ns
    again = train(config, tmp_path, progress=False)
    assert again == first
    assert (tmp_path / "model.safetensors").stat().st_mtime_ns == weights
    assert not (tmp_path / "checkpoint.json").exists()
    # a run with more epochs in the same folder is another configuration: refused, not reused
    with pytest.raises(ConfigError):
        train(tiny_config(extra=("train.epochs=3",)), tmp_path, progress=False)
