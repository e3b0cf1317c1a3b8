"""Cross-check scfront's APGD-CE / APGD-DLR against torchattacks' independent port of AutoAttack.

torchattacks is not a dependency of scfront (it pins torchvision and an old ``requests``); install
it apart, e.g. ``pip install --no-deps torchattacks`` into an environment that has torchvision.

    python examples/crosscheck_apgd_torchattacks.py CHECKPOINT_OR_RUN_DIR --data-root DATA \
        [--n-images 500] [--steps 100] [--device cuda] [--json OUT.json]

Runs both implementations on the fixed evaluation subset (docs/evaluation.md §2: subset seed 0) with the same
budget (Linf 8/255, one restart, ``--steps`` iterations) and prints each one's robust accuracy,
the PGD-Linf baseline of scfront (40 steps of 2/255, the paper's), and how many images the two
APGD implementations disagree on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import scfront
from scfront.attacks import create_attack
from scfront.config import EPS_8, DataConfig
from scfront.data import eval_subset_indices, load_dataset


def _robust(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(y), batch)])


def main() -> None:
    import torchattacks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="any model spec scfront.load takes (run folder, original .pt, shipped name)")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--n-images", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    model = scfront.load(args.model, device=args.device)
    test = load_dataset(DataConfig(), args.data_root, "test")
    index = eval_subset_indices(len(test), args.n_images, 0)
    x = test.images[index].float().div(255).to(args.device)
    y = test.labels[index].to(args.device)

    robust: dict[str, torch.Tensor] = {"clean": _robust(model, x, y, args.batch)}
    seconds: dict[str, float] = {}
    ours = {"pgd-linf (scfront, 40 steps)": create_attack("pgd-linf", eps=EPS_8, steps=40, restarts=1),
            "apgd-ce (scfront)": create_attack("apgd-ce", eps=EPS_8, steps=args.steps),
            "apgd-dlr (scfront)": create_attack("apgd-dlr", eps=EPS_8, steps=args.steps)}
    theirs = {f"apgd-{loss} (torchattacks)": torchattacks.APGD(model, norm="Linf", eps=EPS_8, steps=args.steps,
                                                                 n_restarts=1, loss=loss, seed=0)
              for loss in ("ce", "dlr")}
    for name, attack in {**ours, **theirs}.items():
        start = time.perf_counter()
        adv = []
        for i in range(0, len(y), args.batch):
            xb, yb = x[i:i + args.batch], y[i:i + args.batch]
            if "scfront" in name:
                gen = torch.Generator(device=x.device).manual_seed(i)
                adv.append(attack(model, xb, yb, generator=gen).x_adv)
            else:
                adv.append(attack(xb, yb))
        x_adv = torch.cat(adv).detach()
        assert float((x_adv - x).abs().max()) <= EPS_8 + 1e-6 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
        robust[name] = _robust(model, x_adv, y, args.batch) & robust["clean"]
        seconds[name] = time.perf_counter() - start

    report = {"model": str(args.model), "n_images": args.n_images, "steps": args.steps,
              "accuracy": {k: float(v.float().mean()) for k, v in robust.items()},
              "seconds": seconds,
              "disagree_dlr": int((robust["apgd-dlr (scfront)"] != robust["apgd-dlr (torchattacks)"]).sum()),
              "disagree_ce": int((robust["apgd-ce (scfront)"] != robust["apgd-ce (torchattacks)"]).sum())}
    for k, v in report["accuracy"].items():
        print(f"{k:<32} {100 * v:6.2f} %  {seconds.get(k, 0):7.1f} s")
    print(f"images where the APGD implementations disagree: CE {report['disagree_ce']}, DLR {report['disagree_dlr']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
