"""The active binarization test (scfront.evaluation.binarization) on the original natural and
PGD-AT ResNet-32 and the shipped cifar10_cpu defense, with PGD-40 and with @autoattack.

For each model the binary tasks of the first ``--n-images`` images of the evaluation subset
(seed 0) are built once and both cascades are tested on them (the same streams, so each cell is
what ``binarization_test`` gives for it alone). Writes ``OUT/binarization.json`` (every cell's
record, the attacks with all their parameters, the settings, the command and the wall times) and
``OUT/table.md``; a model whose cells are in ``OUT/cells/`` already is skipped (rerun to
resume). ``--render`` only rewrites ``table.md`` from ``binarization.json``.

Example (results/binarization)::

    nice -n 5 python scripts/binarization_table.py --data-root ../shared/datasets \\
        --checkpoints ../shared/reference/checkpoints --n-images 20 --out results/binarization
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

import scfront
from scfront.data import eval_subset, eval_subset_indices, load_cifar10
from scfront.errors import ScfrontError
from scfront.evaluation.binarization import (PASS_RATE, BinarizationResult, BinarizationSettings, binarization_test,
                                             prepare_tasks)
from scfront.evaluation.spec import model_digest, unit_generators
from scfront.evaluation.suite import build_suite, expand_suites
from scfront.io import atomic_write_json, atomic_write_text

EPS = 8.0 / 255.0
NORM = "Linf"
SEED = 0
SUBSET_SEED = 0
MODELS = {  # name -> (spec relative to --checkpoints, or a shipped model's name; label)
    "natural": ("resnet32_natural.pt", "original natural ResNet-32"),
    "pgd_at": ("resnet32_pgd_at.pt", "original PGD-AT ResNet-32"),
    "defense": ("cifar10_cpu", "shipped cifar10_cpu defense"),
}
CASCADES = {"pgd-40": ["pgd-linf"], "autoattack": ["@autoattack"]}

log = logging.getLogger("binarization_table")


def _spec(name: str, checkpoints: Path) -> str:
    spec = MODELS[name][0]
    return str(checkpoints / spec) if spec.endswith(".pt") else spec


def render(record: dict[str, Any]) -> str:
    """The Markdown table of a ``binarization.json`` record."""
    lines = [f"Linf ε = 8/255, {record['n_images']} CIFAR-10 test images (evaluation subset, seed {SUBSET_SEED}); "
             f"{record['settings']['n_inner']} inner points, 1 boundary point, "
             f"{record['settings']['n_random']} + {record['settings']['n_random']} random points per image; "
             f"passes at attack success rate ≥ {PASS_RATE:.0%}.", "",
             "| model | attacks | attack success rate | passed | random success rate | failed setups | "
             "attack seconds |", "|---|---|---|---|---|---|---|"]
    for cell in record["cells"]:
        result = BinarizationResult.from_json(cell["result"])
        lines.append(f"| {MODELS[cell['model']][1]} | {cell['cascade']}: {' → '.join(cell['expanded'])} | "
                     f"{result.success_rate:.1%} ({result.n_success}/{result.n_valid}) | "
                     f"{'yes' if result.passed else 'no'} | {result.random_rate:.1%} | "
                     f"{result.n_failed}/{result.n} | {result.seconds['attacks']:.0f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    settings = BinarizationSettings(n_inner=args.n_inner, n_random=args.n_random)
    dataset = load_cifar10(args.data_root, "test")
    x, y = eval_subset(dataset, args.n_images, SUBSET_SEED)
    indices = eval_subset_indices(len(dataset), args.n_images, SUBSET_SEED)
    cells_dir = args.out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    cells: list[dict[str, Any]] = []
    for name in MODELS:
        paths = {c: cells_dir / f"{name}__{c}.json" for c in CASCADES}
        if all(p.is_file() for p in paths.values()):
            cells += [json.loads(p.read_text(encoding="utf-8")) for p in paths.values()]
            log.info("%s: cells found, skipped", name)
            continue
        model = scfront.load(_spec(name, args.checkpoints)).eval()
        start = time.perf_counter()
        tasks = prepare_tasks(model, x, EPS, NORM, unit_generators(SEED, indices, "binarization"), settings,
                              progress=True)
        setup_seconds = time.perf_counter() - start
        for cascade, items in CASCADES.items():
            attacks = build_suite(expand_suites(items))
            start = time.perf_counter()
            result = binarization_test(model, x, y, attacks, EPS, NORM, unit_generators(SEED, indices, "binarization"),
                                       settings, indices=indices, tasks=tasks, progress=True)
            cell = {"model": name, "spec": MODELS[name][0], "model_sha256": model_digest(model), "cascade": cascade,
                    "items": items, "expanded": expand_suites(items), "attacks": [{"name": a.name, "params": a.params()} for a in attacks],
                    "setup_seconds": setup_seconds, "cell_seconds": time.perf_counter() - start,
                    "result": result.to_json()}
            atomic_write_json(paths[cascade], cell)
            cells.append(cell)
            log.info("%s %s: %s", name, cascade, result.summary())
    return {"command": command, "eps": EPS, "norm": NORM, "seed": SEED, "subset_seed": SUBSET_SEED,
            "n_images": args.n_images, "indices": indices.tolist(), "settings": cells[0]["result"]["settings"],
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cells": cells}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--checkpoints", type=Path, default=Path("../shared/reference/checkpoints"),
                        help="folder with resnet32_natural.pt and resnet32_pgd_at.pt")
    parser.add_argument("--n-images", type=int, default=20)
    parser.add_argument("--n-inner", type=int, default=BinarizationSettings.n_inner)
    parser.add_argument("--n-random", type=int, default=BinarizationSettings.n_random)
    parser.add_argument("--out", type=Path, default=Path("results/binarization"))
    parser.add_argument("--render", action="store_true", help="only rewrite OUT/table.md from OUT/binarization.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        if args.render:
            record = json.loads((args.out / "binarization.json").read_text(encoding="utf-8"))
        else:
            command = "python scripts/binarization_table.py " + " ".join(sys.argv[1:] if argv is None else argv)
            start = time.perf_counter()
            record = run(args, command)
            record["wall_seconds"] = time.perf_counter() - start
            atomic_write_json(args.out / "binarization.json", record)
        atomic_write_text(args.out / "table.md", render(record))
    except (ScfrontError, OSError) as exc:
        print(f"binarization_table: error: {exc}", file=sys.stderr)
        return 2
    print(render(record), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
