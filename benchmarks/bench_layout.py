"""ResNet-32 on the CPU with NCHW input (the layout images arrive in) vs the channels-last copy
that the classifiers now make of their input (:func:`scfront.models.layers.cpu_channels_last`):
inference (what black-box attacks and clean accuracy run) and forward + input gradient (what
white-box attacks run). Real CIFAR-10 test images, the trained natural ResNet-32 of
``results/train/cifar10_cpu_natural``, torch's default thread count; checks that both layouts
give the same logits (max |difference| ≤ 1e-4) and input gradients as close to the float64
gradient as each other.

    python -m benchmarks.bench_layout [--batch 250] [--repeats 5]     # from the repository root
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Callable

import torch

import scfront
from benchmarks.common import TOLERANCE, NCHWClassifier, cifar_batch, max_diff

MODEL = Path(__file__).resolve().parents[1] / "results" / "train" / "cifar10_cpu_natural"


def _input_gradient(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    (grad,) = torch.autograd.grad(logits.logsumexp(1).sum(), xr)
    return logits.detach(), grad


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = scfront.load(MODEL)
    x = cifar_batch(args.batch)

    # "nchw": computed in the layout the images arrive in; "channels_last": scfront's classifier
    models = {"nchw": NCHWClassifier(model), "channels_last": model}

    def inference(layout: str) -> torch.Tensor:
        with torch.no_grad():
            return models[layout](x)

    def gradient(layout: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _input_gradient(models[layout], x)

    diff_logits = max(max_diff(inference("nchw"), inference("channels_last")),
                      max_diff(gradient("nchw")[0], gradient("channels_last")[0]))
    # Input gradients: a pre-activation within float rounding of zero flips a leaky ReLU's slope
    # in either layout, so both are compared with the float64 gradient (relative L2 distance).
    reference = _input_gradient(copy.deepcopy(model).double(), x.double())[1]
    grad_error = {layout: float((gradient(layout)[1].double() - reference).norm() / reference.norm())
                  for layout in ("nchw", "channels_last")}
    if diff_logits > TOLERANCE or grad_error["channels_last"] > 2 * grad_error["nchw"] + 1e-6:
        raise AssertionError(f"layouts disagree: logits {diff_logits:.2e}, gradient error vs float64 {grad_error}")
    print(f"ResNet-32, batch {args.batch}, {torch.get_num_threads()} threads, best of {args.repeats}")
    for task, fn in (("inference (no_grad)", inference), ("forward + input gradient", gradient)):
        best = {"nchw": float("inf"), "channels_last": float("inf")}
        for _ in range(args.repeats):
            for layout in best:  # alternate, so that drifting machine load hits both alike
                best[layout] = min(best[layout], _time(lambda: fn(layout)))
        rates = {k: args.batch / v for k, v in best.items()}
        print(f"{task:<26} NCHW {rates['nchw']:7.1f} img/s   channels-last {rates['channels_last']:7.1f} img/s"
              f"   speedup {rates['channels_last'] / rates['nchw']:.2f}x")
    print(f"logits: max |difference| {diff_logits:.1e} (limit {TOLERANCE:g}); input gradient vs float64: "
          f"NCHW {grad_error['nchw']:.1e}, channels-last {grad_error['channels_last']:.1e} (relative L2)")


if __name__ == "__main__":
    main()
