"""The evaluation runner at tiny scale: schema, cascade semantics, worst case, resume, shards, checks."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from eval_helpers import Quantized, mlp  # type: ignore[import-not-found]
from torch import nn

from scfront.attacks import ThreatModel
from scfront.attacks.blackbox import StartPool
from scfront.attacks.blackbox.stored import load_adversarials
from scfront.errors import ConfigError
from scfront.evaluation import runner
from scfront.evaluation.protocol import evaluate, merge
from scfront.evaluation.results import without_timings
from scfront.evaluation.runner import EvalData
from scfront.evaluation.spec import Shard
from scfront.evaluation.suite import build_suite

SUITE = ["fgsm:eps=0.03", "pgd-linf:eps=0.03:steps=3:step_size=0.01", "square:eps=0.03:queries=15"]


def _data(model: nn.Module, n: int = 16, seed: int = 3) -> tuple[EvalData, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pool = (torch.rand(64, 3, 8, 8, generator=gen) * 255).round().to(torch.uint8)
    labels = model(pool.float() / 255).argmax(1)
    labels[:2] = (labels[:2] + 1) % 10  # two images misclassified from the start
    return EvalData(torch.arange(n), pool[:n].clone(), labels[:n].clone()), pool


def _run(out, model=None, items=SUITE, **kwargs):
    model = model if model is not None else mlp()
    data, pool = _data(model)
    attacks = build_suite(items)
    kwargs.setdefault("checks", False)
    return evaluate(model, data, attacks, out, starts=StartPool(pool), batch_size=5, check_images=8,
                    progress=False, **kwargs)


def _comparable(results: dict) -> dict:
    """Everything except wall-clock timings."""
    return without_timings(results)


@pytest.fixture(scope="module")
def cascade_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade")
    return out, _run(out)


def test_results_schema_and_files(cascade_run):
    out, results = cascade_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    for key, kind in [("model", str), ("dataset", str), ("n_images", int), ("subset_seed", int),
                      ("clean_accuracy", float), ("attacks", list), ("worst_case_accuracy", float),
                      ("checks", dict)]:
        assert isinstance(results[key], kind), key
    assert results["n_images"] == 16
    for entry in results["attacks"]:
        assert {"name", "norm", "eps", "params", "robust_accuracy", "seconds"} <= set(entry)
        assert entry["norm"] in ("Linf", "L2", "L1")
        assert 0 <= entry["robust_accuracy"] <= 1 and entry["seconds"] >= 0
    assert [a["name"] for a in results["attacks"]] == ["fgsm", "pgd-linf", "square"]
    assert results["clean_accuracy"] == pytest.approx(14 / 16)
    assert "| fgsm |" in (out / "report.md").read_text()


def test_queries_count_forward_passes_and_those_with_a_backward(cascade_run):
    _, results = cascade_run
    by_name = {a["name"]: a for a in results["attacks"]}
    for name in ("fgsm", "pgd-linf"):  # gradient steps, plus gradient-free predictions
        assert 0 < by_name[name]["gradient_queries"] < by_name[name]["queries"], name
    # pgd-linf: at most 3 steps per attacked point
    assert by_name["pgd-linf"]["gradient_queries"] <= 3 * by_name["pgd-linf"]["n_run"]
    assert by_name["square"]["gradient_queries"] == 0 < by_name["square"]["queries"]


def test_saved_adversarials_are_inside_their_balls(cascade_run):
    out, results = cascade_run
    stored = load_adversarials(out / "adversarials.safetensors")
    clean = stored.clean.float() / 255
    for entry, item in zip(results["attacks"], stored.attacks):
        threat = ThreatModel(entry["norm"], entry["eps"])
        assert threat.contains(item.x_adv, clean[item.positions]).all()
        assert item.x_adv.min() >= 0 and item.x_adv.max() <= 1
        # success flags are what the model says on the stored points
        model = mlp()
        assert torch.equal(item.success, model(item.x_adv).argmax(1) != stored.labels[item.positions])


def test_cascade_semantics_and_worst_case(cascade_run):
    out, results = cascade_run
    stored = load_adversarials(out / "adversarials.safetensors")
    correct = stored.clean_pred == stored.labels
    broken = torch.zeros_like(correct)
    for pos, (entry, item) in enumerate(zip(results["attacks"], stored.attacks)):
        ran = torch.zeros_like(correct)
        ran[item.positions] = True
        assert torch.equal(ran, correct & ~broken), "an attack ran on a point already broken or misclassified"
        broken[item.positions[item.success]] = True
        assert entry["robust_accuracy"] == pytest.approx(float((correct & ~broken).float().mean()))
        assert entry["n_run"] == int(ran.sum())
    assert results["worst_case_accuracy"] == pytest.approx(float((correct & ~broken).float().mean()))
    assert all(results["worst_case_accuracy"] <= a["robust_accuracy"] for a in results["attacks"])
    expected = torch.full_like(stored.labels, -1)
    for pos in reversed(range(len(stored.attacks))):
        item = stored.attacks[pos]
        expected[item.positions[item.success]] = pos
    expected[~correct] = -2
    assert results["broken_by"] == expected.tolist()


def test_background_runs_log_a_line_per_unit_and_check(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scfront.evaluation")
    _run(tmp_path, items=("pgd-linf:steps=2",), checks=True)
    units = [r.getMessage() for r in caplog.records if "[1/1] pgd-linf batch" in r.getMessage()]
    assert len(units) == 4  # 16 images in batches of 5
    assert all(tmp_path.name in m and " s" in m for m in units)
    checks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("check ")]
    assert any("more-steps" in m for m in checks)


def test_no_cascade_runs_every_attack_on_every_correct_point(tmp_path):
    results = _run(tmp_path, cascade=False)
    stored = load_adversarials(tmp_path / "adversarials.safetensors")
    correct = stored.clean_pred == stored.labels
    any_broken = torch.zeros_like(correct)
    for entry, item in zip(results["attacks"], stored.attacks):
        assert torch.equal(item.positions, correct.nonzero().squeeze(1))
        broken = torch.zeros_like(correct)
        broken[item.positions[item.success]] = True
        any_broken |= broken
        assert entry["robust_accuracy"] == pytest.approx(float((correct & ~broken).float().mean()))
        assert entry["standalone_accuracy"] == pytest.approx(1 - float(item.success.float().mean()))
        assert results["worst_case_accuracy"] <= entry["robust_accuracy"]
    assert results["worst_case_accuracy"] == pytest.approx(float((correct & ~any_broken).float().mean()))


def test_resume_after_interruption_recomputes_nothing_finished(tmp_path, cascade_run, monkeypatch):
    real = runner._execute
    calls = {"n": 0}

    def crash_after_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # the process dies in the middle of a unit
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_execute", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "state").rglob("b*.safetensors")}
    assert not (tmp_path / "results.json").exists()

    attacked = {"n": 0}

    def counting(attack, model, x, *args, **kwargs):
        attacked["n"] += x.shape[0]
        return real(attack, model, x, *args, **kwargs)

    monkeypatch.setattr(runner, "_execute", counting)
    resumed = _run(tmp_path)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "a finished unit was rewritten"
    # the resumed run attacks exactly the points of the units that were not stored
    stored = load_adversarials(cascade_run[0] / "adversarials.safetensors")
    names = [f"a{pos:02d}-{item.name}" for pos, item in enumerate(stored.attacks)]
    missing = sum(int((item.positions // 5 == b).sum()) for name, item in zip(names, stored.attacks)
                  for b in range(4) if (tmp_path / "state" / name / f"b{b:05d}.safetensors") not in done)
    assert 0 < attacked["n"] == missing
    assert _comparable(resumed) == _comparable(cascade_run[1])


def test_points_are_rebatched_across_batches_with_the_same_results(tmp_path, cascade_run, monkeypatch):
    real = runner._execute
    sizes: dict[str, list[int]] = {}

    def recording(attack, model, x, *args, **kwargs):
        sizes.setdefault(attack.name, []).append(x.shape[0])
        return real(attack, model, x, *args, **kwargs)

    monkeypatch.setattr(runner, "_execute", recording)
    per_batch = _run(tmp_path / "per-batch", rebatch=False)
    separate, sizes = sizes, {}
    rebatched = _run(tmp_path / "rebatched")
    stored = load_adversarials(cascade_run[0] / "adversarials.safetensors")
    for item in stored.attacks:
        n = item.positions.numel()
        # full groups of the batch size (5), then the rest; batch by batch: one call per batch with work
        assert sizes[item.name] == [5] * (n // 5) + ([n % 5] if n % 5 else []), item.name
        assert len(separate[item.name]) == len(set((item.positions // 5).tolist()))
    assert sizes != separate
    # the same robust set, verdicts and points, whichever way the work was grouped
    assert _comparable(rebatched) == _comparable(per_batch) == _comparable(cascade_run[1])
    a = load_adversarials(tmp_path / "rebatched" / "adversarials.safetensors")
    b = load_adversarials(tmp_path / "per-batch" / "adversarials.safetensors")
    for x, y in zip(a.attacks, b.attacks, strict=True):
        assert torch.equal(x.positions, y.positions) and torch.equal(x.success, y.success)
        torch.testing.assert_close(x.x_adv, y.x_adv, rtol=0, atol=1e-6)


def test_shards_merge_to_the_same_results(tmp_path, cascade_run):
    a, b = tmp_path / "s0", tmp_path / "s1"
    assert _run(a, shard=Shard(0, 2)) is None  # the other shard's batches are missing
    assert _run(b, shard=Shard(1, 2)) is None
    merged = merge([a, b], tmp_path / "merged")
    assert _comparable(merged) == _comparable(cascade_run[1])
    # shards writing into one folder finish the evaluation themselves
    shared = tmp_path / "shared"
    assert _run(shared, shard=Shard(1, 2)) is None
    assert _comparable(_run(shared, shard=Shard(0, 2))) == _comparable(cascade_run[1])


def test_a_different_evaluation_is_refused(tmp_path):
    _run(tmp_path, items=["fgsm:eps=0.03"])
    with pytest.raises(ConfigError, match="another evaluation"):
        _run(tmp_path, items=["fgsm:eps=0.05"])


def test_checks_pass_on_a_plain_model_and_fail_on_a_masked_one(tmp_path):
    items = ["pgd-linf:eps=0.05:steps=5:step_size=0.02", "square:eps=0.05:queries=40"]
    plain = _run(tmp_path / "plain", items=items, checks=True)["checks"]
    assert plain["gradients-nonzero"]["passed"] and plain["large-eps"]["passed"]
    assert plain["randomness"]["passed"] and plain["dynamic"]["passed"]
    assert plain["probability-outputs"]["passed"] and plain["class-count"]["passed"]
    assert "bpda-variants" not in plain  # opt-in
    masked = _run(tmp_path / "masked", model=Quantized(), items=items, checks=True)["checks"]
    assert list(masked) == ["probability-outputs", "class-count", "randomness", "dynamic", "gradients-nonzero",
                            "large-eps", "more-steps", "blackbox-vs-whitebox"]
    assert not masked["gradients-nonzero"]["passed"]
    assert not masked["large-eps"]["passed"]
    assert not masked["blackbox-vs-whitebox"]["passed"], masked["blackbox-vs-whitebox"]["detail"]


# The child evaluates the same tiny suite as ``cascade_run`` but sleeps after every finished
# unit, so that the parent can SIGKILL it with some units written and others not.
_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import test_evaluation_runner as t
real = t.runner._execute
def slow(*args, **kwargs):
    out = real(*args, **kwargs)
    time.sleep(0.3)
    return out
t.runner._execute = slow
t._run(Path({out!r}))
"""


def test_sigkill_then_rerun_gives_the_uninterrupted_results(tmp_path, cascade_run):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "killed"
    code = _CHILD.format(here=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while len(list((out / "state").rglob("b*.safetensors"))) < 6:
        assert proc.poll() is None, "the evaluation ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (out / "results.json").exists()
    done = {p: p.stat().st_mtime_ns for p in (out / "state").rglob("b*.safetensors")}

    resumed = _run(out)  # "the same command again", in-process
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "a finished unit was rewritten"
    assert _comparable(resumed) == _comparable(cascade_run[1])
    a = load_adversarials(out / "adversarials.safetensors")
    b = load_adversarials(cascade_run[0] / "adversarials.safetensors")
    for x, y in zip(a.attacks, b.attacks, strict=True):
        assert x.name == y.name and torch.equal(x.positions, y.positions) and torch.equal(x.x_adv, y.x_adv)


class _BatchNormNet(nn.Module):
    """An MLP with BatchNorm: in training mode a forward pass would change its running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = mlp(2)
        self.norm = nn.BatchNorm1d(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(x))


def test_evaluation_leaves_the_model_in_eval_mode_and_unchanged(tmp_path) -> None:
    """A regression test: the runner's query-counting wrapper used to start in training mode, so
    the first attack restored *training* mode on the model, and the minimum-norm attacks'
    (Boundary) success check then ran BatchNorm on batch statistics and updated them."""
    model = _BatchNormNet().eval()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-0.5, 0.5)
        model.norm.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data, pool = _data(model)
    attacks = build_suite(["pgd-linf:eps=0.03:steps=2:step_size=0.01", "boundary:eps=0.3:steps=5"])
    evaluate(model, data, attacks, tmp_path / "e", starts=StartPool(pool), batch_size=5, checks=False,
             progress=False)
    assert not any(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_an_attack_restores_each_submodules_own_mode() -> None:
    """A wrapper whose own flag differs from its children's gets every flag back as it was."""
    from scfront.attacks.registry import create_attack

    inner = _BatchNormNet().eval()
    wrapper = nn.Sequential(inner)
    wrapper.training = True  # what nn.Module() gives a new wrapper around an eval-mode model
    x = torch.rand(4, 3, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    create_attack("pgd-linf", eps=0.03, steps=1, step_size=0.01)(wrapper, x, y)
    assert wrapper.training and not inner.training and not inner.norm.training


# --------------------------------------------------------------------------- columns
COLUMNS = {"white": ["fgsm:eps=0.1", "pgd-linf:eps=0.1:steps=3"],
           "black": ["square:eps=0.03:queries=15"], "l2": ["pgd-l2:eps=0.3:steps=3"]}


def _run_columns(out, columns=COLUMNS, **kwargs):
    from scfront.evaluation.suite import build_columns

    model = mlp()
    data, pool = _data(model)
    return evaluate(model, data, build_columns(columns), out, starts=StartPool(pool), batch_size=5,
                    checks=False, progress=False, **kwargs)


def test_columns_are_cascades_of_their_own_and_draw_what_they_draw_alone(tmp_path):
    """A row of columns equals one evaluation per column: same points attacked, same adversarials
    (each attack's generators are named by its position in its column), same accuracies."""
    results = _run_columns(tmp_path / "row")
    stored = load_adversarials(tmp_path / "row" / "adversarials.safetensors")
    by_name = {item.name: item for item in stored.attacks}
    correct = stored.clean_pred == stored.labels
    robust_everywhere = correct.clone()
    assert list(results["columns"]) == list(COLUMNS)
    for label, items in COLUMNS.items():
        alone = _run(tmp_path / label, items=items)
        alone_stored = load_adversarials(tmp_path / label / "adversarials.safetensors")
        column = results["columns"][label]
        assert column["accuracy"] == alone["worst_case_accuracy"]
        assert column["attacks"] == [a["name"] for a in alone["attacks"]]
        robust = correct.clone()
        for entry, item in zip(alone["attacks"], alone_stored.attacks):
            mine = by_name[item.name]
            assert torch.equal(mine.positions, item.positions) and torch.equal(mine.x_adv, item.x_adv)
            row_entry = next(a for a in results["attacks"] if a["name"] == entry["name"])
            assert row_entry["column"] == label
            assert row_entry["robust_accuracy"] == entry["robust_accuracy"]
            robust[mine.positions[mine.success]] = False
        assert column["accuracy"] == pytest.approx(float(robust.float().mean()))  # worst case over the column
        robust_everywhere &= robust
    assert results["worst_case_accuracy"] == pytest.approx(float(robust_everywhere.float().mean()))
    assert results["worst_case_accuracy"] <= min(c["accuracy"] for c in results["columns"].values())
    # square ran on points the white-box column broke: columns do not cascade into each other
    white_broken = {int(i) for name in ("fgsm", "pgd-linf") for i in by_name[name].positions[by_name[name].success]}
    assert white_broken and white_broken <= set(by_name["square"].positions.tolist())
    assert "## Columns" in (tmp_path / "row" / "report.md").read_text()


def test_plain_suites_have_no_columns(cascade_run):
    _, results = cascade_run
    assert "columns" not in results and all("column" not in a for a in results["attacks"])


def test_column_labels_are_all_or_nothing():
    from scfront.evaluation.spec import AttackSpec, EvalSpec

    def spec(*labels):
        return EvalSpec("m", "0", "cifar10", 4, 0, 0, 4, True, False, 4,
                        tuple(AttackSpec(f"a{i}", column=label) for i, label in enumerate(labels)))

    assert spec("x", "y", "x").columns == {"x": (0, 2), "y": (1,)}
    assert spec("x", "y", "x").column_peers(2) == (0,) and spec("x", "y", "x").position_in_column(2) == 1
    assert spec(None, None).columns == {} and spec(None, None).column_peers(1) == (0,)
    with pytest.raises(ConfigError, match="every attack"):
        spec("x", None)
    with pytest.raises(ConfigError, match="non-empty"):
        spec(" ")
    with pytest.raises(ConfigError, match="no attack"):
        _run_columns(None, columns={"a": ["fgsm"], "b": []})


class _ConvBN(nn.Module):
    """Convolution + eval-mode BatchNorm with non-trivial statistics: what the attack copy folds."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            self.norm.running_mean.copy_(torch.randn(8, generator=gen) * 0.1)
            self.norm.running_var.copy_(torch.rand(8, generator=gen) + 0.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)))


def test_attacks_run_on_the_folded_copy_and_verdicts_on_the_model(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="scfront.evaluation")
    real = runner._execute
    attacked, verified = [], []

    def recording(attack, model, x, y, generator, starts, verify=None):
        attacked.append(model.model)
        verified.append(verify.model if verify is not None else None)
        return real(attack, model, x, y, generator, starts, verify)

    monkeypatch.setattr(runner, "_execute", recording)
    model = _ConvBN()
    fast = _run(tmp_path / "fast", model=model)
    assert any("fold copy" in r.getMessage() and "1 BatchNorm" in r.getMessage() for r in caplog.records)
    assert all(m is not model and type(m).__name__ == "_ConvBN" for m in attacked)
    assert all(v is model for v in verified)
    attacked.clear(), verified.clear()
    plain = _run(tmp_path / "plain", model=model, attack_model="plain")
    assert all(m is model for m in attacked) and all(v is None for v in verified)
    assert _comparable(fast) == _comparable(plain)
    assert not model.norm.__class__.__name__.startswith("Folded")  # the model itself is never changed
    with pytest.raises(ConfigError, match="attack_model must be one of"):
        _run(tmp_path / "bad", model=model, attack_model="fastest")


class _Uncopyable(nn.Module):
    """An MLP holding a lock: ``copy.deepcopy`` fails on it, so no attack copy can be made."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.net = mlp(3)
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_model_that_cannot_be_copied_is_attacked_itself(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="scfront.evaluation")
    model = _Uncopyable()
    results = _run(tmp_path / "e", model=model)
    assert any("no attack copy" in r.getMessage() for r in caplog.records)
    assert _comparable(results) == _comparable(_run(tmp_path / "plain", model=model, attack_model="plain"))


def test_the_attack_copy_is_built_only_when_an_attack_has_work(tmp_path, monkeypatch):
    from scfront.evaluation import protocol

    real, built = protocol._attack_copy, []

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(protocol, "_attack_copy", counting)
    model = _ConvBN()
    first = _run(tmp_path, model=model)
    assert built == [1]
    assert _comparable(_run(tmp_path, model=model)) == _comparable(first)  # every unit stored
    assert built == [1]
