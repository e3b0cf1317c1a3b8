"""The active binarization test (scfront.evaluation.binarization) on tiny seeded networks: a
working attack passes, an attack that cannot reach the boundary and a gradient-masked model fail,
features that cannot separate the task count as failed setups; the construction (distances,
readout, batching) and the check."""

from __future__ import annotations

import dataclasses
import importlib
import json
import runpy
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import torch
from torch import nn

from scfront.attacks.registry import create_attack
from scfront.attacks.threat import ThreatModel
from scfront.errors import ConfigError
from scfront.evaluation import checks
from scfront.evaluation.checks import CheckInputs
from scfront.evaluation.spec import unit_generators
from scfront.sampling import rows_of

EPS = 0.1


@pytest.fixture(scope="module")
def bz() -> Iterator[ModuleType]:
    """The module, imported here (importing it registers the check ``binarization``).

    The check leaves the registry when these tests end: until the evaluation selects checks
    opt-in, the other evaluation tests expect the registry without it.
    """
    before = set(checks.available_checks())
    module = importlib.import_module("scfront.evaluation.binarization")
    yield module
    for name in set(checks.available_checks()) - before:
        del checks._REGISTRY._classes[name]  # test-only: restore the registry the other tests expect


class Net(nn.Module):
    """3x8x8 images → conv 3→16, ReLU, 2x2 pool, linear 256→64, ReLU (features) → linear 64→10.

    ``masked``: the input reaches the network through a zero-gradient copy (same forward values,
    no gradient: the classic gradient-masking front). ``constant``: features that ignore the input.
    """

    def __init__(self, seed: int = 0, masked: bool = False, constant: bool = False) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.hidden = nn.Linear(256, 64)
        self.linear = nn.Linear(64, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.masked, self.constant = masked, constant
        self.eval()

    @property
    def readout(self) -> nn.Linear:
        return self.linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.masked:
            x = x.detach() + 0.0 * x
        if self.constant:
            x = torch.full_like(x, 0.5)
        h = torch.nn.functional.avg_pool2d(torch.relu(self.conv(x)), 2)
        return torch.relu(self.hidden(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def _data(k: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(k, 3, 8, 8, generator=gen) * 0.8 + 0.1
    return x, torch.arange(k) % 10, torch.arange(100, 100 + k)


def _settings(bz: ModuleType, **kw: object) -> object:
    return bz.BinarizationSettings(**{"n_inner": 40, "n_random": 10, **kw})


def _run(bz: ModuleType, model: nn.Module, k: int = 6, settings: dict | None = None, **attack_kw: object
         ) -> object:
    x, y, idx = _data(k)
    attacks = [create_attack("pgd-linf", eps=EPS, **attack_kw)]
    return bz.binarization_test(model, x, y, attacks, EPS, "Linf", unit_generators(0, idx, "bz"),
                                _settings(bz, **(settings or {})), indices=idx)


def test_a_working_attack_passes(bz: ModuleType) -> None:
    result = _run(bz, Net(), steps=20)
    assert result.n == 6 and result.n_failed == 0 and result.success_rate == 1.0 and result.passed
    assert all(o.broken_by == 0 for o in result.images)
    assert [o.index for o in result.images] == list(range(100, 106))


def test_a_stored_check_record_with_the_runners_seconds_reads_back(bz: ModuleType) -> None:
    # the check runner stores {**record, "seconds": <the check's total>} over the per-phase dict
    result = _run(bz, Net(), k=2, steps=20)
    stored = {**result.to_json(), "applicable": True, "seconds": 3.5}
    again = bz.BinarizationResult.from_json(stored)
    assert again.success_rate == result.success_rate and again.seconds == {"total": 3.5}
    verdict = bz.BinarizationCheck().verdict(stored, None)
    assert verdict.passed == result.passed and "attack success rate" in verdict.detail


def test_an_attack_that_cannot_reach_the_boundary_fails(bz: ModuleType) -> None:
    x, y, idx = _data()
    weak = [create_attack("pgd-linf", eps=EPS / 100, steps=20)]
    result = bz.binarization_test(Net(), x, y, weak, EPS, "Linf", unit_generators(0, idx, "bz"), _settings(bz))
    assert result.n_valid == 6 and result.success_rate < bz.PASS_RATE and not result.passed


def test_a_gradient_masked_model_fails(bz: ModuleType) -> None:
    result = _run(bz, Net(masked=True), steps=20)
    assert result.n_valid == 6 and result.success_rate <= 0.5 and not result.passed
    # the same network without the masking passes: the masking, not the task, defeats PGD
    assert _run(bz, Net(), steps=20).passed


def test_features_that_cannot_separate_are_failed_setups(bz: ModuleType) -> None:
    result = _run(bz, Net(constant=True), k=3, settings={"max_fit_iterations": 40}, steps=5)
    assert result.n_valid == 0 and result.n_failed == 3 and not result.passed
    assert {o.setup for o in result.images} == {bz.Setup.NOT_SEPARABLE.value}
    assert all(o.broken_by == -2 and not o.success for o in result.images)


def test_the_task_is_built_as_specified(bz: ModuleType) -> None:
    x, _, idx = _data(3)
    settings = _settings(bz)
    tasks = bz.prepare_tasks(Net(), x, EPS, "Linf", unit_generators(0, idx, "bz"), settings)
    threat = ThreatModel("Linf", EPS)
    model = Net()
    for task in tasks:
        assert task.setup is bz.Setup.OK and task.boundary_margin > 0
        assert float(threat.distance(task.boundary[None], task.x[None])) == pytest.approx(EPS, rel=1e-5)
        with torch.no_grad():
            logits = bz._binary_model(model, [task], threat.norm)(torch.stack([task.x, task.boundary]))
        assert logits.argmax(1).tolist() == [0, 1]
        # the boundary keeps only (1 - closeness) of its margin: it lies just past the decision boundary
        assert 0 < float(logits[1, 1] - logits[1, 0]) < 1e-2 * float(logits[0, 0] - logits[0, 1])
    # L2: the boundary point is at distance ε after clipping, also next to the box faces
    corner = torch.zeros(2, 3, 8, 8)
    corner[1] = 1.0
    points = bz._boundary_points(corner, ThreatModel("L2", 0.5), torch.Generator().manual_seed(0))
    assert ThreatModel("L2", 0.5).distance(points, corner).tolist() == pytest.approx([0.5, 0.5], rel=1e-6)


def test_results_are_per_image_and_deterministic(bz: ModuleType) -> None:
    x, y, idx = _data(4)
    attacks = [create_attack("pgd-linf", eps=EPS, steps=20)]
    settings = _settings(bz)
    full = bz.binarization_test(Net(), x, y, attacks, EPS, "Linf", unit_generators(0, idx, "bz"), settings,
                                indices=idx)
    again = bz.binarization_test(Net(), x, y, attacks, EPS, "Linf", unit_generators(0, idx, "bz"), settings,
                                 indices=idx)
    alone = bz.binarization_test(Net(), x[2:3], y[2:3], attacks, EPS, "Linf",
                                 rows_of(unit_generators(0, idx, "bz"), [2]), settings, indices=idx[2:3])
    assert full.images == again.images
    assert full.images[2] == alone.images[0]
    # a setup reused for another cascade gives what a fresh call gives
    tasks = bz.prepare_tasks(Net(), x, EPS, "Linf", unit_generators(0, idx, "bz"), settings)
    reused = bz.binarization_test(Net(), x, y, attacks, EPS, "Linf", unit_generators(0, idx, "bz"), settings,
                                  indices=idx, tasks=tasks)
    assert reused.images == full.images


def test_batched_readouts_equal_each_images_model(bz: ModuleType) -> None:
    x, _, idx = _data(3)
    tasks = bz.prepare_tasks(Net(), x, EPS, "Linf", unit_generators(0, idx, "bz"), _settings(bz))
    model = Net()
    threat = ThreatModel("Linf", EPS)
    points = threat.random_start(x, torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = bz._binary_model(model, tasks, threat.norm)(points)
        for i, task in enumerate(tasks):
            alone = bz._binary_model(model, [task], threat.norm)(points[i:i + 1])[0]
            assert torch.allclose(together[i], alone, atol=1e-6)
    near = [dataclasses.replace(task) for task in tasks]
    near[1] = dataclasses.replace(tasks[1], x=tasks[0].x + 0.5 * EPS)  # balls that overlap: never in one batch
    groups = bz._groups(near, [0, 1, 2], threat)
    assert sorted(map(sorted, groups)) == [[0, 2], [1]]
    assert bz._groups(tasks, [0, 1, 2], threat, size=2) == [[0, 1], [2]]


def test_bad_uses_are_one_clear_error(bz: ModuleType) -> None:
    x, y, idx = _data(2)
    gens = unit_generators(0, idx, "bz")
    pgd = [create_attack("pgd-linf", eps=EPS)]
    hookless = nn.Sequential(nn.Flatten(), nn.Linear(192, 10))
    with pytest.raises(ConfigError, match="features"):
        bz.binarization_test(hookless, x, y, pgd, EPS, "Linf", gens)
    with pytest.raises(ConfigError, match="L1"):
        bz.binarization_test(Net(), x, y, [create_attack("pgd-l1", eps=EPS)], EPS, "L1", gens)
    with pytest.raises(ConfigError, match="inside its Linf ball"):
        bz.binarization_test(Net(), x, y, [create_attack("pgd-linf", eps=2 * EPS)], EPS, "Linf", gens)
    with pytest.raises(ConfigError, match="n_inner"):
        bz.BinarizationSettings(n_inner=1)


def test_the_check_is_registered_runs_and_judges(bz: ModuleType) -> None:
    assert checks.check_class("binarization") is bz.BinarizationCheck
    assert bz.BinarizationCheck.default is False and bz.BinarizationCheck.budget == bz.CHECK_IMAGES
    x, y, idx = _data(4)
    suite = (create_attack("pgd-linf", eps=EPS, steps=20), create_attack("pgd-l2", eps=0.5))
    check = bz.BinarizationCheck()
    record = check.run(CheckInputs(Net(), x, y, suite, seed=0, indices=idx))
    record = json.loads(json.dumps(record))  # stored as JSON
    assert record["n"] == 4 and record["attacks"] == ["pgd-linf"]
    verdict = check.verdict(record, None)
    assert verdict.passed and "100.0%" in verdict.detail and verdict.values["n_failed"] == 0
    masked = check.verdict(json.loads(json.dumps(check.run(CheckInputs(Net(masked=True), x, y, suite, 0, idx)))),
                           None)
    assert not masked.passed
    hookless = nn.Sequential(nn.Flatten(), nn.Linear(192, 10)).eval()
    missing = check.verdict(check.run(CheckInputs(hookless, x, y, suite, 0, idx)), None)
    assert not missing.passed and "readout" in missing.detail


def test_the_committed_table_is_rendered_from_its_json(bz: ModuleType) -> None:
    folder = Path(__file__).resolve().parents[2] / "results" / "binarization"
    render = runpy.run_path(str(folder.parents[1] / "scripts" / "binarization_table.py"))["render"]
    record = json.loads((folder / "binarization.json").read_text(encoding="utf-8"))
    table = render(record)
    assert (folder / "table.md").read_text(encoding="utf-8") == table
    rows = [line for line in table.splitlines() if line.startswith("| original") or line.startswith("| shipped")]
    assert len(rows) == 6 and all(line in (folder / "README.md").read_text(encoding="utf-8") for line in rows)
    for cell in record["cells"]:  # the numbers are what the stored per-image outcomes give
        result = bz.BinarizationResult.from_json(cell["result"])
        assert result.summary() == {k: cell["result"][k] for k in result.summary()}
