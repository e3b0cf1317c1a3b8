"""Dictionary learning to a fixed held-out objective: the fast torch learner vs the original
(scikit-learn, 1000 mini-batch steps of 5 patches, docs/method.md §1).

The target is the held-out lasso objective (exact LARS codes, alpha 1) that the faithful
learner reaches with the paper's procedure; the fast learner is run with growing step budgets
until it matches it. Reported: the time of each learner to reach the target and the ratio.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import shared_root
from scfront.data import load_cifar10
from scfront.dictionary import FaithfulSettings, FastSettings, heldout_objective, learn_faithful, learn_fast
from scfront.dictionary.patches import PatchSampler

HELDOUT = 1000
FAST_BUDGETS = (10, 20, 40, 80, 160)  # steps of 2048 patches, tried in turn


def run(heldout: int = HELDOUT) -> list[dict]:
    root = shared_root() / "datasets"
    train = load_cifar10(root, "train").images
    patches = PatchSampler(load_cifar10(root, "test").images, 4, 2,
                           torch.Generator().manual_seed(0)).sample(heldout, replace=False)
    start = time.perf_counter()
    faithful = learn_faithful(train, FaithfulSettings())
    faithful_s = time.perf_counter() - start
    target = heldout_objective(faithful, patches, 1.0).objective
    row = {"benchmark": "dictionary_to_heldout_objective", "heldout_patches": heldout,
           "target_objective": target, "faithful_seconds": faithful_s}
    for steps in FAST_BUDGETS:
        start = time.perf_counter()
        learned = learn_fast(train, FastSettings(steps=steps))
        seconds = time.perf_counter() - start
        objective = heldout_objective(learned, patches, 1.0).objective
        row.update({"fast_steps": steps, "fast_seconds": seconds, "fast_objective": objective})
        if objective <= target:
            break
    row["reached"] = row["fast_objective"] <= target
    row["speedup"] = faithful_s / row["fast_seconds"] if row["reached"] else None
    return [row]
