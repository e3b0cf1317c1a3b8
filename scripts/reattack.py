"""Attack again, outside the evaluation, a few images chosen from a finished evaluation.

A second look at what an evaluation reported: pick images by what happened to them there (broken
by a given attack, left robust, or by dataset index, e.g. from ``scfront evaluate-compare
--indices``), load them from the test set and the model afresh, and run attacks on just those
images, each with a fresh generator seeded ``--seed``. Printed per attack: which images it broke,
the distance of each adversarial in the attack's norm (Linf in units of 1/255), and whether
each adversarial stays misclassified when predicted alone (a batch of one: no batch effects).

Reads the evaluation's ``results.json`` only (its subset indices and ``broken_by``).

Example (results/defense_attack_convergence/verify_square_cpu.txt: the first 8 images Square
broke after APGD-CE and APGD-DLR in the cascade, attacked again on the CPU)::

    python scripts/reattack.py results/defense_attack_convergence/eval/cascade \\
        results/train/cifar10_cpu_defense --data-root DATA --broken-by square --first 8 \\
        --attacks apgd-ce,square --eps 8/255 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

import scfront
from scfront.attacks import Attack
from scfront.config import DataConfig, DatasetName
from scfront.data import load_dataset
from scfront.errors import ConfigError, ScfrontError
from scfront.evaluation import build_suite
from scfront.evaluation.compare import attack_position, read_results
from scfront.values import parse_value


def select_indices(results: dict[str, Any], *, broken_by: str | None = None, robust: bool = False,
                   indices: Sequence[int] | None = None, first: int | None = None) -> list[int]:
    """Dataset indices, in subset order: those broken first by the attack ``broken_by``, those left
    robust (``robust``), or the given ``indices`` (each must be in the evaluation); at most
    ``first`` of them. Exactly one way of choosing must be given."""
    if sum([broken_by is not None, robust, indices is not None]) != 1:
        raise ConfigError("choose the images one way: --broken-by ATTACK, --robust or --indices")
    if first is not None and first < 1:
        raise ConfigError(f"--first must be >= 1, got {first}")
    if indices is not None:
        known = set(results["indices"])
        unknown = [i for i in indices if i not in known]
        if unknown:
            raise ConfigError(f"indices not in the evaluation's subset: {', '.join(map(str, unknown[:5]))}")
        chosen = list(indices)
    else:
        wanted = -1 if robust else attack_position(results, broken_by)  # type: ignore[arg-type]
        chosen = [i for i, b in zip(results["indices"], results["broken_by"]) if b == wanted]
    if not chosen:
        raise ConfigError("no image of the evaluation matches the selection")
    return chosen[:first] if first is not None else chosen


def _predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def reattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack],
             seed: int) -> list[str]:
    """Run each of ``attacks`` on (x (N, C, H, W) float32 in [0, 1], y (N,) int64), each with a
    generator seeded ``seed``; the lines to print."""
    lines = []
    for attack in attacks:
        start = time.perf_counter()
        result = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
        lines.append(f"{attack.name}: broken {result.success.tolist()} ({time.perf_counter() - start:.0f} s)")
        threat = attack.threat
        distance = threat.distance(result.x_adv, x)
        if threat.norm.value == "Linf":
            lines.append(f"{attack.name} Linf x 255: {[round(v, 4) for v in (distance * 255).tolist()]}")
        else:
            lines.append(f"{attack.name} {threat.norm.value}: {[round(v, 4) for v in distance.tolist()]}")
        alone = [bool(_predict(model, result.x_adv[i:i + 1])[0] != y[i]) for i in range(len(y))]
        lines.append(f"{attack.name} adversarials re-predicted one by one, wrong: {alone}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", metavar="EVAL", type=Path, help="a finished evaluation folder")
    parser.add_argument("model", metavar="MODEL", help="the model to attack (as scfront.load takes it)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding the evaluation's dataset (default: $SCFRONT_DATA)")
    parser.add_argument("--image-size", type=int, default=160, help="Imagenette image size (default: 160)")
    choose = parser.add_mutually_exclusive_group(required=True)
    choose.add_argument("--broken-by", metavar="ATTACK", help="the images this attack broke first")
    choose.add_argument("--robust", action="store_true", help="the images no attack broke")
    choose.add_argument("--indices", metavar="I,J,...", help="these dataset indices")
    parser.add_argument("--first", type=int, default=None, help="at most this many of them, in subset order")
    parser.add_argument("--attacks", required=True, metavar="LIST",
                        help="comma-separated attacks, each NAME or NAME:KEY=VALUE:... as for scfront evaluate")
    parser.add_argument("--eps", default=None, help="radius for every attack, e.g. 8/255 (default: each attack's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of each attack's generator (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ConfigError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        eps = None if args.eps is None else parse_value(args.eps)
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))):
            raise ConfigError(f"--eps must be a number such as 8/255 or 0.5, got {args.eps!r}")
        eps = None if eps is None else float(eps)
        attacks = build_suite([item for item in args.attacks.split(",") if item.strip()], {"eps": eps})
        results = read_results(args.evaluation)
        wanted = None
        if args.indices is not None:
            try:
                wanted = [int(i) for i in args.indices.split(",") if i.strip()]
            except ValueError:
                raise ConfigError(f"--indices must be comma-separated integers, got {args.indices!r}") from None
        chosen = select_indices(results, broken_by=args.broken_by, robust=args.robust, indices=wanted,
                                first=args.first)
        root = args.data_root or (Path(os.environ["SCFRONT_DATA"]) if os.environ.get("SCFRONT_DATA") else None)
        if results["dataset"] not in {d.value for d in DatasetName}:
            raise ConfigError(f"unknown dataset {results['dataset']!r} in {args.evaluation}")
        name = DatasetName(results["dataset"])
        size = 32 if name is DatasetName.CIFAR10 else args.image_size
        test = load_dataset(DataConfig(dataset=name, image_size=size), root, "test")
        index = torch.tensor(chosen)
        x, y = test.images[index].float() / 255, test.labels[index]
        model = scfront.load(args.model)
        lines = [f"test indices {chosen}", f"clean correct {(_predict(model, x) == y).tolist()}"]
        print("\n".join(lines), flush=True)
        print("\n".join(reattack(model, x, y, attacks, args.seed)))
    except ScfrontError as exc:
        print(f"reattack: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
