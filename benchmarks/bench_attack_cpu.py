"""CPU settings of attacks, measured with PGD-Linf (BPDA) on the shipped defended model, 188
CIFAR-10 test images labelled with the model's own predictions (so every image is attacked
at every step), each measurement in a fresh process:

- frozen parameters (:func:`scfront.attacks.base.frozen_parameters`, what every attack call
  does) vs parameters that require gradients, wall seconds of one PGD step on one thread, in
  the same process, alternating, with the gradients checked to be identical;
- allocator: huge pages + glibc keep-freed-memory vs the system defaults, CPU seconds of
  3 PGD steps on one thread (the settings must precede torch's first allocation), alternating,
  best of the repeats;
- threads: one process with 2 threads vs two one-thread processes at the same time (what
  ``scfront --threads 1 evaluate --shard i/2`` does), image-steps per second in total.

    python -m benchmarks.bench_attack_cpu [--repeats 3]     # from the repository root
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

from scfront.runtime import OPT_IN

BATCH, STEPS = 188, 3


def _setup() -> tuple:
    """The shipped model and (x, y): real test images, labels = the model's predictions."""
    import torch

    import scfront
    from benchmarks.common import cifar_batch

    model = scfront.load_pretrained("cifar10_cpu")
    x = cifar_batch(BATCH)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _child(threads: int) -> None:
    """One PGD measurement in this process; prints a JSON record on its last line."""
    from scfront.runtime import configure_cpu

    applied = configure_cpu(threads)
    import torch

    from scfront.attacks.pgd import PGDLinf

    model, x, y = _setup()
    attack = PGDLinf(steps=STEPS)
    attack(model, x[:16], y[:16], generator=torch.Generator().manual_seed(1))  # warm-up
    cpu, wall = float("inf"), float("inf")
    for _ in range(2):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        attack(model, x, y, generator=torch.Generator().manual_seed(1))
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    print(json.dumps({"cpu_s": cpu, "rate": BATCH * STEPS / wall, "allocator": applied}))


def _frozen_child(repeats: int) -> None:
    """Seconds of one gradient step with and without frozen parameters (JSON on the last line)."""
    from scfront.runtime import configure_cpu

    configure_cpu(1)
    import torch

    from scfront.attacks.base import frozen_parameters
    from scfront.attacks.gradient import loss_and_grad
    from scfront.attacks.losses import Loss, make_loss

    model, x, y = _setup()
    loss_fn = make_loss(Loss.CE, 50.0)
    model.eval()
    grads, best = {}, {"frozen": float("inf"), "requires_grad": float("inf")}
    for _ in range(repeats + 1):  # the first round warms up
        for name in best:
            with frozen_parameters(model) if name == "frozen" else contextlib.nullcontext():
                start = time.perf_counter()
                grads[name] = loss_and_grad(model, x, y, loss_fn)[1]
                best[name] = min(best[name], time.perf_counter() - start)
    if not torch.equal(grads["frozen"], grads["requires_grad"]):
        raise AssertionError("frozen parameters changed the input gradient")
    print(json.dumps(best))


def _spawn(threads: int, system_allocator: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (OPT_IN, "THP_MEM_ALLOC_ENABLE", "OMP_NUM_THREADS")}
    if not system_allocator:
        env[OPT_IN] = "1"
    return subprocess.Popen([sys.executable, "-m", "benchmarks.bench_attack_cpu", "--child", str(threads)],
                            env=env, stdout=subprocess.PIPE, text=True)


def _record(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed with status {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--frozen-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    if args.frozen_child:
        _frozen_child(args.repeats)
        return
    frozen = _record(subprocess.Popen([sys.executable, "-m", "benchmarks.bench_attack_cpu", "--frozen-child",
                                       "--repeats", str(args.repeats)], stdout=subprocess.PIPE, text=True))
    print(f"one PGD gradient step, 1 thread, {BATCH} images (best of {args.repeats}): frozen parameters "
          f"{frozen['frozen']:.2f} s, parameters requiring grad {frozen['requires_grad']:.2f} s; "
          f"{frozen['requires_grad'] / frozen['frozen']:.2f}x (identical gradients)", flush=True)
    cpu = {"tuned": float("inf"), "system": float("inf")}
    rate = {"one process, 2 threads": 0.0, "two processes, 1 thread each": 0.0}
    for _ in range(args.repeats):
        for name in cpu:
            cpu[name] = min(cpu[name], _record(_spawn(1, name == "system"))["cpu_s"])
        rate["one process, 2 threads"] = max(rate["one process, 2 threads"], _record(_spawn(2, False))["rate"])
        pair = [_spawn(1, False), _spawn(1, False)]
        rate["two processes, 1 thread each"] = max(rate["two processes, 1 thread each"],
                                                   sum(_record(p)["rate"] for p in pair))
    print(f"allocator, 1 thread, {STEPS} PGD steps x {BATCH} images (best of {args.repeats}): "
          f"tuned {cpu['tuned']:.2f} CPU s, system {cpu['system']:.2f} CPU s; "
          f"saved {100 * (1 - cpu['tuned'] / cpu['system']):.1f} %")
    for name, value in rate.items():
        print(f"{name:<30} {value:7.1f} image-steps/s")
    print(f"two one-thread processes / one two-thread process: "
          f"{rate['two processes, 1 thread each'] / rate['one process, 2 threads']:.2f}x")


if __name__ == "__main__":
    main()
