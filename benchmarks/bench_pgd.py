"""PGD on the defended model (frontend + ResNet-32, eval mode): sparse fast path vs the dense
original formulation with the same weights, using scfront's own ``PGDLinf`` attack."""

from __future__ import annotations

import torch

from benchmarks.bench_train_step import build_models
from benchmarks.common import TOLERANCE, cifar_batch, compare, max_diff, timing_fields
from scfront.attacks.pgd import PGDLinf
from scfront.config import DecoderName

STEPS = 2


def run(batch: int = 128, repeats: int = 3) -> list[dict]:
    rows = []
    x = cifar_batch(batch, seed=4)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(5))
    attack = PGDLinf(steps=STEPS)
    for decoder in (DecoderName.SMALL, DecoderName.DEFAULT):
        fast, dense = build_models(decoder)
        fast.eval(), dense.eval()
        with torch.no_grad():
            diff = max_diff(fast(x), dense(x))
        if diff > TOLERANCE:
            raise AssertionError(f"{decoder.value}: fast and dense logits differ by {diff:.2e}")

        def attack_with(model: torch.nn.Module) -> None:
            attack(model, x, y, generator=torch.Generator().manual_seed(6))

        t = compare({"dense": lambda: attack_with(dense), "fast": lambda: attack_with(fast)}, repeats)
        rows.append({
            "benchmark": f"pgd_linf_{decoder.value}", "batch": batch, "steps": STEPS,
            **timing_fields(t, batch, per_call=STEPS),  # image-steps per second
            "max_abs_output_diff": diff,
        })
    return rows
