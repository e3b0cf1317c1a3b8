"""Ablation configs differ from the base only in what each ablates; one shared budget; smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scfront.config import to_dict
from scfront.errors import ConfigError
from scfront.models import build_model
from scfront.reproduction.ablations import (ABLATION_BUDGET, T_SWEEP, ablation_config, ablations,
                                            base_config, run_ablations, select)


def _flat(config) -> dict[str, object]:
    return {f"{s}.{k}": v for s, section in to_dict(config).items() for k, v in section.items()}


def test_each_ablation_changes_only_its_own_settings() -> None:
    base = base_config("cpu")
    flat_base = _flat(base)
    for key, value in ABLATION_BUDGET.items():  # the shared budget is in the base
        assert flat_base[key] == value
    names = [a.name for a in ablations()]
    assert names[1:1 + len(T_SWEEP)] == [f"T={t}" for t in T_SWEEP]
    for ablation in ablations():
        flat = _flat(ablation_config(base, ablation))
        changed = {k for k in flat if flat[k] != flat_base[k]}
        assert changed <= set(ablation.overrides), ablation.name
        for key in ("train.epochs", "train.lr_max", "data.train_limit", "evaluation.n_images",
                    "evaluation.steps", "evaluation.restarts", "train.seed"):
            assert flat[key] == flat_base[key]  # identical budget for every ablation
    by_name = {a.name: _flat(ablation_config(base, a)) for a in ablations()}
    for t in T_SWEEP:
        assert (by_name[f"T={t}"]["frontend.top_t"], by_name[f"T={t}"]["frontend.bpda_top_u"]) == (t, 2 * t)
    assert by_name["no-activation"]["frontend.activation"] is False
    assert by_name["no-topT-no-activation"]["frontend.top_t"] == "none"
    assert by_name["no-decoder"]["frontend.decoder"] == "identity"
    assert by_name["no-decoder"]["model.classifier"] == "resnet32_codes"
    assert by_name["learnable-dictionary"]["frontend.learnable_dictionary"] is True
    assert by_name["dct"]["frontend.dictionary"] == "dct4"


def test_every_ablation_builds() -> None:
    base = base_config("smoke")
    for ablation in ablations():
        model = build_model(ablation_config(base, ablation))
        assert sum(p.numel() for p in model.parameters()) > 0


def test_unknown_ablation_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown ablation"):
        select(["T=3"])


@pytest.mark.slow
def test_ablations_smoke_run(data_root: Path, tmp_path: Path) -> None:
    tiny = ["data.train_limit=64", "data.monitor_images=16", "train.batch_size=32", "evaluation.n_images=4",
            "evaluation.steps=2", "evaluation.batch_size=4"]
    rows = run_ablations("smoke", data_root, tmp_path, only=["T=2", "dct"], overrides=tiny, progress=False)
    assert [r["name"] for r in rows] == ["T=2", "dct"]
    for row in rows:
        res = json.loads((tmp_path / "eval" / row["name"] / "results.json").read_text())
        assert row["clean"] == res["clean_accuracy"] and row["pgd-linf"] <= row["clean"]
        config = (tmp_path / "models" / row["name"] / "config.toml").read_text()
        assert "train_limit = 64" in config
    assert "top_t = 2" in (tmp_path / "models" / "T=2" / "config.toml").read_text()
    assert (tmp_path / "plots" / "ablations.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    assert "T=2" in report and "dct" in report and "plots/ablations.png" in report
