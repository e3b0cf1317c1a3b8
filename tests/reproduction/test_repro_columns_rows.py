"""Table 1 columns (one definition, every item buildable) and where each row's model comes from.

The cross-column black-box check of a row is the evaluation's own ``blackbox-vs-whitebox`` check
(tests/evaluation/test_evaluation_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


from scfront.config import EPS_8, load_preset
from scfront.errors import ConfigError
from scfront.evaluation import build_suite
from scfront.reproduction.columns import ATTACK_BUDGETS, table1_plan
from scfront.reproduction.rows import NOT_RUN_REASONS, ROWS, parse_reuse, resolve_rows


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_columns_build_and_follow_the_preset(preset: str) -> None:
    evaluation = load_preset(preset).evaluation
    plan = table1_plan(preset, evaluation)
    keys = [c.key for c in plan.columns]
    assert keys == ["pgd-linf", "cw-linf", "pgd-l2", "pgd-l1", "pgd-l1-sparse", "apgd", "square", "boundary"]
    by_key = {c.key: c for c in plan.columns}
    for column in plan.columns:
        attacks = build_suite(column.attacks, plan.suite_overrides(column))
        params = [a.params() for a in attacks]
        if column.pgd_budget:
            assert all(p["steps"] == evaluation.steps and p["restarts"] == evaluation.restarts for p in params)
    linf = build_suite(by_key["pgd-linf"].attacks)[0]
    assert linf.params()["eps"] == pytest.approx(EPS_8) and linf.params()["step_size"] == pytest.approx(1 / 255)
    assert build_suite(by_key["pgd-l2"].attacks)[0].params()["eps"] == pytest.approx(0.6)
    assert build_suite(by_key["pgd-l1"].attacks)[0].params()["eps"] == pytest.approx(30.0)
    apgd = build_suite(by_key["apgd"].attacks)
    assert [a.name for a in apgd] == ["apgd-ce", "apgd-dlr"]
    assert all(a.params()["steps"] == ATTACK_BUDGETS[preset].apgd_steps for a in apgd)
    assert build_suite(by_key["square"].attacks)[0].params()["queries"] == ATTACK_BUDGETS[preset].square_queries
    assert build_suite(by_key["boundary"].attacks)[0].params()["steps"] == ATTACK_BUDGETS[preset].boundary_steps
    assert by_key["boundary"].median_norm and not by_key["square"].median_norm


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ConfigError, match="preset"):
        table1_plan("huge", load_preset("smoke").evaluation)


def test_parse_reuse(tmp_path: Path) -> None:
    assert parse_reuse([f"natural={tmp_path}"]) == {"natural": tmp_path}
    for bad, match in [("natural", "NAME=RUN_DIR"), (f"resnet={tmp_path}", "unknown row"),
                       (f"natural={tmp_path / 'missing'}", "does not exist")]:
        with pytest.raises(ConfigError, match=match):
            parse_reuse([bad])


def test_row_sources_in_order_of_preference(tmp_path: Path) -> None:
    ckpt = tmp_path / "pgd.pt"
    ckpt.write_bytes(b"x")
    reused = tmp_path / "natural_run"
    reused.mkdir()
    models = tmp_path / "models"
    cpu = {s.name: s for s in resolve_rows("cpu", ROWS, {"natural": reused}, ckpt, models)}
    assert (cpu["natural"].kind, cpu["natural"].path) == ("reuse", reused)
    assert (cpu["pgd_at"].kind, cpu["pgd_at"].path) == ("checkpoint", ckpt)
    assert cpu["trades"].kind == "not_run" and cpu["trades"].reason == NOT_RUN_REASONS["trades"]
    assert (cpu["defense"].kind, cpu["defense"].path) == ("train", models / "defense")
    no_ckpt = {s.name: s for s in resolve_rows("cpu", ROWS, {}, None, models)}
    assert no_ckpt["pgd_at"].kind == "not_run" and "--pgd-at-checkpoint" in no_ckpt["pgd_at"].reason
    paper = {s.name: s for s in resolve_rows("paper", ROWS, {}, None, models)}
    assert all(s.kind == "train" for s in paper.values())
    # a reused run wins over training, also at the paper's scale
    assert resolve_rows("paper", ("trades",), {"trades": reused}, None, models)[0].kind == "reuse"
    with pytest.raises(ConfigError, match="not a file"):
        resolve_rows("cpu", ROWS, {}, tmp_path / "absent.pt", models)
