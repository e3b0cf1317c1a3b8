"""The self-checks, generated from their registry: every registered check runs on a tiny model and
gives a verdict, and every one has a case it fails (a new check without one fails these tests
until a case is added to FAILING); the selection of checks, their budgets, the pre-attack
validation and the reuse of the evaluation's own attack runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from eval_helpers import Quantized, mlp  # type: ignore[import-not-found]
from torch import nn

from scfront.attacks.blackbox import StartPool
from scfront.dictionary.core import Dictionary
from scfront.errors import ConfigError, InputError
from scfront.evaluation.checks import (BLACKBOX_NOISE, NOT_RUN, Check, CheckInputs, ModelCheck, ResultsCheck,
                                       Verdict, available_checks, check_class, count_gradient_calls, create_checks,
                                       default_checks, expected_correct, judge_checks, register_check,
                                       resolve_selection, validate_model)
from scfront.evaluation.protocol import evaluate
from scfront.evaluation.results import AttackOutcome, Collected, collect, stored_runs
from scfront.evaluation.runner import EvalData
from scfront.evaluation.spec import AttackSpec, EvalSpec
from scfront.evaluation.state import StateStore
from scfront.evaluation.suite import build_suite
from scfront.frontend.encoder import Encoder

CHECK_IMAGES = 16
SUITE = ["pgd-linf:eps=0.05:steps=5", "square:eps=0.05:queries=40"]


class _Softmax(nn.Module):
    """Outputs probabilities instead of logits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(dim=1)


class _Purifying(nn.Module):
    """A dynamic defense: one signed-gradient step on its input (lowering an energy) before ``mlp``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # also under inference mode (the evaluation's gradient-free passes): a normal copy of x
        with torch.inference_mode(False), torch.enable_grad():
            xr = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.net(xr).logsumexp(dim=1).sum(), xr)
        return self.net((x - 0.01 * grad.sign()).clamp(0, 1))


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


def _evaluated(out: Path, model: nn.Module, items: list[str], reuse: bool = False,
               n_classes: int | None = None) -> tuple[CheckInputs, Collected]:
    """(check inputs, collected results) of ``model`` evaluated with ``items`` on 16 images;
    ``reuse``: the inputs carry the evaluation's stored attack runs (as in an evaluation)."""
    pool = _images()
    with torch.no_grad():
        labels = model(pool.float() / 255).argmax(1)
    data = EvalData(torch.arange(CHECK_IMAGES), pool[:CHECK_IMAGES].clone(), labels[:CHECK_IMAGES].clone())
    attacks = build_suite(items)
    evaluate(model, data, attacks, out, starts=StartPool(pool), batch_size=8, checks=False, progress=False)
    x, y = data.batch(slice(0, CHECK_IMAGES), torch.device("cpu"))
    col = collect(out)
    stored = stored_runs(out, col.spec, CHECK_IMAGES) if reuse else {}
    return CheckInputs(model, x, y, tuple(attacks), seed=0, n_classes=n_classes, stored=stored), col


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
def _fails_probability_outputs(tmp: Path, masked: Any) -> Verdict:
    inputs, col = _evaluated(tmp, mlp(), ["fgsm:eps=0.05"])
    return _verdict(check_class("probability-outputs")(), dataclasses.replace(inputs, model=_Softmax()), col)


def _fails_class_count(tmp: Path, masked: Any) -> Verdict:
    inputs, col = _evaluated(tmp, mlp(), ["fgsm:eps=0.05"], n_classes=100)
    return _verdict(check_class("class-count")(), inputs, col)


def _fails_dynamic(tmp: Path, masked: Any) -> Verdict:
    inputs, col = _evaluated(tmp, _Purifying(), ["fgsm:eps=0.05"])
    return _verdict(check_class("dynamic")(), inputs, col)


def _fails_large_eps(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("large-eps")(), *masked)


def _fails_more_steps(tmp: Path, masked: Any) -> Verdict:
    # one tiny step from the clean image has not converged: a second one breaks more images
    inputs, col = _evaluated(tmp, mlp(), ["pgd-linf:eps=0.3:steps=1:step_size=0.05:random_start=false"])
    return _verdict(check_class("more-steps")(), inputs, col)


def _fails_gradients_nonzero(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("gradients-nonzero")(), *masked)


def _fails_randomness(tmp: Path, masked: Any) -> Verdict:
    inputs, col = _evaluated(tmp, _Noisy(), ["pgd-linf:eps=0.05:steps=2"])
    return _verdict(check_class("randomness")(), inputs, col)


def _fails_blackbox_vs_whitebox(tmp: Path, masked: Any) -> Verdict:
    return _verdict(check_class("blackbox-vs-whitebox")(), *masked)


def _fails_bpda_variants(tmp: Path, masked: Any) -> Verdict:
    # the suite's one Linf attack barely moves; PGD with any BPDA rule at its ε breaks far more
    inputs, col = _evaluated(tmp, _frontend(), ["pgd-linf:eps=0.3:steps=1:step_size=0.0001"])
    return _verdict(check_class("bpda-variants")(), inputs, col)


def _fails_binarization(tmp: Path, masked: Any) -> Verdict:
    # a model without the feature hook the test needs fails it with the fix in its detail (the test's
    # own failing cases, weak attacks and masked gradients: tests/evaluation/test_evaluation_binarization.py)
    verdict = _verdict(check_class("binarization")(), *masked)
    assert "readout" in verdict.detail
    return verdict


FAILING: dict[str, Callable[[Path, Any], Verdict]] = {
    "binarization": _fails_binarization,
    "probability-outputs": _fails_probability_outputs,
    "class-count": _fails_class_count,
    "randomness": _fails_randomness,
    "dynamic": _fails_dynamic,
    "large-eps": _fails_large_eps,
    "more-steps": _fails_more_steps,
    "gradients-nonzero": _fails_gradients_nonzero,
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
    for check in create_checks(["probability-outputs", "class-count", "randomness", "dynamic", "large-eps",
                                "gradients-nonzero"]):
        verdict = _verdict(check, *plain)
        assert verdict.passed, verdict.detail
    assert _verdict(check_class("bpda-variants")(), *plain).values == {"applicable": False}


def test_registry_order_and_errors() -> None:
    assert available_checks() == ["probability-outputs", "class-count", "randomness", "dynamic",
                                  "gradients-nonzero", "large-eps", "more-steps", "blackbox-vs-whitebox",
                                  "bpda-variants", "binarization"]
    assert [name for name in available_checks() if not check_class(name).default] == ["bpda-variants",
                                                                                       "binarization"]
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
    assert list(verdicts) == default_checks()  # no stored selection: the default checks
    for check in create_checks(default_checks()):
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
    inputs, col = _evaluated(tmp_path, _frontend(), ["pgd-linf:eps=0.3:steps=20"], reuse=True)
    check = check_class("bpda-variants")()
    record = check.run(inputs)
    # the model's own rule (the paper's 30, 4) is the suite's PGD: not run again
    assert record["skipped"] == [{"top_u": 30, "steepness": 4.0}] and len(record["variants"]) == 5
    verdict = check.verdict(record, col)
    assert verdict.passed and verdict.values["applicable"] and set(verdict.values["broken"].values()) == {0}
    assert "is the suite's own rule" in verdict.detail


def test_bpda_variants_attack_only_what_the_suite_left_robust(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With the evaluation's runs stored, the variants attack only the images no attack broke;
    the verdict is the same as when they attack every correctly classified image."""
    from scfront.attacks.pgd import PGDLinf

    items = ["pgd-linf:eps=0.3:steps=1:step_size=0.0001"]
    check = check_class("bpda-variants")()
    reused, col = _evaluated(tmp_path / "a", _frontend(), items, reuse=True)
    fresh, _ = _evaluated(tmp_path / "b", _frontend(), items)
    attacked: list[int] = []
    call = PGDLinf.__call__

    def counting(self: Any, model: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        attacked.append(int(x.shape[0]))
        return call(self, model, x, *args, **kwargs)

    monkeypatch.setattr(PGDLinf, "__call__", counting)
    a = check.verdict(check.run(reused), col)
    on_reused = sum(attacked)
    attacked.clear()
    b = check.verdict(check.run(fresh), col)
    suite_robust = int((col.broken_by()[:CHECK_IMAGES] == -1).sum())
    assert on_reused == len(a.values["broken"]) * suite_robust < sum(attacked)
    assert a.values == b.values and not a.passed


# --------------------------------------------------------------------------- selection and budgets
def test_selection_defaults_names_budgets_and_errors() -> None:
    defaults = default_checks()
    assert "bpda-variants" not in defaults and "randomness" in defaults  # declared on the class
    assert not check_class("bpda-variants").default and check_class("large-eps").default
    assert list(resolve_selection(True, 100)) == defaults and resolve_selection(False, 100) == {}
    everything = resolve_selection("all", 100)
    assert list(everything) == available_checks()
    for name, images in everything.items():
        budget = check_class(name).budget
        assert images == min(budget or 100, 100)
    assert resolve_selection("default,bpda-variants", 100)["bpda-variants"] == check_class("bpda-variants").budget
    assert resolve_selection(["more-steps:images=60", "large-eps"], 50) == {
        "large-eps": check_class("large-eps").budget, "more-steps": 50}
    assert resolve_selection("dynamic", 2) == {"dynamic": 2}  # capped by check_images
    with pytest.raises(ConfigError, match="unknown check"):
        resolve_selection("more-step", 100)
    for bad in ("more-steps:images=0", "more-steps:steps=3", "more-steps:images"):
        with pytest.raises(ConfigError, match="images=K"):
            resolve_selection(bad, 100)
    with pytest.raises(ConfigError, match="check_images"):
        resolve_selection(True, 0)


def test_an_evaluation_runs_its_selection_with_budgets_and_seconds(tmp_path: Path) -> None:
    model = mlp()
    pool = _images()
    with torch.no_grad():
        labels = model(pool.float() / 255).argmax(1)
    data = EvalData(torch.arange(CHECK_IMAGES), pool[:CHECK_IMAGES].clone(), labels[:CHECK_IMAGES].clone())
    attacks = build_suite(["pgd-linf:eps=0.05:steps=3"])
    out = tmp_path / "e"
    results = evaluate(model, data, attacks, out, batch_size=8, checks="randomness:images=5,more-steps",
                       check_images=6, progress=False)
    assert list(results["checks"]) == ["randomness", "more-steps"]
    assert "on 5 images" in results["checks"]["randomness"]["detail"]
    assert check_class("more-steps").budget > 6 and "of 6 images" in results["checks"]["more-steps"]["detail"]
    for entry in results["checks"].values():
        assert entry["seconds"] >= 0 and list(entry)[-2:] == ["seconds", "detail"]
    assert results["check_seconds"] == pytest.approx(sum(c["seconds"] for c in results["checks"].values()))
    assert results["attack_seconds"] == pytest.approx(sum(a["seconds"] for a in results["attacks"]))
    report = (out / "report.md").read_text()
    assert "| randomness | yes |" in report and "checks " in report and "Time:" in report
    # the same folder with another selection: the attacks are kept, only the new check runs
    again = evaluate(model, data, attacks, out, batch_size=8, checks="dynamic", check_images=6, progress=False)
    assert list(again["checks"]) == ["dynamic"] and again["attacks"] == results["attacks"]


# --------------------------------------------------------------------------- before the attacks
def test_validation_before_any_attack_refuses_probabilities_and_class_counts(tmp_path: Path) -> None:
    pool = _images()
    x, y = pool[:8].float() / 255, torch.zeros(8, dtype=torch.int64)
    attacks = build_suite(["fgsm:eps=0.05"])
    validate_model(mlp(), x, y, attacks, n_classes=10)  # logits, 10 classes: fine
    with pytest.raises(ConfigError, match="pass logits, not softmax"):
        validate_model(_Softmax(), x, y, attacks, n_classes=10)
    with pytest.raises(ConfigError, match="10 outputs but the dataset has 3 classes"):
        validate_model(mlp(), x, y, attacks, n_classes=3)
    with pytest.raises(ConfigError, match="labels go up to 12"):
        validate_model(mlp(), x, torch.full((8,), 12), attacks)
    three = nn.Sequential(mlp(), nn.Linear(10, 3))
    with pytest.raises(ConfigError, match="apgd-t needs at least 4"):
        validate_model(three, x, y, build_suite(["apgd-t"]), n_classes=3)
    with pytest.raises(InputError, match="fails on images of shape"):
        validate_model(mlp(), pool[:4].float().div(255)[:, :, :4, :4], y[:4], attacks)
    # in an evaluation the error comes before anything is written
    data = EvalData(torch.arange(8), pool[:8].clone(), y)
    with pytest.raises(ConfigError, match="pass logits"):
        evaluate(_Softmax(), data, attacks, tmp_path / "e", checks=False, progress=False)
    assert not (tmp_path / "e").exists()


def test_the_dynamic_check_counts_gradient_calls_and_restores_the_profiler() -> None:
    seen: list[str] = []

    def outer(frame: Any, event: str, arg: Any) -> None:
        seen.append(event)

    import sys

    x = _images(4).float() / 255
    previous = sys.getprofile()
    sys.setprofile(outer)
    try:
        assert count_gradient_calls(lambda: _Purifying()(x)) == 1
        assert count_gradient_calls(lambda: mlp()(x)) == 0
        assert count_gradient_calls(lambda: mlp()(x.requires_grad_(True)).sum().backward()) == 1
        restored = sys.getprofile()
    finally:
        sys.setprofile(previous)
    assert restored is outer


# --------------------------------------------------------------------------- more-steps reuses the run
def test_more_steps_continues_the_evaluation_run_and_agrees_with_running_it_again(tmp_path: Path) -> None:
    items = ["pgd-linf:eps=0.3:steps=1:step_size=0.05:random_start=false"]
    check = check_class("more-steps")()
    reused, col = _evaluated(tmp_path / "a", mlp(), items, reuse=True)
    fresh, _ = _evaluated(tmp_path / "b", mlp(), items)
    a, b = check.run(reused), check.run(fresh)
    assert a["reused"] and not b["reused"] and a["continued"] and b["continued"]
    assert {k: v for k, v in a.items() if k != "reused"} == {k: v for k, v in b.items() if k != "reused"}
    # the evaluation's own run: its robust images are the stored ones
    assert a["robust_1x"] == int((col.broken_by()[:CHECK_IMAGES] == -1).sum())
    assert "the evaluation's run continued" in check.verdict(a, col).detail


def test_more_steps_reruns_an_attack_it_cannot_continue_on_what_it_left_robust(tmp_path: Path) -> None:
    inputs, col = _evaluated(tmp_path, mlp(), ["apgd-ce:eps=0.05:steps=2"], reuse=True)
    record = check_class("more-steps")().run(inputs)
    assert record["attack"] == "apgd-ce" and record["reused"] and not record["continued"]
    assert record["robust_2x"] <= record["robust_1x"] == int((col.broken_by()[:CHECK_IMAGES] == -1).sum())



# --------------------------------------------------------------------------- randomised models
_NO_COLLECTED: Any = None  # large-eps judges its record alone


class _Lucky(nn.Module):
    """A randomised model no attack can move: it always says class 0 (constant logits, zero
    gradient), except that each row's draw says class 1 with probability 0.3. Its expectation
    classifies every input as 0; single draws are wrong 30 % of the time by luck."""

    randomized = True

    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(x.shape[0], generator=self.generator) < 0.3
        logits = torch.tensor([5.0, -5.0]).expand(x.shape[0], 2).clone()
        logits[flip] = torch.tensor([-5.0, 5.0])
        return logits + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


def test_large_eps_judges_a_randomised_model_by_its_expectation_not_a_lucky_draw(tmp_path: Path) -> None:
    x, y = _images(8).float() / 255, torch.zeros(8, dtype=torch.long)
    attacks = tuple(build_suite(["pgd-linf:eps=0.05:steps=2"]))
    check = check_class("large-eps")()
    one_draw = check.run(CheckInputs(_Lucky(), x, y, attacks, seed=0))
    # by one draw the count is luck: nothing moves the model, yet lucky wrong draws "break" images
    assert one_draw["robust"] < 8 and "draws" not in one_draw
    record = check.run(CheckInputs(_Lucky(), x, y, attacks, seed=0, randomised=True))
    assert record["robust"] == 8 and record["draws"] == 20
    verdict = check.verdict(record, _NO_COLLECTED)
    assert not verdict.passed and "mean softmax of 20 draws" in verdict.detail


def test_expected_correct_uses_the_mean_of_draws_and_leaves_the_generators_as_they_were() -> None:
    model, x = _Lucky(), _images(8).float() / 255
    before = model.generator.get_state()
    assert bool(expected_correct(model, x, torch.zeros(8, dtype=torch.long)).all())
    assert torch.equal(model.generator.get_state(), before)
    deterministic = mlp()
    with torch.no_grad():
        labels = deterministic(x).argmax(dim=1)
    assert bool(expected_correct(deterministic, x, labels).all())
    assert not bool(expected_correct(deterministic, x, (labels + 1) % 10).any())
    assert not bool(expected_correct(_Lucky(), x, torch.ones(8, dtype=torch.long)).any())


def test_more_steps_on_a_randomised_model_counts_points_by_their_expectation(tmp_path: Path) -> None:
    inputs, col = _evaluated(tmp_path, _Lucky(), ["pgd-linf:eps=0.05:steps=2"], reuse=True)
    record = check_class("more-steps")().run(dataclasses.replace(inputs, randomised=True))
    ran = inputs.stored[0].ran
    expected = int((ran & (inputs.y == 0)).sum())  # the model's expectation says 0 everywhere
    assert record["robust_1x_expected"] == record["robust_2x_expected"] == expected
    verdict = check_class("more-steps")().verdict(record, col)
    assert verdict.passed and "mean softmax of 20 draws" in verdict.detail


def test_an_evaluation_finds_an_undeclared_randomised_model_for_its_checks(tmp_path: Path) -> None:
    class Undeclared(_Lucky):
        randomized = None  # type: ignore[assignment]  # nothing declared: two passes differ

    x = _images(8)
    data = EvalData(torch.arange(8), x, torch.zeros(8, dtype=torch.long))
    results = evaluate(Undeclared(), data, build_suite(["pgd-linf:eps=0.05:steps=2"]), tmp_path / "eval",
                       batch_size=8, checks="large-eps", progress=False)
    assert not results["checks"]["large-eps"]["passed"]
    assert "mean softmax of 20 draws" in results["checks"]["large-eps"]["detail"]


def test_the_expectation_of_an_ensemble_counts_its_passes() -> None:
    from scfront.evaluation.checks import expectation
    from scfront.models.ensemble import Ensemble

    assert expectation(_Lucky()).samples == 20
    assert expectation(Ensemble(_Lucky(), 10)).samples == 2 and expectation(Ensemble(_Lucky(), 3)).samples == 7
    x = _images(4).float() / 255
    inner = Ensemble(mlp(), 4)
    with torch.no_grad():  # a deterministic inner model: the mean of its softmax is its softmax
        torch.testing.assert_close(expectation(inner)(x).exp(), mlp()(x).softmax(dim=1))
