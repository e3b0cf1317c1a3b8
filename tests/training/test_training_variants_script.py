"""scripts/variants_table.py: one budget for every row, EOT for the random rows only, the table."""

from __future__ import annotations

import json
import runpy
import shlex
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "variants_table.py"


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT))


def test_dry_run_prints_one_budget_for_every_row(script, capsys, tmp_path: Path) -> None:
    out = tmp_path / "vt"
    assert script["main"](["DATA", str(out), "--preset", "cpu", "--dry-run", "--set", "train.seed=1"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert not out.exists()  # nothing run, nothing written
    trains = [argv for argv in lines if "train" in argv]
    evaluations = [argv for argv in lines if "evaluate" in argv]
    assert [a[a.index("--recipe") + 1] for a in trains] == [
        "defense", "defense_unsupervised", "defense_noisy", "defense_noisy_test", "defense_dropout"]
    for argv in trains:  # the cpu defense's 14 epochs, the same override, for every row
        sets = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
        assert sets[:2] == ["train.epochs=14", "train.seed=1"]
    assert [a[a.index("--set", a.index("train.seed=1")) + 1] for a in trains[1:2]] == ["train.autoencoder_epochs=5"]
    eot = {Path(a[a.index("evaluate") + 1]).name: "--eot-samples" in a for a in evaluations}
    assert eot == {"supervised": False, "unsupervised": False, "noisy": False, "noisy_test": True, "dropout": True}
    assert all(a[a.index("--attacks") + 1] == "pgd-linf,apgd-ce" for a in evaluations)


def test_bad_arguments_are_one_line_errors(script, capsys, tmp_path: Path) -> None:
    assert script["main"](["DATA", str(tmp_path), "--epochs", "0", "--dry-run"]) == 2
    assert capsys.readouterr().err == "variants_table: error: --epochs must be >= 1, got 0\n"
    assert script["main"](["DATA", str(tmp_path), "--set", "train.epoch=3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("variants_table: error: ") and "unknown key" in err and err.count("\n") == 1
    assert script["main"]([str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert script["main"]([str(tmp_path), str(tmp_path / "out"), "--table-only"]) == 2
    assert "run the commands first" in capsys.readouterr().err


def test_table_reads_the_summaries_and_results(script, capsys, tmp_path: Path) -> None:
    rows = script["plan_rows"]("smoke", [])
    for k, row in enumerate(rows):
        (tmp_path / "models" / row.name).mkdir(parents=True)
        (tmp_path / "eval" / row.name).mkdir(parents=True)
        summary = {"seconds": 600.0 * (k + 1)}
        if row.name == "unsupervised":
            summary["reconstruction"] = {"mse": 0.0042, "psnr": 23.77, "test_images": 10000}
        (tmp_path / "models" / row.name / "summary.json").write_text(json.dumps(summary))
        results = {"clean_accuracy": 0.8 - 0.1 * k, "worst_case_accuracy": 0.1 * k,
                   "attacks": [{"name": "pgd-linf", "robust_accuracy": 0.05 * k}]}
        (tmp_path / "eval" / row.name / "results.json").write_text(json.dumps(results))
    assert script["main"](["DATA", str(tmp_path), "--preset", "smoke", "--table-only"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| variant | recipe | ensemble | EOT | clean | pgd-linf | worst case |")
    assert lines[3] == ("| unsupervised (autoencoder stage 1) | defense_unsupervised | - | - | 70.0 % | 5.0 % "
                        "| 10.0 % | 0.00420 | 23.77 | 20.0 |")
    assert lines[5].startswith("| noisy, test-time noise + ensemble | defense_noisy_test | 10 | yes | 50.0 % |")
    assert len(lines) == 7
