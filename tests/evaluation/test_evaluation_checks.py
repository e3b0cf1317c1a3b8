"""The gradient-masking checks, generated from their registry: every registered check runs on a
tiny model and gives a verdict, and every one has a case it fails (a new check without one fails
these tests until a case is added to FAILING)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from eval_helpers import Quantized, mlp  # type: ignore[import-not-found]
from torch import nn

from scfront.attacks.blackbox import StartPool
from scfront.dictionary.core import Dictionary
from scfront.evaluation.checks import (BLACKBOX_NOISE, NOT_RUN, Check, CheckInputs, ModelCheck, ResultsCheck,
                                       Verdict, available_checks, check_class, create_checks, judge_checks,
                                       register_check)
from scfront.evaluation.protocol import evaluate
from scfront.evaluation.results import AttackOutcome, Collected, collect
from scfront.evaluation.runner import EvalData
from scfront.evaluation.spec import AttackSpec, EvalSpec
from scfront.evaluation.state import StateStore
from scfront.evaluation.suite import build_suite
from scfront.frontend.encoder import Encoder

CHECK_IMAGES = 16
SUITE = ["pgd-linf:eps=0.05:steps=5", "square:eps=0.05:queries=40"]


class _Noisy(nn.Module):
    """Random: every forward pass adds fresh noise to the logits (from its own generator)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(2)
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits + 0.01 * torch.randn(logits.shape, generator=self.generator)


def _frontend() -> nn.Module:
    """A sparse coding encoder (16 random atoms, top-4, ternary activation) before a linear layer."""
    gen = torch.Generator().manual_seed(4)
    atoms = torch.randn(16, 3, 2, 2, generator=gen)
    encoder = Encoder(Dictionary(atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1)), stride=2, top_t=4)
    head = nn.Linear(16 * 4 * 4, 10)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.5)
        head.bias.zero_()
    return nn.Sequential(encoder, nn.Flatten(), head).eval()


def _images(n: int = 64, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 8, 8, generator=gen) * 255).round().to(torch.uint8)


def _evaluated(out: Path, model: nn.Module, items: list[str]) -> tuple[CheckInputs, Collected]:
    """(check inputs, collected results) of ``model`` evaluated with ``items`` on 16 images."""
    pool = _images()
    with torch.no_grad():
        labels = model(pool.float() / 255).argmax(1)
    data = EvalData(torch.arange(CHECK_IMAGES), pool[:CHECK_IMAGES].clone(), labels[:CHECK_IMAGES].clone())
    attacks = build_suite(items)
    evaluate(model, data, attacks, out, starts=StartPool(pool), batch_size=8, checks=False, progress=False)
    x, y = data.batch(slice(0, CHECK_IMAGES), torch.device("cpu"))
    return CheckInputs(model, x, y, tuple(attacks), seed=0), collect(out)


def _verdict(check: Check, inputs: CheckInputs, col: Collected) -> Verdict:
    record = check.run(col) if isinstance(check, ResultsCheck) else check.run(inputs)  # type: ignore[arg-type]
    return check.verdict(record, col)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[CheckInputs, Collected]:
    return _evaluated(tmp_path_factory.mktemp("plain"), mlp(), SUITE)


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> tuple[CheckInputs, Collected]:
    return _evaluated(tmp_path_factory.mktemp("masked"), Quantized(), SUITE)


# --------------------------------------------------------------------------- the failing cases
def _fails_large_eps(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("large-eps")(), *masked)


def _fails_more_steps(tmp: Path, masked: Any) -> Verdict:
    # one tiny step from the clean image has not converged: a second one breaks more images
    inputs, col = _evaluated(tmp, mlp(), ["pgd-linf:eps=0.3:steps=1:step_size=0.05:random_start=false"])
    return _verdict(check_class("more-steps")(), inputs, col)


def _fails_gradients_nonzero(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("gradients-nonzero")(), *masked)


def _fails_deterministic(tmp: Path, masked: Any) -> Verdict:
    inputs, col = _evaluated(tmp, _Noisy(), ["pgd-linf:eps=0.05:steps=2"])
    return _verdict(check_class("deterministic")(), inputs, col)


def _fails_blackbox_vs_whitebox(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("blackbox-vs-whitebox")(), *masked)


def _fails_bpda_variants(tmp: Path, masked: Any) -> Verdict:
    # the suite's one Linf attack barely moves; PGD with any BPDA rule at its ε breaks far more
    inputs, col = _evaluated(tmp, _frontend(), ["pgd-linf:eps=0.3:steps=1:step_size=0.0001"])
    return _verdict(check_class("bpda-variants")(), inputs, col)


FAILING: dict[str, Callable[[Path, Any], Verdict]] = {
    "large-eps": _fails_large_eps,
    "more-steps": _fails_more_steps,
    "gradients-nonzero": _fails_gradients_nonzero,
    "deterministic": _fails_deterministic,
    "blackbox-vs-whitebox": _fails_blackbox_vs_whitebox,
    "bpda-variants": _fails_bpda_variants,
}


# --------------------------------------------------------------------------- generated tests
@pytest.mark.parametrize("name", available_checks())
def test_check_runs_on_a_tiny_model_and_gives_a_verdict(name: str, plain: Any) -> None:
    check = check_class(name)()
    assert check.name == name and isinstance(check, (ModelCheck, ResultsCheck))
    assert check.from_results == isinstance(check, ResultsCheck)
    verdict = _verdict(check, *plain)
    assert isinstance(verdict.passed, bool) and isinstance(verdict.detail, str) and verdict.detail
    entry = verdict.to_json()
    assert list(entry)[0] == "passed" and list(entry)[-1] == "detail"
    assert check.__doc__, f"check {name} has no docstring"


@pytest.mark.parametrize("name", available_checks())
def test_check_fails_its_failing_case(name: str, tmp_path: Path, masked: Any) -> None:
    verdict = FAILING[name](tmp_path / "eval", masked)  # KeyError: a registered check without a failing case
    assert verdict.passed is False, verdict.detail


def test_the_plain_model_passes_every_applicable_check(plain: Any) -> None:
    for check in create_checks():
        verdict = _verdict(check, *plain)
        if check.name in ("large-eps", "gradients-nonzero", "deterministic"):
            assert verdict.passed, verdict.detail
    assert _verdict(check_class("bpda-variants")(), *plain).values == {"applicable": False}


def test_registry_order_and_errors() -> None:
    assert available_checks() == ["large-eps", "more-steps", "gradients-nonzero", "deterministic",
                                  "blackbox-vs-whitebox", "bpda-variants"]
    with pytest.raises(TypeError, match="registered twice"):
        @register_check
        class Again(ModelCheck):  # noqa: F841 - the decorator raises
            name = "large-eps"

            def run(self, inputs: CheckInputs) -> dict[str, Any]:
                return {}

            def verdict(self, record: Any, col: Collected) -> Verdict:
                return Verdict(True, "")
    with pytest.raises(TypeError, match="name"):
        register_check(type("Nameless", (ModelCheck,), {}))
    from scfront.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown check"):
        check_class("nope")


def test_a_check_not_stored_yet_is_reported_as_not_run(tmp_path: Path, plain: Any) -> None:
    _, col = plain
    verdicts = judge_checks(col, StateStore(tmp_path))  # an empty folder: no model check stored
    for check in create_checks():
        if isinstance(check, ModelCheck):
            assert verdicts[check.name] == {"passed": False, "detail": NOT_RUN}
        else:
            assert verdicts[check.name]["detail"] != NOT_RUN


# --------------------------------------------------------------------------- blackbox-vs-whitebox
def _collected(columns: dict[str, list[tuple[str, str, float, bool, list[int]]]], n: int) -> Collected:
    """A complete evaluation of ``n`` clean-correct images: {column: [(name, norm, eps, black_box,
    images it broke)]}, cascaded inside each column."""
    specs, outcomes = [], []
    for label, attacks in columns.items():
        broken_before = torch.zeros(n, dtype=torch.bool)
        for name, norm, eps, black_box, broke in attacks:
            ran = ~broken_before
            success = torch.zeros(n, dtype=torch.bool)
            success[broke] = True
            success &= ran
            broken_before |= success
            positions = ran.nonzero().squeeze(1)
            specs.append(AttackSpec(name, {}, norm, eps, black_box, label))
            outcomes.append(AttackOutcome(ran, success, positions, torch.zeros(len(positions), 3, 2, 2),
                                          None, 0.0, 0))
    spec = EvalSpec("m", "0", "cifar10", n, 0, 0, n, True, True, n, tuple(specs))
    labels = torch.zeros(n, dtype=torch.long)
    return Collected(spec, torch.arange(n), torch.zeros(n, 3, 2, 2, dtype=torch.uint8), labels, labels.clone(),
                     0.0, tuple(outcomes))


def test_blackbox_check_compares_across_columns() -> None:
    """Square's column against the PGD and APGD columns of its threat model (a Table 1 row)."""
    e, n = 8 / 255, 200
    columns = {"pgd-linf": [("pgd-linf", "Linf", e, False, list(range(50)))],
               "apgd": [("apgd-ce", "Linf", e, False, list(range(40))),
                        ("apgd-dlr", "Linf", e, False, list(range(40, 60)))],
               # 0-49 PGD broke too, 50-59 APGD broke too, 60-69 only Square
               "square": [("square", "Linf", e, True, list(range(70)))],
               "pgd-l2": [("pgd-l2", "L2", 0.6, False, [])]}
    check = check_class("blackbox-vs-whitebox")()
    col = _collected(columns, n)
    record = check.run(col)
    assert record["pairs"] == {"square": ["pgd-linf", "apgd-ce", "apgd-dlr"]} and record["suspicious"] == 10
    verdict = check.verdict(record, col)
    assert not verdict.passed and verdict.values == {"applicable": True, "suspicious": 10}
    columns["square"] = [("square", "Linf", e, True, list(range(61)))]  # one image left: 0.5 % <= 1 %
    col = _collected(columns, n)
    assert check.verdict(check.run(col), col).passed and BLACKBOX_NOISE * n >= 1
    # a white-box attack at a smaller ε is no evidence either way: not applicable
    col = _collected({"square": [("square", "Linf", e, True, list(range(70)))],
                      "pgd": [("pgd-linf", "Linf", e / 2, False, [])]}, n)
    verdict = check.verdict(check.run(col), col)
    assert verdict.passed and verdict.values == {"applicable": False} and "not applicable" in verdict.detail


def test_bpda_variants_pass_when_the_suite_is_as_strong(tmp_path: Path) -> None:
    inputs, col = _evaluated(tmp_path, _frontend(), ["pgd-linf:eps=0.3:steps=20"])
    verdict = _verdict(check_class("bpda-variants")(), inputs, col)
    assert verdict.passed and verdict.values["applicable"] and len(verdict.values["variants"]) == 6
