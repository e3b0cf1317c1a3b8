"""`scfront reproduce table1` at smoke scale on tiny reused models: files, table, consistency."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from repro_helpers import save_tiny_model  # type: ignore[import-not-found]

from scfront.attacks.blackbox.stored import load_adversarials
from scfront.cli import main
from scfront.config import load_preset
from scfront.evaluation.checks import resolve_selection
from scfront.reproduction.columns import table1_plan
from scfront.reproduction.table1 import TABLE1_CHECKS

REPO = Path(__file__).resolve().parents[2]

TINY_BUDGET = ["evaluation.n_images=4", "evaluation.steps=2", "evaluation.batch_size=4"]


@pytest.mark.slow
def test_table1_smoke_with_reused_models(data_root: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    natural = save_tiny_model(tmp_path / "natural_run", "natural")
    defense = save_tiny_model(tmp_path / "defense_run", "defense")
    out = tmp_path / "table1"
    argv = ["reproduce", "table1", "--preset", "smoke", "--data-root", str(data_root), "--out", str(out),
            "--reuse", f"natural={natural}", "--reuse", f"defense={defense}", "--rows", "natural,defense",
            "--no-progress"] + [f"--set={s}" for s in TINY_BUDGET]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "natural ResNet-32" in printed
    # nothing was trained: the reused folders were used as they are
    assert not (out / "models").exists()
    table = json.loads((out / "table1.json").read_text())
    plan = table1_plan("smoke", load_preset("smoke", overrides=TINY_BUDGET).evaluation)
    assert [r["name"] for r in table["rows"]] == ["natural", "defense"]
    for row in table["rows"]:
        # a row is one evaluation whose attacks are grouped into the table's columns
        res = json.loads((out / "eval" / row["name"] / "results.json").read_text())
        assert res["n_images"] == 4 and list(res["columns"]) == [c.key for c in plan.columns]
        assert [a["column"] for a in res["attacks"]] == [c.key for c in plan.columns for _ in c.attacks]
        # the table is the results.json's numbers
        assert row["clean"] == res["clean_accuracy"] and row["worst_case"] == res["worst_case_accuracy"]
        assert row["columns"] == res["columns"] and row["checks"] == res["checks"]
        # each column's accuracy and the worst case recomputed from the stored adversarials
        stored = load_adversarials(out / "eval" / row["name"] / "adversarials.safetensors")
        correct = stored.clean_pred == stored.labels
        everywhere = correct.clone()
        for column in plan.columns:
            robust = correct.clone()
            for item in stored.attacks:
                if item.name in res["columns"][column.key]["attacks"]:
                    robust[item.positions[item.success]] = False
            assert res["columns"][column.key]["accuracy"] == pytest.approx(float(robust.float().mean()))
            assert row["worst_case"] <= res["columns"][column.key]["accuracy"] <= row["clean"]
            everywhere &= robust
        assert row["worst_case"] == pytest.approx(float(everywhere.float().mean()))
        assert res["columns"]["boundary"]["median_norm"] is None or res["columns"]["boundary"]["median_norm"] > 0
        assert list(row["checks"]) == list(resolve_selection(TABLE1_CHECKS, 100))  # they ran on the row's evaluation
    report = (out / "report.md").read_text()
    for title in [c.title for c in plan.columns] + ["worst case", "natural ResNet-32"]:
        assert title in report
    # compute time: each row's total is the sum of its columns' measured attack seconds
    compute = report.split("## Compute time")[1].split("\n## ")[0]
    for row in table["rows"]:
        line = next(x for x in compute.splitlines() if x.startswith(f"| {row['title']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        total = sum(float(row["columns"][c.key]["seconds"]) for c in plan.columns)
        assert cells[-1] == f"{total:.0f}" and len(cells) == len(plan.columns) + 2
    for png in ["accuracy_vs_eps", "examples_defense", "atoms", "bpda_surrogate", "loss_landscape_natural",
                "loss_landscape_defense"]:
        path = out / "plots" / f"{png}.png"
        assert path.read_bytes()[:4] == b"\x89PNG" and f"plots/{png}.png" in report
    sweeps = json.loads((out / "sweeps" / "natural" / "sweep.json").read_text())
    assert set(sweeps) == {"Linf", "L2", "L1"}
    # a rerun resumes: same table, nothing recomputed differently
    assert main(argv) == 0
    assert json.loads((out / "table1.json").read_text()) == table
    # --report-only rebuilds the report from the stored results and sweeps alone (as committed:
    # without the evaluations' states and adversarials), running no evaluation and no sweep
    copy = tmp_path / "copied"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("state", "adversarials.safetensors", "plots",
                                                             "table1.json", "report.md"))
    only = [*argv[:argv.index("--out") + 1], str(copy), *argv[argv.index("--out") + 2:], "--report-only"]
    only[only.index("--rows") + 1] = "natural"  # a row of another invocation is kept from rows.json
    assert main(only) == 0
    capsys.readouterr()
    rebuilt = json.loads((copy / "table1.json").read_text())
    assert rebuilt == table and not list(copy.glob("eval/*/state"))
    assert (copy / "plots" / "accuracy_vs_eps.png").is_file() and "## Compute time" in (copy / "report.md").read_text()
    shutil.rmtree(copy / "eval" / "defense")  # a row without stored results is pending, nothing is run
    assert main(only[:only.index("--rows")] + only[only.index("--rows") + 2:]) == 0
    assert "pending" in capsys.readouterr().out and not (copy / "eval" / "defense").exists()


def test_rows_record_merges_other_invocations(tmp_path: Path) -> None:
    from scfront.reproduction.rows import RowSource
    from scfront.reproduction.table1 import merged_rows_record

    path = tmp_path / "rows.json"
    plan = {"n_images": 4, "columns": []}
    defense = [RowSource("defense", "reuse", tmp_path / "d")]
    natural = [RowSource("natural", "reuse", tmp_path / "n"), RowSource("trades", "not_run", reason="why")]
    assert [r["name"] for r in merged_rows_record(path, "cpu", plan, defense)["rows"]] == ["defense"]
    path.write_text(json.dumps(merged_rows_record(path, "cpu", plan, defense)))
    merged = merged_rows_record(path, "cpu", plan, natural)
    # the other invocation's row is kept, in the table's row order
    assert [r["name"] for r in merged["rows"]] == ["natural", "trades", "defense"]
    assert merged["rows"][2]["path"] == str(tmp_path / "d")
    # this invocation's record wins over the file's for its own rows
    path.write_text(json.dumps(merged))
    again = merged_rows_record(path, "cpu", plan, [RowSource("defense", "reuse", tmp_path / "d2")])
    assert again["rows"][2]["path"] == str(tmp_path / "d2")
    # another preset or plan, or a corrupt file: replaced
    assert [r["name"] for r in merged_rows_record(path, "smoke", plan, defense)["rows"]] == ["defense"]
    assert [r["name"] for r in merged_rows_record(path, "cpu", {"n_images": 8}, defense)["rows"]] == ["defense"]
    path.write_text("{not json")
    assert [r["name"] for r in merged_rows_record(path, "cpu", plan, defense)["rows"]] == ["defense"]


def test_report_marks_rows_still_being_evaluated_elsewhere(tmp_path: Path) -> None:
    from scfront.reproduction.report import build_table, write_report

    plan = {"n_images": 4, "subset_seed": 0, "steps": 2, "restarts": 1, "budget": {},
            "columns": [{"key": "pgd-linf", "title": "PGD-Linf", "attacks": ["pgd-linf"], "pgd_budget": True,
                         "median_norm": False}]}
    rows = [{"name": "trades", "kind": "not_run", "path": None, "reason": "too slow"},
            {"name": "defense", "kind": "reuse", "path": "d", "reason": ""}]
    (tmp_path / "rows.json").write_text(json.dumps({"preset": "cpu", "plan": plan, "rows": rows}))
    table = build_table(tmp_path)
    assert table["rows"][1]["pending"] is True and "clean" not in table["rows"][1]
    report = write_report(tmp_path, table, {}).read_text()
    assert "| sparse coding frontend + ResNet-32 | pending | pending | pending |" in report
    assert "## Rows pending" in report and "## Compute time" not in report
    assert "| TRADES ResNet-32 | not run | not run | not run |" in report


def test_the_committed_cpu_table_is_still_reported_from_its_files(tmp_path: Path) -> None:
    """results/table1_cpu was evaluated with one evaluation per column, merged per row; its files
    still make the same table (the report reads results.json files only)."""
    import shutil

    from scfront.reproduction.report import build_table, render_table, write_report

    committed = REPO / "results" / "table1_cpu"
    shutil.copy(committed / "rows.json", tmp_path / "rows.json")
    for row in json.loads((committed / "rows.json").read_text())["rows"]:
        if row["kind"] != "not_run":
            (tmp_path / "eval" / row["name"]).mkdir(parents=True)
            shutil.copy(committed / "eval" / row["name"] / "results.json", tmp_path / "eval" / row["name"])
    table = build_table(tmp_path)
    assert table == json.loads((committed / "table1.json").read_text())
    lines = render_table(table)
    assert lines[0].startswith("| model | clean | PGD-Linf 8/255 |") and len(lines) == 2 + 4
    assert "| sparse coding frontend + ResNet-32 | 75.30 |" in "\n".join(lines)
    assert "## Gradient-masking checks" in write_report(tmp_path, table, {}).read_text()


@pytest.mark.slow
def test_imagenette_table_has_its_own_columns_rows_and_caveat(data_root: Path, tmp_path: Path) -> None:
    natural = save_tiny_model(tmp_path / "natural_run", "natural", "imagenette")
    defense = save_tiny_model(tmp_path / "defense_run", "defense", "imagenette")
    out = tmp_path / "table"
    argv = ["reproduce", "table1", "--dataset", "imagenette", "--preset", "smoke", "--data-root", str(data_root),
            "--out", str(out), "--reuse", f"natural={natural}", "--reuse", f"defense={defense}",
            "--rows", "natural,defense", "--no-progress"] + [f"--set={s}" for s in TINY_BUDGET]
    assert main(argv) == 0
    table = json.loads((out / "table1.json").read_text())
    assert table["plan"]["dataset"] == "imagenette"
    assert [c["key"] for c in table["plan"]["columns"]] == ["pgd-linf-2", "pgd-linf-4", "pgd-linf", "apgd", "square"]
    rows = {r["name"]: r for r in table["rows"]}
    assert list(rows) == ["natural", "defense"]
    assert rows["defense"]["title"] == "sparse coding frontend + EfficientNet-B0"
    # the smaller radii are evaluations of their own; the row's worst case is at 8/255
    alone = json.loads((out / "eval" / "defense--pgd-linf-2" / "results.json").read_text())
    assert rows["defense"]["columns"]["pgd-linf-2"]["accuracy"] == alone["worst_case_accuracy"]
    assert alone["attacks"][0]["eps"] == pytest.approx(2 / 255)
    joint = json.loads((out / "eval" / "defense" / "results.json").read_text())
    assert set(joint["columns"]) == {"pgd-linf", "apgd", "square"}
    res = json.loads((out / "eval" / "defense" / "results.json").read_text())
    assert res["dataset"] == "imagenette" and res["n_images"] == 4
    assert set(json.loads((out / "sweeps" / "natural" / "sweep.json").read_text())) == {"Linf"}
    report = (out / "report.md").read_text()
    assert report.startswith("# Imagenette table") and "re-encoded" in report
    assert main(argv + ["--rows", "trades"]) == 2  # TRADES is no row of the Imagenette table


def test_imagenette_rows_at_the_cpu_preset(tmp_path: Path) -> None:
    from scfront.reproduction.rows import resolve_rows, rows_of

    assert rows_of("imagenette") == ("natural", "pgd_at", "defense")
    sources = {s.name: s for s in resolve_rows("cpu", rows_of("imagenette"), {}, None, tmp_path, "imagenette")}
    assert sources["natural"].kind == sources["defense"].kind == "train"
    assert sources["pgd_at"].kind == "not_run" and "EfficientNet-B0" in sources["pgd_at"].reason
    plan = table1_plan("cpu", load_preset("cpu", "imagenette").evaluation, "imagenette")
    assert plan.sweep_norms == ("Linf",) and [c.own_evaluation for c in plan.columns] == [True, True, False, False, False]
