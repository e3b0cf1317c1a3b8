"""The encoder's correlation: NCHW input (what conv2d gets from the data) vs a channels-last
copy (what :func:`scfront.frontend.encoder.correlate` uses), one thread, batch 128 of real
CIFAR-10 images; checks that both give bit-identical coefficients.

    python -m benchmarks.bench_correlate      # from the repository root
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.common import cifar_batch, reference_dictionary
from scfront.frontend.encoder import correlate


def main(repeats: int = 7) -> None:
    torch.set_num_threads(1)
    atoms = reference_dictionary().atoms.float()
    x = cifar_batch(128)
    variants = {"nchw": lambda: F.conv2d(x, atoms, stride=2), "channels_last": lambda: correlate(x, atoms, 2)}
    with torch.no_grad():
        if not torch.equal(variants["nchw"](), variants["channels_last"]()):
            raise AssertionError("channels-last correlation differs from the NCHW one")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        values.sort()
        print(f"{name:<14} min {1000 * values[0]:6.1f} ms  median {1000 * values[len(values) // 2]:6.1f} ms "
              f"per 128 images")
    print("identical outputs: yes; speedup (min):", f"{times['nchw'][0] / times['channels_last'][0]:.2f}x")


if __name__ == "__main__":
    main()
