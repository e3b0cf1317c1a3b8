"""scfront's attacks against torchattacks' on the same model object, images and budget.

torchattacks is not a dependency of scfront; install it apart, without its dependencies (its
declared torchvision does not import beside the CPU torch wheel):

    .venv/bin/pip install --no-deps torchattacks==3.5.1

For each attack the two libraries run alternately in this one process (scfront, torchattacks,
scfront, ... for ``--rounds`` rounds; the best wall time of each is reported, the least
disturbed by other processes), at Linf 8/255 with one restart and the same budget:

| key | scfront | torchattacks |
|---|---|---|
| pgd | ``pgd-linf`` 40 steps of ε/8 = 1/255, random start | ``PGD(eps, alpha=1/255, steps=40, random_start=True)`` |
| apgd-ce | ``apgd-ce`` 100 iterations | ``APGD(loss="ce", steps=100)`` |
| apgd-t | ``apgd-t`` 100 iterations, 9 targets | ``APGDT(steps=100, n_classes=10)`` (9 targets) |
| fab-t | ``fab-t`` 100 iterations, 9 targets | ``FAB(steps=100, multi_targeted=True, n_classes=10)`` |
| square | ``square`` Q queries, p_init 0.8, schedule not rescaled | ``Square(n_queries=Q, p_init=0.8, resc_schedule=False)`` |
| autoattack | the evaluation with ``@autoattack`` (cascade, no checks) | ``AutoAttack(version="standard")`` with APGD/APGD-T/FAB at 100 iterations and Square's schedule not rescaled, as in fra31/auto-attack (:mod:`benchmarks.crosscheck_autoattack`) |

Robust accuracy = correctly classified and not broken, on the same images. The model is anything
``scfront.load`` takes (default: the original PGD-AT ResNet-32 of the shared reference folder);
a defended model is attacked through its own BPDA rules by both libraries (torchattacks calls
the model's backward, which is BPDA). Results are printed and written as JSON and Markdown:

    python -m benchmarks.bench_peers --n 500 --out results/peers/pgd_at
    python -m benchmarks.bench_peers --model cifar10_cpu --n 500 --out results/peers/defense
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import scfront
from benchmarks.attack_cost import per_image_costs
from benchmarks.common import shared_root
from benchmarks.crosscheck_autoattack import (EPS, import_torchattacks, predict, run_scfront,
                                              torchattacks_autoattack)
from scfront.attacks import create_attack
from scfront.data import eval_subset_indices, load_cifar10
from scfront.evaluation.runner import EvalData, QueryCounter
from scfront.evaluation.spec import unit_generators
from scfront.io import atomic_write_json, atomic_write_text
from scfront.models.fast import prepare_for_attack

ATTACKS = ("pgd", "apgd-ce", "apgd-t", "fab-t", "square", "autoattack")


def scfront_attack(key: str, queries: int) -> Any:
    """The scfront attack object of ``key`` (see the module table)."""
    settings = {"pgd": ("pgd-linf", {"steps": 40}),
                "apgd-ce": ("apgd-ce", {"steps": 100}),
                "apgd-t": ("apgd-t", {"steps": 100, "n_target_classes": 9}),
                "fab-t": ("fab-t", {"steps": 100, "n_target_classes": 9}),
                "square": ("square", {"queries": queries, "p_init": 0.8, "rescale_schedule": False})}
    name, params = settings[key]
    return create_attack(name, eps=EPS, **params)


def torchattacks_attack(ta: Any, key: str, model: nn.Module, queries: int) -> Any:
    """The torchattacks attack object of ``key`` (see the module table), seeded 0."""
    if key == "pgd":
        return ta.PGD(model, eps=EPS, alpha=1 / 255, steps=40, random_start=True)
    if key == "apgd-ce":
        return ta.APGD(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0)
    if key == "apgd-t":
        return ta.APGDT(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=10, seed=0)
    if key == "fab-t":
        return ta.FAB(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, multi_targeted=True, n_classes=10,
                      seed=0)
    if key == "square":
        return ta.Square(model, norm="Linf", eps=EPS, n_queries=queries, n_restarts=1, p_init=0.8, seed=0,
                         resc_schedule=False)
    raise KeyError(key)


def _in_ball(x_adv: torch.Tensor, x: torch.Tensor) -> None:
    if float((x_adv - x).abs().max()) > EPS + 1e-6 or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise SystemExit("bench_peers: an attack returned points outside the Linf 8/255 ball ∩ [0, 1]")


def run_pair(key: str, model: nn.Module, ta: Any, data: EvalData, batch: int, queries: int,
             rounds: int, attack_model: str, costs: dict[str, float]) -> dict[str, Any]:
    """Both libraries on ``key``, alternating for ``rounds`` rounds: best seconds, robust
    accuracy, and the model evaluations each made (with the bare model's time for them)."""
    x = data.images.float() / 255.0
    y = data.labels
    correct = predict(model, x) == y
    counters: dict[str, QueryCounter] = {}

    def ours() -> torch.Tensor:
        if key == "autoattack":  # the evaluation builds its own attack copy (attack_model), uncounted
            with tempfile.TemporaryDirectory() as tmp:
                report = run_scfront(model, data, Path(tmp) / "eval", batch, "model", attack_model=attack_model,
                                     by_batch=False)
            return torch.tensor(report["robust"])
        # what `scfront evaluate` does: attack a BatchNorm-folded copy checked against the model
        # (its preparation is timed), judge the returned points on the model itself
        attacked = prepare_for_attack(model, x[:8], mode=attack_model)  # type: ignore[arg-type]
        counters["scfront"] = counted = QueryCounter(attacked).eval()
        attack = scfront_attack(key, queries)
        robust = []
        for begin in range(0, x.shape[0], batch):
            sl = slice(begin, begin + batch)
            generator = unit_generators(0, data.indices[sl], 0, attack.name)
            result = attack(counted, x[sl], y[sl], generator=generator)
            _in_ball(result.x_adv, x[sl])
            robust.append(correct[sl] & (predict(model, result.x_adv) == y[sl]))
        return torch.cat(robust)

    def theirs() -> torch.Tensor:
        counters["torchattacks"] = counted = QueryCounter(model).eval()
        robust = []
        for begin in range(0, x.shape[0], batch):
            sl = slice(begin, begin + batch)
            attack = (torchattacks_autoattack(ta, counted, "original")[0] if key == "autoattack"
                      else torchattacks_attack(ta, key, counted, queries))
            x_adv = attack(x[sl], y[sl])
            _in_ball(x_adv, x[sl])
            robust.append(correct[sl] & (predict(model, x_adv) == y[sl]))
        return torch.cat(robust)

    runs: dict[str, list[float]] = {"scfront": [], "torchattacks": []}
    robust: dict[str, torch.Tensor] = {}
    calls: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, fn in (("scfront", ours), ("torchattacks", theirs)):
            start = time.perf_counter()
            robust[name] = fn()
            runs[name].append(time.perf_counter() - start)
            model.eval()  # torchattacks sets the model's mode back to what it found; keep eval
            c = counters.get(name)
            if c is None:
                continue
            forward_only = c.queries - c.gradient_queries
            bare = forward_only * costs["forward_s"] + c.gradient_queries * costs["forward_backward_s"]
            calls[name] = {"forward_only": forward_only, "with_grad": c.gradient_queries,
                           "bare_model_s": round(bare, 2)}
    best = {name: min(r) for name, r in runs.items()}
    acc = {name: float(r.float().mean()) for name, r in robust.items()}
    row = {"attack": key, "scfront_s": round(best["scfront"], 2), "torchattacks_s": round(best["torchattacks"], 2),
           "speedup": round(best["torchattacks"] / best["scfront"], 3), "runs_s": runs,
           "scfront_robust": acc["scfront"], "torchattacks_robust": acc["torchattacks"],
           "robust_gap_points": round(100 * (acc["scfront"] - acc["torchattacks"]), 2),
           "verdicts_differ": int((robust["scfront"] != robust["torchattacks"]).sum()),
           "clean_accuracy": float(correct.float().mean())}
    if key != "autoattack":  # torchattacks' calls alone say nothing
        row["calls"] = calls
    return row


def markdown(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    lines = [f"# scfront vs torchattacks {report['torchattacks_version']}: {report['model']}, "
             f"{report['n_images']} images, Linf 8/255",
             "", f"Command: `{report['command']}`", "",
             f"Clean accuracy {100 * report['rows'][0]['clean_accuracy']:.1f} %; {report['threads']} thread(s), "
             f"best of {report['rounds']} round(s), batch {report['batch']}, Square {report['queries']} queries.", "",
             f"scfront attacks a `{report['attack_model']}` copy of the model (prepare_for_attack, timed), "
             "verdicts on the model itself.", "",
             "| attack | scfront s | torchattacks s | speed-up | robust scfront / torchattacks | verdicts differ |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['attack']} | {r['scfront_s']:.1f} | {r['torchattacks_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{100 * r['scfront_robust']:.1f} / {100 * r['torchattacks_robust']:.1f} % | {r['verdicts_differ']} |")
    costs = report["unit_costs"]
    lines += ["", "Model evaluations (images) each library made, and what the bare model takes for them "
              f"({1e3 * costs['forward_s']:.2f} ms per image forward, {1e3 * costs['forward_backward_s']:.2f} ms "
              f"forward + input gradient, batch {report['batch']}): what the model as given needs for these "
              "calls, whatever the attack loop (scfront's attack-time copy, BatchNorm folded, can be faster "
              "than that).", "",
              "| attack | scfront fwd / grad | torchattacks fwd / grad | bare-model s scfront / torchattacks | "
              "actual / bare scfront / torchattacks |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        if "calls" not in r:
            continue
        a, b = r["calls"]["scfront"], r["calls"]["torchattacks"]
        lines.append(f"| {r['attack']} | {a['forward_only']:,} / {a['with_grad']:,} | {b['forward_only']:,} / "
                     f"{b['with_grad']:,} | {a['bare_model_s']:.1f} / {b['bare_model_s']:.1f} | "
                     f"{r['scfront_s'] / max(a['bare_model_s'], 1e-9):.2f} / "
                     f"{r['torchattacks_s'] / max(b['bare_model_s'], 1e-9):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_peers", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="anything scfront.load takes (default: the original PGD-AT ResNet-32)")
    parser.add_argument("--n", type=int, default=500, help="images of the evaluation subset (seed 0)")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated, of {', '.join(ATTACKS)}")
    parser.add_argument("--queries", type=int, default=1000, help="Square's queries (default 1,000)")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attack-model", choices=("auto", "fold", "plain"), default="auto",
                        help="the copy of the model scfront attacks (as scfront evaluate --attack-model)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True, help="folder for peers.json and peers.md")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.attacks.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(ATTACKS))
    if unknown or not keys:
        parser.error(f"unknown attack(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ATTACKS)}")
    ta = import_torchattacks()
    torch.set_num_threads(args.threads)
    spec = args.model or str(shared_root() / "reference" / "checkpoints" / "resnet32_pgd_at.pt")
    model = scfront.load(spec).eval()
    test = load_cifar10(args.data_root or shared_root() / "datasets", "test")
    index = eval_subset_indices(len(test), args.n, 0)
    data = EvalData(index, test.images[index], test.labels[index])
    display = Path(spec).name if args.model is None else args.model
    report: dict[str, Any] = {"model": display, "n_images": args.n, "threads": args.threads, "rounds": args.rounds,
                              "batch": args.batch, "queries": args.queries, "torchattacks_version": ta.__version__,
                              "command": "python -m benchmarks.bench_peers " + " ".join(argv or []),
                              "attack_model": args.attack_model, "rows": []}
    args.out.mkdir(parents=True, exist_ok=True)
    probe = data.images[:min(args.batch, args.n)].float() / 255.0
    report["unit_costs"] = per_image_costs(model, probe)
    for key in keys:
        row = run_pair(key, model, ta, data, args.batch, args.queries, args.rounds, args.attack_model,
                       report["unit_costs"])
        report["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "runs_s"}), flush=True)
        atomic_write_json(args.out / "peers.json", report)
        atomic_write_text(args.out / "peers.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
