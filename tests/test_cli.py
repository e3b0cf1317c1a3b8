"""The `scfront` command: help texts and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scfront.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "scfront.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("scfront ")


def test_train_options_resolve_like_evaluate_options():
    from scfront.config import DatasetName
    from scfront.training.cli import resolve_training_config

    args = build_parser().parse_args(["train", "--preset", "smoke", "--dataset", "imagenette", "--recipe",
                                      "pgd_at", "--set", "train.attack_eps=4/255", "--out", "runs/x"])
    assert args.dataset is DatasetName.IMAGENETTE  # converted once, by the parser
    config = resolve_training_config(args)
    assert config.data.dataset is DatasetName.IMAGENETTE
    assert config.train.attack_eps == 4 / 255


@pytest.mark.parametrize("dataset", ["synthetic", "mnist"])
def test_unknown_datasets_are_usage_errors(dataset, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", dataset, "--out", "runs/x"])
    assert exc.value.code == 2
    assert f"invalid choice '{dataset}' (choose from cifar10, imagenette)" in capsys.readouterr().err



def test_evaluate_takes_a_factory_and_its_weights(tmp_path, monkeypatch, capsys, data_root):
    """``scfront evaluate package.module:factory --weights FILE``: the loader behind the command."""
    import json

    import torch
    from safetensors.torch import save_file

    site = tmp_path / "site"
    site.mkdir()
    (site / "scfront_cli_factory.py").write_text(
        "from torch import nn\n\n\ndef make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "scfront_cli_factory", raising=False)
    torch.manual_seed(0)  # test-only: the weights' init
    trained = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "w.safetensors"))
    out = tmp_path / "eval"
    code = main(["evaluate", "scfront_cli_factory:make", "--weights", str(tmp_path / "w.safetensors"),
                 "--data-root", str(data_root), "--attacks", "fgsm", "--n-images", "8", "--no-checks",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "scfront_cli_factory:make"
    from scfront.config import DataConfig
    from scfront.data import eval_subset_indices, load_dataset

    test = load_dataset(DataConfig(), data_root, "test")
    index = eval_subset_indices(len(test), 8, 0)
    with torch.no_grad():
        correct = (trained(test.images[index].float() / 255).argmax(1) == test.labels[index]).float().mean()
    assert results["clean_accuracy"] == pytest.approx(float(correct))
