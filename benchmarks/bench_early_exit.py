"""Early exit: what PGD-Linf (40 steps) and APGD-CE (100 steps) cost when broken points leave the batch.

On the shipped defense (``scfront.load_pretrained("cifar10_cpu")``) and the natural ResNet-32
(``results/train/cifar10_cpu_natural``), the first ``--images`` images of the evaluation subset
(``eval_subset_indices(10000, n, 0)``, true labels), at the attacks' defaults (ε = 8/255, the
model's own BPDA rules). Per model and attack: wall and process-CPU seconds of one call, the rows
the model computed with a graph (gradient passes) and without (inference), and the robust accuracy
(correctly classified and not broken).

The script only uses the public API that every version of scfront has, so the same file measures
the code before and after a change:

    git worktree add ../scfront_before REV        # the code before the change
    PYTHONPATH=../scfront_before/src python benchmarks/bench_early_exit.py --out before.json
    PYTHONPATH=src python benchmarks/bench_early_exit.py --out after.json

Both use one ``torch.Generator`` for the batch (``--per-example`` uses per-image streams where
the code has them, ``scfront.sampling.RowGenerators``). Wall times on a shared machine are noisy:
compare the CPU seconds and the row counts too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
ATTACKS = {"pgd-linf": {"steps": 40}, "apgd-ce": {"steps": 100}}


def _shared() -> Path:
    env = os.environ.get("SCFRONT_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def _models() -> dict[str, nn.Module]:
    import scfront

    return {"defense": scfront.load_pretrained("cifar10_cpu"),
            "natural": scfront.load(REPO / "results" / "train" / "cifar10_cpu_natural")}


def _images(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices (n,), x (n, 3, 32, 32) float in [0, 1], y (n,) int64) of the evaluation subset."""
    from scfront.data import load_cifar10
    from scfront.data.select import eval_subset_indices

    test = load_cifar10(_shared() / "datasets", "test")
    indices = eval_subset_indices(len(test), n, 0)
    return indices, test.images[indices].float() / 255.0, test.labels[indices].clone()


def _generator(per_example: bool, name: str, indices: torch.Tensor) -> Any:
    if per_example:
        try:
            from scfront.sampling import RowGenerators
        except ImportError:
            sys.exit("--per-example: this version of scfront has no scfront.sampling.RowGenerators")
        return RowGenerators.seeded(0, name, rows=indices)
    return torch.Generator().manual_seed(0)


def measure(model: nn.Module, name: str, settings: dict[str, Any], indices: torch.Tensor, x: torch.Tensor,
            y: torch.Tensor, per_example: bool) -> dict[str, Any]:
    """One attack call: seconds, rows computed with and without a graph, robust accuracy."""
    from scfront.attacks import create_attack

    rows = {"graph": 0, "inference": 0}

    def count(module: nn.Module, args: tuple) -> None:
        rows["graph" if torch.is_grad_enabled() else "inference"] += int(args[0].shape[0])

    attack = create_attack(name, **settings)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    hook = model.register_forward_pre_hook(count)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = attack(model, x, y, generator=_generator(per_example, name, indices))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        hook.remove()
    robust = correct & ~result.success
    return {"attack": name, **settings, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_graph": rows["graph"], "rows_inference": rows["inference"],
            # what the loop costs when every correctly classified point runs every step
            "full_rows_graph": int(correct.sum()) * int(settings["steps"] + (1 if name == "apgd-ce" else 0)),
            "clean_accuracy": float(correct.float().mean()), "robust_accuracy": float(robust.float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="defense,natural")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--per-example", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the records as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import scfront

    indices, x, y = _images(args.images)
    models = _models()
    records = []
    for model_name in args.models.split(","):
        model = models[model_name].eval()
        for name in args.attacks.split(","):
            record = {"model": model_name, "scfront": str(Path(scfront.__file__).parents[1]),
                      "threads": args.threads, "images": args.images, "per_example": args.per_example,
                      **measure(model, name, ATTACKS[name], indices, x, y, args.per_example)}
            records.append(record)
            print(json.dumps(record), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
