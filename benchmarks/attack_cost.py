"""What an evaluation's attacks took against what the bare model needs for the same model calls.

Reads an evaluation folder's ``results.json`` (per attack: ``seconds``, ``queries`` = images the
model was evaluated on, ``gradient_queries`` = those with a backward pass), measures on this
machine the model's time per image for a forward pass and for a forward + input gradient (on the
evaluation's first images, at its batch size, best of ``--repeats``), and prints per attack the measured seconds, the
bare-model seconds of its calls and their ratio, with the totals. A ratio near 1 means that the
attack's time is the model's own: an implementation that makes the same model calls (the same
algorithm) cannot be much faster on this machine, whatever its attack loop.

    python -m benchmarks.attack_cost EVAL_DIR --model MODEL [--threads 2] [--json FILE]

``MODEL`` is anything ``scfront.load`` takes (the evaluated model). The costs are measured on
the model itself and on its attack-time copy (:func:`scfront.models.prepare_for_attack`, which
the evaluation attacks by default); the bound uses the model itself.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import scfront
from scfront.attacks.base import frozen_parameters
from scfront.evaluation.state import StateStore
from scfront.io import atomic_write_json
from scfront.models.fast import prepare_for_attack


def per_image_costs(model: nn.Module, x: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """Seconds per image of ``model`` on the batch ``x``: ``forward_s`` without autograd,
    ``forward_backward_s`` forward + gradient with respect to the input (best of ``repeats``)."""
    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / x.shape[0]

    def backward() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xr).logsumexp(dim=1).sum(), xr)

    model.eval()
    with torch.inference_mode():
        forward = best(lambda: model(x))
    with frozen_parameters(model):  # attacks need no weight gradients
        return {"forward_s": forward, "forward_backward_s": best(backward)}


def price(results: dict[str, Any], costs: dict[str, float]) -> list[dict[str, Any]]:
    """Per attack: measured seconds, the bare-model seconds of its calls, and their ratio."""
    rows = []
    for a in results["attacks"]:
        if "gradient_queries" not in a:
            raise SystemExit(f"attack_cost: {a['name']} has no gradient_queries (an evaluation written before "
                             "they were counted); rerun it")
        grad, forward = int(a["gradient_queries"]), int(a["queries"]) - int(a["gradient_queries"])
        bare = forward * costs["forward_s"] + grad * costs["forward_backward_s"]
        rows.append({"name": a["name"], "seconds": float(a["seconds"]), "forward_queries": forward,
                     "gradient_queries": grad, "bare_model_s": bare,
                     "ratio": float(a["seconds"]) / bare if bare > 0 else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attack_cost", description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="an evaluation folder (with results.json)")
    parser.add_argument("--model", required=True, help="the evaluated model (anything scfront.load takes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=None, help="batch of the timing (default: the evaluation's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = parser.parse_args(argv)
    path = args.evaluation / "results.json"
    if not path.is_file():
        raise SystemExit(f"attack_cost: {path} not found (is {args.evaluation} a finished evaluation?)")
    results = json.loads(path.read_text(encoding="utf-8"))
    spec = json.loads((args.evaluation / "spec.json").read_text(encoding="utf-8"))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = scfront.load(args.model).eval()
    batch = args.batch or min(int(spec["batch_size"]), 250)
    store = StateStore(args.evaluation)
    x = store.read(store.subset_path)[0]["images"][:batch].float() / 255.0  # the evaluated images
    costs = per_image_costs(model, x, args.repeats)
    fast_costs = per_image_costs(prepare_for_attack(model, x[:8]), x, args.repeats)
    rows = price(results, costs)
    print(f"{results['model']}, {results['n_images']} images, {torch.get_num_threads()} thread(s), batch {batch}: "
          f"model {1e3 * costs['forward_s']:.2f} ms/image forward, {1e3 * costs['forward_backward_s']:.2f} ms "
          f"forward + gradient (attack-time copy {1e3 * fast_costs['forward_s']:.2f} / "
          f"{1e3 * fast_costs['forward_backward_s']:.2f} ms)")
    print("| attack | seconds | forward queries | gradient queries | bare-model s | seconds / bare |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"| {r['name']} | {r['seconds']:.0f} | {r['forward_queries']:,} | {r['gradient_queries']:,} | "
              f"{r['bare_model_s']:.0f} | {ratio} |")
    total, bare = sum(r["seconds"] for r in rows), sum(r["bare_model_s"] for r in rows)
    print(f"| total | {total:.0f} | | | {bare:.0f} | {total / bare:.2f} |" if bare else f"| total | {total:.0f} | | | 0 | – |")
    if args.json:
        atomic_write_json(args.json, {"model": results["model"], "n_images": results["n_images"],
                                      "threads": torch.get_num_threads(), "batch": batch, "costs": costs,
                                      "attack_copy_costs": fast_costs, "attacks": rows,
                                      "total_seconds": total, "total_bare_model_s": bare})
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
