"""Training throughput of the cpu preset's recipes (not collected by pytest).

    python benchmarks/bench_training.py --data-root ../shared/datasets [--threads 2] [--batches 8]
    python benchmarks/bench_training.py --synthetic --device cuda --preset paper

For each recipe (defense = small decoder + ResNet-32, natural, PGD-AT, TRADES) one full
training step of the real loop (batch of the preset, augmentation, objective, SGD step) is
timed over ``--batches`` batches after a warm-up batch. Reported per recipe: wall-clock and
CPU-time throughput (images/s; CPU time is the less disturbed figure on a shared machine), the
ratio to natural ResNet-32 measured in the same run, and the projected hours of the preset's
epochs over the full training set (monitor evaluation excluded).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from scfront.config import RECIPES, load_preset
from scfront.data import batches, load_dataset
from scfront.models import build_model
from scfront.models.init import initialize_
from scfront.training.adversarial import initial_perturbation, training_loss


CIFAR10_TRAIN = 50_000


def measure(recipe: str, preset: str, data_root: Path | None, n_batches: int, device: str) -> dict:
    overrides = [f'train.device="{device}"']
    if data_root is None:  # synthetic images: same shapes and cost, no files needed
        overrides += ['data.dataset="synthetic"', "data.train_limit=none"]
    config = load_preset(preset, "cifar10", overrides, recipe=recipe)
    tc = config.train
    train_set = load_dataset(config.data, data_root, "train")
    epoch_images = CIFAR10_TRAIN if data_root is None else len(train_set)
    model = initialize_(build_model(config), torch.Generator().manual_seed(0)).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=tc.momentum,
                                weight_decay=tc.weight_decay)
    gen = torch.Generator(device).manual_seed(0)
    loader = iter(batches(train_set.images, train_set.labels, tc.batch_size, shuffle=True,
                          generator=gen, augment=True, drop_last=True, device=device))

    def step() -> None:
        x, y = next(loader)
        if tc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, _ = training_loss(tc, model, model, x, y, initial_perturbation(tc, x, gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()

    step()  # warm-up: kernel selection, allocations
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n_batches):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = n_batches * tc.batch_size
    return {"recipe": recipe, "epochs": tc.epochs, "train_images": epoch_images,
            "wall_ips": images / wall, "cpu_ips": images / cpu,
            "projected_h": tc.epochs * epoch_images / (images / wall) / 3600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-root", type=Path, help="folder holding cifar10/")
    source.add_argument("--synthetic", action="store_true",
                        help="synthetic 32x32 images (projections use CIFAR-10's 50,000)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per recipe")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for recipe in ["natural"] + [r for r in args.recipes if r != "natural"]:
        # Adversarial recipes cost ~11x more per batch: fewer batches keep the run short.
        n = args.batches if recipe in ("natural", "defense") else max(2, args.batches // 4)
        rows.append(measure(recipe, args.preset, args.data_root, n, args.device))
        r = rows[-1]
        print(f"{recipe:8s} {r['wall_ips']:8.1f} img/s wall  {r['cpu_ips']:8.1f} img/s cpu-time  "
              f"x{r['wall_ips'] / rows[0]['wall_ips']:.2f} vs natural  "
              f"{r['epochs']} epochs -> {r['projected_h']:.2f} h", flush=True)


if __name__ == "__main__":
    main()
