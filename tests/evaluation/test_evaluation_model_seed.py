"""A randomised model's own randomness in an evaluation: its recorded seed, reseeded per unit,
apart from the attacks' streams (so batch order, resuming and shards do not change its draws)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scfront.cli import main
from scfront.config import load_preset
from scfront.errors import ConfigError
from scfront.evaluation import EvalData, build_suite, evaluate
from scfront.models import build_model, save_model


def _noisy_model() -> torch.nn.Module:
    """The smoke defense with test-time noise (random in eval mode), seeded initial weights."""
    config = load_preset("smoke", "cifar10", recipe="defense_noisy_test")
    return build_model(config, generator=torch.Generator().manual_seed(0)).eval(), config


def _data(n: int = 4) -> EvalData:
    g = torch.Generator().manual_seed(1)
    return EvalData(torch.arange(n), torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (n,), generator=g))


def _strip(value):
    """``value`` without its wall times (every key that names seconds), recursively."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def test_randomised_model_is_reseeded_per_unit_and_recorded(tmp_path: Path) -> None:
    model, _ = _noisy_model()
    data = _data()
    attacks = build_suite(["fgsm", "pgd-linf:steps=2"])
    whole = evaluate(model, data, attacks, tmp_path / "whole", batch_size=2, checks=False, progress=False,
                     model_seed=3)
    spec = json.loads((tmp_path / "whole" / "spec.json").read_text())
    assert spec["model_seed"] == 3
    # the model's draws in between (another forward pass) change nothing: each unit reseeds it
    model(torch.rand(2, 3, 32, 32))
    again = evaluate(model, data, attacks, tmp_path / "again", batch_size=2, checks=False, progress=False,
                     model_seed=3)
    assert _strip(again) == _strip(whole)
    # a seed is recorded by default for a random model, and another seed is another evaluation
    evaluate(model, data, attacks, tmp_path / "default", batch_size=2, checks=False, progress=False)
    assert json.loads((tmp_path / "default" / "spec.json").read_text())["model_seed"] == 0
    with pytest.raises(ConfigError, match="holds another evaluation"):
        evaluate(model, data, attacks, tmp_path / "whole", batch_size=2, checks=False, progress=False,
                 model_seed=4)


def test_deterministic_models_record_no_seed_and_refuse_one(tmp_path: Path) -> None:
    config = load_preset("smoke", "cifar10", recipe="natural")
    model = build_model(config, generator=torch.Generator().manual_seed(0)).eval()
    attacks = build_suite(["fgsm"])
    evaluate(model, _data(2), attacks, tmp_path / "a", checks=False, progress=False)
    assert "model_seed" not in json.loads((tmp_path / "a" / "spec.json").read_text())  # as before
    with pytest.raises(ConfigError, match="draws no randomness at test time"):
        evaluate(model, _data(2), attacks, tmp_path / "b", checks=False, progress=False, model_seed=1)


def test_cli_ensemble_and_model_seed(tmp_path: Path, data_root: Path) -> None:
    model, config = _noisy_model()
    run = tmp_path / "run"
    save_model(model, run, config)
    common = [str(run), "--data-root", str(data_root), "--attacks", "fgsm", "--n-images", "2",
              "--no-checks", "--no-progress"]
    assert main(["evaluate", *common, "--ensemble", "3", "--model-seed", "5", "--out", str(tmp_path / "e")]) == 0
    spec = json.loads((tmp_path / "e" / "spec.json").read_text())
    assert spec["model_seed"] == 5 and spec["model"] == "run (ensemble of 3)"
    assert main(["evaluate", *common, "--ensemble", "0", "--out", str(tmp_path / "z")]) == 2
