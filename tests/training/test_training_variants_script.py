"""scripts/variants_table.py: one budget for every row, reused runs checked, EOT and its two
comparisons for the random rows only, the tables from per-image results."""

from __future__ import annotations

import json
import runpy
import shlex
from pathlib import Path

import pytest

from scfront.config import load_preset, save_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "variants_table.py"
ATTACKS = ["pgd-linf", "apgd-ce", "apgd-dlr", "square"]


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT))


def _dry(script, capsys, argv: list[str]) -> list[list[str]]:
    assert script["main"](argv + ["--dry-run"]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_dry_run_prints_one_budget_for_every_row_and_eot_only_where_random(script, capsys, tmp_path: Path) -> None:
    out = tmp_path / "vt"
    lines = _dry(script, capsys, ["DATA", str(out), "--preset", "cpu", "--set", "train.seed=1"])
    assert not out.exists()  # nothing run, nothing written
    trains = [argv for argv in lines if "train" in argv]
    evaluations = {Path(_flag(a, "--out")).name: a for a in lines if "evaluate" in a}
    assert [_flag(a, "--recipe") for a in trains] == [
        "defense", "defense_unsupervised", "defense_noisy", "defense_noisy_test", "defense_dropout"]
    for argv in trains:  # the cpu defense's 14 epochs, the same override, for every row
        sets = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
        assert sets[:2] == ["train.epochs=14", "train.seed=1"]
    assert [a[a.index("--set", a.index("train.seed=1")) + 1] for a in trains[1:2]] == ["train.autoencoder_epochs=5"]
    assert list(evaluations) == ["supervised", "unsupervised", "noisy", "noisy_test", "noisy_test_no_eot",
                                 "noisy_test_eot_2x", "dropout", "dropout_no_eot", "dropout_eot_2x"]
    full = "pgd-linf,apgd-ce,apgd-dlr,square:queries=5000"
    for name, argv in evaluations.items():
        random = name.startswith(("noisy_test", "dropout"))
        images = "100" if name.endswith("_eot_2x") else "200" if random else "1000"
        attacks = full if not name.endswith(("_no_eot", "_eot_2x")) else "pgd-linf,apgd-ce,apgd-dlr"
        eot = "4" if name.endswith("_eot_2x") else None if name.endswith("_no_eot") or not random else "2"
        assert (_flag(argv, "--n-images"), _flag(argv, "--attacks"), _flag(argv, "--eot-samples")) == (
            images, attacks, eot), name
    assert _flag(evaluations["dropout_no_eot"], "--checks") == "randomness"
    assert "--no-checks" in evaluations["dropout_eot_2x"] and "--checks" not in evaluations["dropout"]
    # --rows: only that row's steps
    rows = _dry(script, capsys, ["DATA", str(out), "--rows", "dropout"])
    assert len(rows) == 4 and all("dropout" in _flag(a, "--out") for a in rows)


def _run(tmp: Path, recipe: str, overrides: list[str]) -> Path:
    run = tmp / recipe
    run.mkdir(parents=True)
    save_config(load_preset("cpu", "cifar10", overrides, recipe=recipe), run / "config.toml")
    (run / "summary.json").write_text(json.dumps({"seconds": 60.0}))
    return run


def test_a_reused_run_must_have_the_rows_configuration(script, capsys, tmp_path: Path) -> None:
    same = _run(tmp_path / "a", "defense", ["train.epochs=14", "train.num_threads=1"])
    lines = _dry(script, capsys, ["DATA", str(tmp_path / "vt"), "--reuse", f"supervised={same}"])
    assert [_flag(a, "--recipe") for a in lines if "train" in a][0] == "defense_unsupervised"
    assert [a[a.index("evaluate") + 1] for a in lines if "evaluate" in a][0] == str(same)
    other = _run(tmp_path / "b", "defense", ["train.epochs=3"])
    assert script["main"](["DATA", str(tmp_path / "vt"), "--reuse", f"supervised={other}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "not trained like the other rows: train.epochs: 3 (row: 14)" in err and err.count("\n") == 1
    for bad, message in ((f"nosuchrow={same}", "ROW=DIR"), (f"supervised={tmp_path}", "not a finished training run")):
        assert script["main"](["DATA", str(tmp_path / "vt"), "--reuse", bad, "--dry-run"]) == 2
        assert message in capsys.readouterr().err


def test_bad_arguments_are_one_line_errors(script, capsys, tmp_path: Path) -> None:
    assert script["main"](["DATA", str(tmp_path), "--epochs", "0", "--dry-run"]) == 2
    assert capsys.readouterr().err == "variants_table: error: --epochs must be >= 1, got 0\n"
    assert script["main"](["DATA", str(tmp_path), "--set", "train.epoch=3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("variants_table: error: ") and "unknown key" in err and err.count("\n") == 1
    for argv, message in ((["--random-images", "300", "--n-images", "200"], "--doubling-images <= --random-images"),
                          (["--rows", "supervised,nosuch"], "--rows takes names among"),
                          (["--attacks", "square"], "has no gradient attack")):
        assert script["main"](["DATA", str(tmp_path), *argv, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert script["main"]([str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert script["main"]([str(tmp_path), str(tmp_path / "out"), "--table-only"]) == 2
    assert "run the commands first" in capsys.readouterr().err


def _results(broken_by: list[int], attacks: list[str], checks: dict | None = None) -> dict:
    robust = sum(1 for b in broken_by if b == -1)
    return {"broken_by": broken_by, "attacks": [{"name": a} for a in attacks],
            "worst_case_accuracy": robust / len(broken_by), "checks": checks or {},
            "clean_seconds": 6.0, "attack_seconds": 54.0, "check_seconds": 0.0}


def _write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_tables_come_from_the_per_image_results(script, capsys, tmp_path: Path) -> None:
    rows = script["plan_rows"]("smoke", [])
    ok = {"randomness": {"passed": True, "detail": "fine"}}
    for k, row in enumerate(rows):
        summary = {"seconds": 600.0 * (k + 1)}
        if row.name == "unsupervised":
            summary["reconstruction"] = {"mse": 0.0042, "psnr": 23.77, "test_images": 10000}
        _write(tmp_path / "models" / row.name / "summary.json", summary)
    # deterministic rows: 10 images; the first 4 of the reference: wrong, robust, broken by 0 and by 3
    reference = [-2, -1, 0, 3, -1, -1, 1, 2, -1, -1]
    _write(tmp_path / "eval" / "supervised" / "results.json", _results(reference, ATTACKS, ok))
    for name in ("unsupervised", "noisy"):
        _write(tmp_path / "eval" / name / "results.json", _results([-1] * 10, ATTACKS, ok))
    for name in ("noisy_test", "dropout"):  # 4 images with EOT; the failing randomness check without it
        _write(tmp_path / "eval" / name / "results.json",
               _results([-1, 1, -1, 3], ATTACKS, {"randomness": {"passed": True, "detail": "EOT on"},
                                                  "large-eps": {"passed": False, "detail": "2 of 8 robust"}}))
        _write(tmp_path / "eval" / f"{name}_no_eot" / "results.json",
               _results([-1, -1, -1, 0], ATTACKS[:3], {"randomness": {"passed": False, "detail": "random"}}))
        _write(tmp_path / "eval" / f"{name}_eot_2x" / "results.json", _results([0, 0], ATTACKS[:3]))
    argv = ["DATA", str(tmp_path), "--preset", "smoke", "--n-images", "10", "--random-images", "4",
            "--doubling-images", "2", "--table-only"]
    assert script["main"](argv) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| variant | recipe |"))
    assert lines[header].startswith("| variant | recipe | ensemble | EOT samples | images | clean | pgd-linf "
                                    "| + apgd-ce | + apgd-dlr | + square | checks |")
    # the reference: 9 of 10 clean; after pgd 8 (one broken by attack 0), after apgd-ce 7, ...
    assert lines[header + 2].startswith("| supervised, deterministic (reference) | defense | - | - | 10 | 90.0 % "
                                        "| 80.0 % | 70.0 % | 60.0 % | 50.0 % | pass |")
    assert lines[header + 3] == ("| unsupervised (autoencoder stage 1) | defense_unsupervised | - | - | 10 | 100.0 % "
                                 "| 100.0 % | 100.0 % | 100.0 % | 100.0 % | pass | 0.00420 | 23.77 | 20.0 | 1.0 |")
    assert lines[header + 5].startswith("| noisy, test-time noise + ensemble | defense_noisy_test | 10 | 2 | 4 | "
                                        "100.0 % | 100.0 % | 75.0 % | 75.0 % | 50.0 % | FAIL: large-eps |")
    # the reference on the randomised rows' 4 images: wrong, robust, broken by 0, broken by 3
    assert lines[header + 7].startswith("| supervised, deterministic (reference), first 4 images | defense | - | - "
                                        "| 4 | 75.0 % | 50.0 % | 50.0 % | 50.0 % | 25.0 % |")
    eot = next(line for line in lines if line.startswith("| noisy, test-time noise + ensemble | 4 |"))
    # after the gradient attacks: without EOT 3 of 4, with EOT 3 of 4; first 2: 1 of 2 vs 0 of 2
    assert eot == ("| noisy, test-time noise + ensemble | 4 | 75.0 % | 75.0 % | FAIL | 2 | 2: 50.0 % | 4: 0.0 % "
                   "| 50.0 points | NO |")
    assert "- dropout + ensemble: large-eps: 2 of 8 robust" in lines
    data = json.loads((tmp_path / "variants.json").read_text())
    assert data["eot"]["dropout"]["enough"] is False and data["rows"]["noisy"]["n"] == 10
    assert (tmp_path / "clean_vs_worst.png").stat().st_size > 0 and (tmp_path / "table.md").is_file()
