"""scripts/at_comparison.py: two arms that differ in the frontend only, the same evaluation of
both, the transfer arm, the table."""

from __future__ import annotations

import json
import runpy
import shlex
from pathlib import Path

import pytest

from scfront.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "at_comparison.py"


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT))


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == flag]


def test_dry_run_trains_both_arms_and_evaluates_them_alike(script, capsys, tmp_path: Path) -> None:
    out = tmp_path / "atc"
    assert script["main"](["DATA", str(out), "--dry-run", "--set", "train.seed=3"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert not out.exists()  # nothing run, nothing written
    trains = [a for a in lines if "train" in a]
    assert [a[a.index("--recipe") + 1] for a in trains] == ["defense_fast_at", "fast_at"]
    assert all(_option(a, "--set") == ["train.seed=3"] and _option(a, "--preset") == ["cpu"] for a in trains)
    evaluations = [a for a in lines if "evaluate" in a]
    assert [Path(_option(a, "--out")[0]).relative_to(out / "eval").as_posix() for a in evaluations] == [
        "defended/autoattack", "defended/square", "plain/autoattack", "plain/square", "transfer"]
    defended, defended_square, plain, plain_square, transfer = evaluations
    for argv in (defended, plain):
        assert _option(argv, "--column") == ["autoattack=@autoattack"]
    for argv in (defended_square, plain_square):
        assert _option(argv, "--column") == ["square=square:queries=5000"] and "--no-checks" in argv
    for argv in evaluations:
        assert _option(argv, "--n-images") == ["1000"] and _option(argv, "--seed") == ["0"]
    assert "bpda-variants" in _option(defended, "--checks")[0].split(",")
    assert "bpda-variants" not in _option(plain, "--checks")[0].split(",")
    assert _option(defended, "--checks")[0].startswith("default")
    (column,) = _option(transfer, "--column")
    assert column == f"transfer=transfer:source={out / 'models' / 'plain'}:source_attack=pgd-linf"
    assert transfer[transfer.index("evaluate") + 1] == str(out / "models" / "defended")
    assert script["main"](["DATA", str(out), "--dry-run", "--no-transfer", "--skip-check", "bpda-variants"]) == 0
    printed = capsys.readouterr().out
    assert "transfer=" not in printed and "bpda-variants" not in printed


def test_arms_that_differ_in_more_than_the_frontend_are_refused(script, capsys, monkeypatch,
                                                                tmp_path: Path) -> None:
    assert script["main"](["DATA", str(tmp_path), "--dry-run", "--set", "frontend.enabled=false"]) == 2
    assert "must differ in frontend.enabled only" in capsys.readouterr().err
    original = script["load_preset"]

    def skewed(preset, dataset, overrides, recipe):  # a preset whose plain arm trains longer
        return original(preset, dataset, [*overrides, *(["train.epochs=3"] if recipe == "fast_at" else [])],
                        recipe=recipe)

    monkeypatch.setitem(script["check_arms"].__globals__, "load_preset", skewed)
    with pytest.raises(ConfigError, match="they differ in frontend.enabled, train.epochs$"):
        script["check_arms"]("smoke", [])
    monkeypatch.undo()
    assert script["main"](["DATA", str(tmp_path), "--n-images", "0", "--dry-run"]) == 2
    assert capsys.readouterr().err == "at_comparison: error: --n-images must be >= 1, got 0\n"
    assert script["main"]([str(tmp_path), str(tmp_path / "out"), "--table-only"]) == 2
    assert "run the commands first" in capsys.readouterr().err


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_table_and_plot_from_the_run_folders(script, capsys, tmp_path: Path) -> None:
    checks = {"large-eps": {"passed": True, "detail": "ok"},
              "bpda-variants": {"passed": False, "detail": "identity rule breaks 3 more"}}
    for k, arm in enumerate(("defended", "plain")):
        stop = {"epochs_trained": 5, "model_epoch": 3, "reason": "fell"} if arm == "plain" else \
            {"epochs_trained": 7, "model_epoch": 7, "reason": None}
        _write(tmp_path / "models" / arm / "summary.json",
               {"defended": arm == "defended", "epochs": 7, "seconds": 600.0 * (k + 1), "early_stop": stop})
        # per image: -2 misclassified, -1 robust, else the attack that broke it
        aa = [-1, -1, 0, -2] if arm == "defended" else [-1, 1, -2, -2]
        sq = [-1, 0, -1, -2] if arm == "defended" else [0, -1, -2, -2]
        for column, broken_by in (("autoattack", aa), ("square", sq)):
            _write(tmp_path / "eval" / arm / column / "results.json", {
                "n_images": 4, "clean_accuracy": 0.75 - 0.25 * k,
                "columns": {column: {"accuracy": sum(b == -1 for b in broken_by) / 4}},
                "checks": ({} if column == "square" else
                           checks if arm == "defended" else {"large-eps": checks["large-eps"]}),
                "indices": [3, 1, 2, 0], "broken_by": broken_by})
    _write(tmp_path / "eval" / "transfer" / "results.json", {
        "n_images": 4, "clean_accuracy": 0.75, "indices": [3, 1, 2, 0],
        "columns": {"transfer": {"accuracy": 0.5, "attacks": ["transfer"]}}})
    assert script["main"](["DATA", str(tmp_path), "--preset", "smoke", "--table-only"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Budget: preset smoke, 2 epochs of FGSM-RS (step 1.25 eps, eps 8/255)")
    assert lines[2] == ("| arm | recipe | epochs (model / trained / planned) | clean | autoattack | square "
                        "| worst case | bpda-variants | binarization | train minutes |")
    assert lines[4] == ("| frontend + ResNet-32, FGSM-RS | defense_fast_at | 7 / 7 / 7 | 75.0 % | 50.0 % | 50.0 % "
                        "| 25.0 % | FAIL | - | 10.0 |")  # worst case: only the first image is robust to both
    assert lines[5] == "| ResNet-32, FGSM-RS | fast_at | 3 / 5 / 7 | 50.0 % | 25.0 % | 25.0 % | 0.0 % | - | - | 20.0 |"
    assert "clean 75.0 %, robust 50.0 % on 4 images" in lines[7]
    assert "- plain: stopped after epoch 5, model of epoch 3: fell" in lines
    assert "- defended bpda-variants: FAIL: identity rule breaks 3 more" in lines
    assert (tmp_path / "clean_vs_robust.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["arms"]["plain"]["model_epoch"] == 3 and saved["transfer"]["accuracy"] == 0.5
    # different test images for the two arms: refused
    square = tmp_path / "eval" / "plain" / "square" / "results.json"
    _write(square, {**json.loads(square.read_text()), "indices": [0, 1, 2, 3]})
    assert script["main"](["DATA", str(tmp_path), "--preset", "smoke", "--table-only"]) == 2
    assert "different test images" in capsys.readouterr().err
