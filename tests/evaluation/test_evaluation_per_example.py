"""How the work is cut changes nothing: batch size and shards give the same results (issue 15).

The natural ResNet-32 of ``results/train/cifar10_cpu_natural`` on 12 real CIFAR-10 test images of
the evaluation subset, a cascade of a random-start gradient attack with restarts, Square and APGD,
evaluated with all 12 images in one batch in one process, and with batches of 4 split between
3 shards (merged afterwards). Every image draws from its own streams, keyed by its dataset
index, and every attack computes each image on its own, so the accuracies, the per-image
verdicts, the work done (queries) and the stored adversarials are identical.

The model runs one image at a time: batched convolution kernels round differently for different
batch sizes (about 1e-7 on the logits), which is outside the evaluation's control and would hide
what this test checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import scfront
from scfront.attacks.blackbox.stored import load_adversarials
from scfront.data import load_cifar10
from scfront.data.select import eval_subset_indices
from scfront.evaluation.protocol import evaluate, merge
from scfront.evaluation.results import without_timings
from scfront.evaluation.runner import EvalData
from scfront.evaluation.spec import Shard
from scfront.evaluation.suite import build_suite

REPO = Path(__file__).resolve().parents[2]
NATURAL = REPO / "results" / "train" / "cifar10_cpu_natural"
N_IMAGES = 12
SUITE = ["pgd-linf:eps=0.004:steps=4:restarts=2", "square:eps=0.03:queries=20", "apgd-ce:eps=0.004:steps=4"]


class _OneImageAtATime(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return self.model(x)
        return torch.cat([self.model(x[i:i + 1]) for i in range(x.shape[0])])


@pytest.fixture(scope="module")
def setup(data_root: Path) -> tuple[nn.Module, EvalData]:
    if not (NATURAL / "model.safetensors").is_file():
        pytest.skip(f"the natural model is not at {NATURAL}")
    model = _OneImageAtATime(scfront.load(NATURAL)).eval()
    test = load_cifar10(data_root, "test")
    indices = eval_subset_indices(len(test), N_IMAGES, seed=0)
    return model, EvalData(indices, test.images[indices].clone(), test.labels[indices].clone())


def _evaluate(model: nn.Module, data: EvalData, out: Path, batch_size: int, shard: Shard = Shard()):
    return evaluate(model, data, build_suite(SUITE), out, batch_size=batch_size, checks=False,
                    progress=False, shard=shard)


def _without_timings_and_batching(results: dict) -> dict:
    out = without_timings(results)
    out.pop("batch_size")
    return out


def test_batch_size_and_shards_give_identical_results_and_adversarials(setup, tmp_path: Path) -> None:
    model, data = setup
    one_batch = _evaluate(model, data, tmp_path / "one", batch_size=N_IMAGES)
    for i in range(3):
        assert _evaluate(model, data, tmp_path / f"shard{i}", batch_size=4, shard=Shard(i, 3)) is None
    sharded = merge([tmp_path / f"shard{i}" for i in range(3)], tmp_path / "merged")

    assert one_batch["batch_size"] == N_IMAGES and sharded["batch_size"] == 4
    assert _without_timings_and_batching(one_batch) == _without_timings_and_batching(sharded)
    a = load_adversarials(tmp_path / "one" / "adversarials.safetensors")
    b = load_adversarials(tmp_path / "merged" / "adversarials.safetensors")
    for x, y in zip(a.attacks, b.attacks, strict=True):
        assert x.name == y.name and torch.equal(x.positions, y.positions)
        assert torch.equal(x.x_adv, y.x_adv) and torch.equal(x.success, y.success)
    # not a vacuous comparison: every attack of the cascade ran on several images and broke some
    assert all(entry["n_run"] > 1 for entry in one_batch["attacks"])
    accuracies = [one_batch["clean_accuracy"]] + [entry["robust_accuracy"] for entry in one_batch["attacks"]]
    assert all(a > b for a, b in zip(accuracies, accuracies[1:])), accuracies
