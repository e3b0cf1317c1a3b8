"""Data loading and batching speed (not collected by pytest).

    python benchmarks/bench_data.py --data-root ../shared/datasets            # CPU, real data
    python benchmarks/bench_data.py --synthetic 50000 --device cuda            # no data needed

1. CIFAR-10 first load (decode every PNG into a fresh, temporary cache) and cached reload,
   per split, with the reload/first-load ratio.
2. One augmented epoch through ``scfront.data.batches`` against a baseline in the same run: the
   same crop-and-flip done image by image in a Python loop (what a per-item Dataset does).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_loading(data_root: Path) -> torch.Tensor:
    from scfront.data import load_cifar10

    images = None
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SCFRONT_CACHE"] = cache
        for split in ("test", "train"):
            first, t_first = _timed(lambda: load_cifar10(data_root, split))
            again, t_again = _timed(lambda: load_cifar10(data_root, split))
            assert torch.equal(first.images, again.images)
            print(f"cifar10/{split}: {len(first)} images; first load {t_first:.2f} s, cached "
                  f"reload {t_again:.2f} s (x{t_first / t_again:.0f} faster)")
            images = first.images
    assert images is not None
    return images


def _loop_crop_flip(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    out = torch.empty_like(x)
    padded = F.pad(x, (padding,) * 4)
    h, w = x.shape[2:]
    for i in range(x.shape[0]):
        dy, dx, flip = (int(v) for v in torch.randint(0, 2 * padding + 1, (3,), generator=gen))
        crop = padded[i, :, dy : dy + h, dx : dx + w]
        out[i] = crop.flip(2) if flip % 2 else crop
    return out


def bench_batches(images: torch.Tensor, device: str, batch_size: int = 512) -> None:
    from scfront.data import batches

    labels = torch.zeros(images.shape[0], dtype=torch.int64)
    gen = torch.Generator(device=device).manual_seed(0)
    it = batches(images, labels, batch_size, shuffle=True, generator=gen, augment=True,
                 device=device)

    def epoch() -> int:
        n = 0
        for x, _ in it:
            n += x.shape[0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return n

    epoch()  # warm-up (CUDA context, allocator)
    n, t_batched = _timed(epoch)
    # Baseline on a tenth of the data: the per-image loop is slow.
    sub = images[: images.shape[0] // 10].to(device).float().div(255)
    cpu_gen = torch.Generator().manual_seed(0)
    _, t_loop = _timed(lambda: _loop_crop_flip(sub, 4, cpu_gen))
    loop_rate = sub.shape[0] / t_loop
    rate = n / t_batched
    print(f"batches(augment) on {device}: {rate:,.0f} images/s; per-image loop {loop_rate:,.0f} "
          f"images/s (x{rate / loop_rate:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--synthetic", type=int, default=0, help="use N synthetic images instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.synthetic:
        from scfront.data import load_synthetic

        images = load_synthetic(args.synthetic).images
    else:
        if args.data_root is None:
            parser.error("give --data-root DIR or --synthetic N")
        images = bench_loading(args.data_root)
    bench_batches(images, args.device)


if __name__ == "__main__":
    main()
