"""The named suites are what they say: AutoAttack's three versions (``set_version`` of
fra31/auto-attack) with their exact attacks, order and parameters, and ``--help`` lists them."""

from __future__ import annotations

import pytest

from scfront.cli import build_parser
from scfront.evaluation.suite import SUITES, build_suite, expand_suites

EPS = 8 / 255
# AutoAttack's settings per version (Linf): (attack, parameters that must hold), in cascade order.
APGD = dict(steps=100, eps=EPS, restarts=1, eot_samples=1)
TARGETED = dict(steps=100, eps=EPS, restarts=1, n_target_classes=9)
SQUARE = dict(queries=5000, p_init=0.8, rescale_schedule=False, norm="Linf")
AUTOATTACK = {
    "autoattack": [("apgd-ce", APGD), ("apgd-t", TARGETED), ("fab-t", TARGETED), ("square", SQUARE)],
    "autoattack-plus": [("apgd-ce", {**APGD, "restarts": 5}), ("apgd-dlr", {**APGD, "restarts": 5}),
                        ("fab", dict(steps=100, eps=EPS, restarts=5)), ("square", SQUARE),
                        ("apgd-t", TARGETED), ("fab-t", TARGETED)],
    "autoattack-rand": [("apgd-ce", {**APGD, "eot_samples": 20}), ("apgd-dlr", {**APGD, "eot_samples": 20})],
}


@pytest.mark.parametrize("suite", sorted(AUTOATTACK))
def test_autoattack_suites_build_autoattacks_attacks_with_its_parameters(suite: str) -> None:
    attacks = build_suite(expand_suites([f"@{suite}"]))
    assert [a.name for a in attacks] == [name for name, _ in AUTOATTACK[suite]]
    for attack, (name, expected) in zip(attacks, AUTOATTACK[suite]):
        params = attack.params()
        for key, value in expected.items():
            assert params[key] == (pytest.approx(value) if isinstance(value, float) else value), (suite, name, key)
        assert attack.threat.norm.value == "Linf" and attack.threat.eps == pytest.approx(EPS)
        assert attack.bpda is None  # the model's own rules unless --top-u/--steepness say otherwise


def test_the_descriptions_state_the_parameters() -> None:
    items, text = SUITES["autoattack"]
    assert items == ("apgd-ce", "apgd-t", "fab-t", "square:queries=5000:p_init=0.8:rescale_schedule=false")
    for phrase in ("standard", "APGD-CE (100 iterations)", "9 target classes", "FAB-T", "5,000 queries",
                   "p_init 0.8", "not rescaled", "one restart"):
        assert phrase in text, phrase
    _, plus = SUITES["autoattack-plus"]
    for phrase in ("plus", "5 restarts each", "untargeted FAB (100 iterations, 5 restarts)", "p_init 0.8",
                   "9 target classes, 1 restart each"):
        assert phrase in plus, phrase
    _, rand = SUITES["autoattack-rand"]
    assert "20 EOT samples" in rand and "1 restart" in rand


def test_suite_wide_options_reach_the_defaults_and_items_win() -> None:
    ce, t, fab_t, square = build_suite(expand_suites(["@autoattack"]), {"steps": 7, "eps": 4 / 255})
    assert (ce.steps, t.steps, fab_t.steps) == (7, 7, 7)
    assert square.threat.eps == pytest.approx(4 / 255) and square.queries == 5000
    rand = build_suite(expand_suites(["@autoattack-rand"]), {"eot_samples": 3})
    assert [a.eot_samples for a in rand] == [20, 20]  # the suite's own EOT wins


def test_help_lists_every_suite_with_its_items_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # the help wraps lines
    for name, (items, description) in SUITES.items():
        assert f"@{name} {', '.join(items)}" in text, name
        assert " ".join(description.split()) in text, name
    assert "p_init=0.8" in text and "queries=5000" in text and "eot_samples=20" in text
