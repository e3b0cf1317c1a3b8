"""Robust accuracy of the original PGD-AT ResNet-32, plain model vs the attack-time fast model
(:func:`scfront.models.fast.prepare_for_attack`, ``mode="auto"``), under the same attacks with
the same generators.

Images: the evaluation subset ``scfront.data.eval_subset_indices(10000, n, 0)`` of the CIFAR-10
test set (500 by default), in batches; batch ``i`` of every attack uses
``torch.Generator().manual_seed(seed + i)`` for both models, which take turns batch by batch.
Attacks: ``pgd-linf`` (40 steps, ε = 8/255, step ε/8, random start, 1 restart) and ``apgd-ce``
(100 steps), their defaults.
Printed per attack: the robust accuracy of each model, the number of images whose verdict
(attack succeeded or not) differs, how many adversarial images are identical (max |diff|
≤ 1e-6), and the wall time of each model's attack.

The two models are not expected to give bit-identical adversarial images: their logits differ by
float rounding (~1e-7 relative), and over 40-100 sign or normalised steps a rounding-level
difference in a gradient entry near zero can flip its sign and move the trajectory; the
verdicts should then still agree up to the attack's own noise (a few images of 500).

    python -m benchmarks.compare_fast_model [--n 500] [--batch 250] [--attacks pgd-linf,apgd-ce]
                                            [--seed 0] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import scfront
from benchmarks.common import shared_root
from scfront.attacks import create_attack
from scfront.data import eval_subset_indices, load_cifar10
from scfront.models.fast import prepare_for_attack

ATTACKS = ("pgd-linf", "apgd-ce")
PROBE = 8


def attack_both(models: dict[str, nn.Module], name: str, x: torch.Tensor, y: torch.Tensor, batch: int,
                seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """Per model: ``(success (N,) bool, x_adv (N, C, H, W), seconds)`` of attack ``name``.

    The models take turns batch by batch (plain, fast, plain, fast, ...), so that a change of
    the machine's load during the run slows both alike; batch ``i`` uses the generator seeded
    ``seed + i`` for each model.
    """
    attack = create_attack(name)
    success: dict[str, list[torch.Tensor]] = {key: [] for key in models}
    adversarials: dict[str, list[torch.Tensor]] = {key: [] for key in models}
    seconds = dict.fromkeys(models, 0.0)
    for index, begin in enumerate(range(0, x.shape[0], batch)):
        for key, model in models.items():
            start = time.perf_counter()
            result = attack(model, x[begin:begin + batch], y[begin:begin + batch],
                            generator=torch.Generator().manual_seed(seed + index))
            seconds[key] += time.perf_counter() - start
            success[key].append(result.success)
            adversarials[key].append(result.x_adv)
    return {key: (torch.cat(success[key]), torch.cat(adversarials[key]), seconds[key]) for key in models}


def run(n: int, batch: int, attacks: list[str], seed: int) -> dict[str, Any]:
    dataset = load_cifar10(shared_root() / "datasets", "test")
    index = eval_subset_indices(len(dataset), n, 0)
    x = dataset.images[index].float() / 255.0
    y = dataset.labels[index].clone()
    plain = scfront.load(shared_root() / "reference" / "checkpoints" / "resnet32_pgd_at.pt")
    start = time.perf_counter()
    fast = prepare_for_attack(plain, x[:PROBE])
    prepare_s = time.perf_counter() - start
    prep = fast.attack_preparation
    with torch.inference_mode():
        clean = {"plain": float((plain(x).argmax(1) == y).float().mean()),
                 "fast": float((fast(x).argmax(1) == y).float().mean())}
    out: dict[str, Any] = {
        "model": "resnet32_pgd_at.pt", "n": n, "batch": batch, "seed": seed, "threads": torch.get_num_threads(),
        "mode": prep.mode, "folded": len(prep.folded), "prepare_s": prepare_s,
        "probe_agreement": {"logits": prep.agreement.logits, "gradient_median": prep.agreement.gradient,
                            "gradient_max": prep.agreement.gradient_max},
        "clean_accuracy": clean, "attacks": {},
    }
    for name in attacks:
        both = attack_both({"plain": plain, "fast": fast}, name, x, y, batch, seed)
        (ok_plain, adv_plain, t_plain), (ok_fast, adv_fast, t_fast) = both["plain"], both["fast"]
        same = (adv_plain - adv_fast).flatten(1).abs().amax(1) <= 1e-6
        out["attacks"][name] = {
            "robust_accuracy": {"plain": 1.0 - float(ok_plain.float().mean()),
                                "fast": 1.0 - float(ok_fast.float().mean())},
            "verdicts_differ": int((ok_plain != ok_fast).sum()),
            "plain_only_success": int((ok_plain & ~ok_fast).sum()),
            "fast_only_success": int((ok_fast & ~ok_plain).sum()),
            "identical_adversarials": int(same.sum()),
            "seconds": {"plain": t_plain, "fast": t_fast},
            "speedup": t_plain / t_fast,
        }
    return out


def report(result: dict[str, Any]) -> str:
    agreement = result["probe_agreement"]
    lines = [
        f"{result['model']}, {result['n']} CIFAR-10 test images (eval_subset_indices(10000, {result['n']}, 0)), "
        f"batches of {result['batch']}, {result['threads']} threads",
        f"fast model: mode {result['mode']}, {result['folded']} BatchNorms folded, prepared in "
        f"{result['prepare_s']:.1f} s; probe: logits {agreement['logits']:.1e} relative, input gradient "
        f"{agreement['gradient_median']:.1e} (median per image), {agreement['gradient_max']:.1e} (max)",
        f"clean accuracy: plain {100 * result['clean_accuracy']['plain']:.1f} %, "
        f"fast {100 * result['clean_accuracy']['fast']:.1f} %",
        "",
        f"{'attack':<10} {'plain':>7} {'fast':>7} {'differ':>6} {'plain-only':>10} {'fast-only':>9} "
        f"{'identical':>9} {'plain s':>8} {'fast s':>8} {'speedup':>7}",
    ]
    for name, a in result["attacks"].items():
        lines.append(
            f"{name:<10} {100 * a['robust_accuracy']['plain']:6.1f}% {100 * a['robust_accuracy']['fast']:6.1f}% "
            f"{a['verdicts_differ']:6d} {a['plain_only_success']:10d} {a['fast_only_success']:9d} "
            f"{a['identical_adversarials']:9d} {a['seconds']['plain']:8.1f} {a['seconds']['fast']:8.1f} "
            f"{a['speedup']:7.2f}")
    lines.append("(plain / fast: robust accuracy; differ: images whose verdict differs; plain-only / fast-only: "
                 "the attack succeeded on that model only; identical: adversarial images within 1e-6)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here as JSON")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    load_before = os.getloadavg()
    result = run(args.n, args.batch, attacks, args.seed)
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    result["torch"] = torch.__version__
    print(report(result))
    print(f"load average {load_before[0]:.1f} before, {result['load_average']['after'][0]:.1f} after "
          f"({os.cpu_count()} CPUs; other jobs shared the machine: times are noisy)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
