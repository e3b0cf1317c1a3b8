"""Time the fast dictionary learner on a device and measure what it learned.

Runs :func:`scfront.dictionary.learn_fast` on the CIFAR-10 training images (or a uint8 ``.npy``
subset of them, for machines without the dataset), then the held-out LARS objective of the
result and of the shipped ``cifar10``/``cifar10_fast`` dictionaries on the same seeded test
patches, and writes one JSON file. Example (GPU):

    python benchmarks/dictionary_fast_learner.py --train-npy train.npy --test-npy test.npy \
        --device cuda --steps 2000 --batch-size 8192 --out result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scfront.dictionary import FastSettings, get_dictionary, heldout_objective, learn_fast
from scfront.dictionary.patches import PatchSampler


def _images(npy: Path | None, data_root: Path | None, split: str) -> torch.Tensor:
    if npy is not None:
        return torch.from_numpy(np.load(npy, allow_pickle=False))
    from scfront.data import load_cifar10

    return load_cifar10(data_root, split).images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-npy", type=Path, default=None)
    parser.add_argument("--test-npy", type=Path, default=None)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--fista-iterations", type=int, default=20)
    parser.add_argument("--heldout", type=int, default=5000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    train = _images(args.train_npy, args.data_root, "train")
    test = _images(args.test_npy, args.data_root, "test")
    settings = FastSettings(steps=args.steps, batch_size=args.batch_size,
                            fista_iterations=args.fista_iterations, device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    learned = learn_fast(train, settings)
    seconds = time.perf_counter() - start
    patches = PatchSampler(test, 4, 2, torch.Generator().manual_seed(0)).sample(
        args.heldout, replace=False)
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "train_images": int(train.shape[0]), "settings": learned.meta["settings"],
        "patches_seen": learned.meta["patches_seen"], "learn_seconds": round(seconds, 2),
        "heldout_patches": args.heldout, "heldout_objective": {},
    }
    for label, dictionary in (("learned", learned), ("cifar10", get_dictionary("cifar10")),
                              ("cifar10_fast", get_dictionary("cifar10_fast"))):
        result["heldout_objective"][label] = heldout_objective(dictionary, patches, 1.0).objective
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
