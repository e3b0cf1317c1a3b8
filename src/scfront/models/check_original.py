"""Clean accuracy of the original implementation's ResNet-32 checkpoints on CIFAR-10.

The acceptance check of :func:`~scfront.models.import_original_resnet32`: on the full lossless
10,000-image test set the PGD-AT checkpoint must give 79.41 % and the natural one 67.35 %.

Usage::

    python -m scfront.models.check_original CHECKPOINT.pt [...] --data-root DIR [--n-images N]

``--n-images`` below 10,000 uses the fixed seeded evaluation subset (docs/evaluation.md §2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from scfront.cli_options import device_option
from scfront.errors import ScfrontError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scfront.models.check_original",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="original ResNet-32 .pt files")
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding cifar10/")
    parser.add_argument("--n-images", type=int, default=10_000, help="test images (default all)")
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", type=device_option, default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args(argv)

    from scfront.data import eval_subset_indices, load_cifar10
    from scfront.models.original import import_original_resnet32
    from scfront.training.metrics import accuracy

    try:
        test = load_cifar10(args.data_root, "test")
        images, labels = test.images, test.labels
        if args.n_images < len(test):
            index = eval_subset_indices(len(test), args.n_images, args.subset_seed)
            images, labels = images[index], labels[index]
        for path in args.checkpoints:
            model = import_original_resnet32(path).to(args.device)
            start = time.perf_counter()
            acc = accuracy(model, images, labels, args.batch_size, args.device)
            print(f"{path.name}: clean accuracy {100 * acc:.2f} % on {len(labels)} images "
                  f"({time.perf_counter() - start:.1f} s)")
    except ScfrontError as exc:
        print(f"check_original: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
