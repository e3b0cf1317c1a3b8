"""scfront's ``@autoattack`` against torchattacks' independent AutoAttack, on the same model and images.

torchattacks is NOT a dependency of scfront and is not installed by its setup script (it pins
old versions of other packages); install it apart, without its dependencies:

    .venv/bin/pip install --no-deps torchattacks==3.5.1

Model: the original PGD-AT ResNet-32 (``reference/checkpoints/resnet32_pgd_at.pt`` under the
shared folder, ``$SCFRONT_SHARED`` or ``../shared``; ``--model`` takes anything ``scfront.load``
takes). Images: the evaluation subset of the CIFAR-10 test set (``eval_subset_indices(10000, n,
0)``, docs/evaluation.md §2). Threat model: Linf 8/255.

- scfront: ``scfront.evaluation.protocol.evaluate`` with the ``@autoattack`` suite (APGD-CE, APGD-T,
  FAB-T, Square; cascade; attack seed 0; no gradient-masking checks), into ``OUT/scfront``
  (resumable like any evaluation).
- torchattacks: ``AutoAttack(model, norm="Linf", eps=8/255, version="standard", n_classes=10,
  seed=0)`` called batch by batch on the same model object. Its constructor leaves the library's
  own defaults in the four attacks, which are not the original AutoAttack's: 10 iterations for
  APGD, APGD-T and FAB (the original: 100) and Square's ``p`` schedule stretched over the
  queries (the original: ``resc_schedule=False``). ``--torchattacks-budget original`` (default)
  sets ``steps = 100`` and ``rescale_schedule = False`` on those attacks after construction, so
  both sides run AutoAttack "standard" as fra31/auto-attack defines it; ``library`` keeps
  torchattacks' defaults. Each batch's result is stored in ``OUT/torchattacks_<budget>/`` as it
  finishes, so a rerun resumes.

Written: ``OUT/crosscheck.json`` and ``OUT/crosscheck.md``: clean accuracy, the robust accuracy
after each attack of each cascade (cumulative), the images each attack broke, the wall time of
each attack and in total, and the images on which the two verdicts (robust or not) differ.

    python -m benchmarks.crosscheck_autoattack --n 500 --out results/autoattack_crosscheck \
        [--model SPEC] [--data-root DIR] [--batch 250] [--torchattacks-budget original|library] \
        [--side both|scfront|torchattacks] [--threads N] [--results DIR]

On a 2-core machine the two sides can run side by side, one thread each (``--side scfront`` and
``--side torchattacks`` with the same ``--out``); the same command with ``--side both`` then
finds everything stored and writes the comparison. The scfront evaluation takes batch after
batch through the whole cascade (shard ``b`` of ``n_batches``), which gives the same results
as attack after attack (docs/evaluation.md §3).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import scfront
from benchmarks.common import shared_root
from scfront.data import eval_subset_indices, load_cifar10
from scfront.evaluation.protocol import evaluate
from scfront.evaluation.runner import EvalData
from scfront.evaluation.spec import Shard
from scfront.evaluation.suite import SUITES, build_suite, expand_suites
from scfront.io import atomic_write_json, atomic_write_text

EPS = 8 / 255
TORCHATTACKS_VERSION = "3.5.1"
INSTALL = f".venv/bin/pip install --no-deps torchattacks=={TORCHATTACKS_VERSION}"
# torchattacks' AutoAttack cascade, in order, and the names of the same attacks in @autoattack
TA_NAMES = ("APGD", "APGDT", "FAB", "Square")
SC_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square")
ORIGINAL_STEPS = 100  # n_iter of APGD, APGD-T and FAB in fra31/auto-attack's standard version


def import_torchattacks() -> Any:
    """The torchattacks module, or SystemExit with the install command."""
    try:
        import torchattacks
    except ImportError:
        raise SystemExit("crosscheck_autoattack: torchattacks is not installed (it is not a dependency of "
                         f"scfront); install it apart with: {INSTALL}") from None
    if torchattacks.__version__ != TORCHATTACKS_VERSION:
        print(f"warning: torchattacks {torchattacks.__version__} found; this comparison was written for "
              f"{TORCHATTACKS_VERSION} ({INSTALL})", file=sys.stderr)
    return torchattacks


def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """(N,) int64 predicted classes."""
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


def run_scfront(model: nn.Module, data: EvalData, out: Path, batch: int, name: str, *,
                attack_model: str = "auto", by_batch: bool = True) -> dict[str, Any]:
    """The @autoattack evaluation: clean and per-attack (cumulative) accuracy, robust flags, seconds.

    ``by_batch``: batch b through the whole cascade, then the next (same results; finished
    batches show early); else one evaluation over all batches (points re-batched across them,
    as ``scfront evaluate`` runs)."""
    attacks = build_suite(expand_suites(["@autoattack"]))
    start = time.perf_counter()
    n_batches = -(-data.labels.shape[0] // batch) if by_batch else 1
    results = None
    for b in range(n_batches):
        results = evaluate(model, data, attacks, out, model_name=name, seed=0, batch_size=batch, checks=False,
                           shard=Shard(b, n_batches), progress=False, attack_model=attack_model)
    wall = time.perf_counter() - start
    assert results is not None  # the last shard finds every unit stored
    broken_by = torch.tensor(results["broken_by"])
    return {"clean_accuracy": results["clean_accuracy"],
            "attacks": [{"name": a["name"], "robust_accuracy": a["robust_accuracy"], "n_broken": a["n_broken"],
                         "seconds": a["seconds"], "params": a["params"]} for a in results["attacks"]],
            "robust_accuracy": results["worst_case_accuracy"],
            "robust": (broken_by == -1).tolist(),
            "seconds": sum(a["seconds"] for a in results["attacks"]) + results["clean_seconds"],
            "wall_seconds_this_run": wall}


class _Recorder:
    """Wraps the ``forward`` of one attack of torchattacks' cascade: counts the images it breaks
    (correctly classified on input, misclassified on output) and times it."""

    def __init__(self, attack: Any, model: nn.Module) -> None:
        self.forward, self.model = attack.forward, model
        self.broken, self.seconds = 0, 0.0
        attack.forward = self

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        adv = self.forward(images, labels)
        self.seconds += time.perf_counter() - start
        correct = predict(self.model, images) == labels
        self.broken += int((correct & (predict(self.model, adv) != labels)).sum())
        return adv


def torchattacks_autoattack(torchattacks: Any, model: nn.Module, budget: str) -> tuple[Any, dict[str, Any]]:
    """torchattacks' AutoAttack "standard" and a record of its four attacks' settings."""
    aa = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard", n_classes=10, seed=0)
    inner = aa._autoattack.attacks  # MultiAttack's list: the cascade
    if tuple(type(a).__name__ for a in inner) != TA_NAMES:
        raise SystemExit(f"crosscheck_autoattack: unexpected torchattacks cascade {[type(a).__name__ for a in inner]}")
    if budget == "original":
        for attack in inner[:3]:
            attack.steps = ORIGINAL_STEPS
        inner[3].rescale_schedule = False
    settings = {type(a).__name__: {k: getattr(a, k) for k in ("steps", "n_restarts", "n_target_classes", "n_queries",
                                                             "p_init", "rescale_schedule", "loss", "eps",
                                                             "multi_targeted", "seed") if hasattr(a, k)}
                for a in inner}
    return aa, settings


def run_torchattacks(torchattacks: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
                     out: Path, budget: str, only: set[int] | None = None) -> dict[str, Any] | None:
    """torchattacks' AutoAttack batch by batch (each batch stored as it finishes), same summary
    as :func:`run_scfront`; with ``only``, just those batches and no summary (None)."""
    out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {}
    for b, begin in enumerate(range(0, x.shape[0], batch)):
        path = out / f"batch_{b:04d}.json"
        xb, yb = x[begin:begin + batch], y[begin:begin + batch]
        if path.is_file() or (only is not None and b not in only):
            continue
        aa, settings = torchattacks_autoattack(torchattacks, model, budget)  # fresh per batch, seeded 0
        recorders = [_Recorder(a, model) for a in aa._autoattack.attacks]
        start = time.perf_counter()
        adv = aa(xb, yb)
        seconds = time.perf_counter() - start
        adv = adv.detach()
        if float((adv - xb).abs().max()) > EPS + 1e-6 or float(adv.min()) < 0 or float(adv.max()) > 1:
            raise SystemExit("crosscheck_autoattack: torchattacks returned points outside the Linf 8/255 ball ∩ [0, 1]")
        robust = predict(model, adv) == yb
        atomic_write_json(path, {"begin": begin, "n": int(yb.shape[0]), "robust": robust.tolist(),
                                 "clean_correct": int((predict(model, xb) == yb).sum()), "seconds": seconds,
                                 "broken": [r.broken for r in recorders], "attack_seconds": [r.seconds for r in recorders],
                                 "settings": settings})
    if only is not None:
        return None
    parts = [json.loads((out / f"batch_{b:04d}.json").read_text()) for b in range(-(-x.shape[0] // batch))]
    n = x.shape[0]
    correct = sum(p["clean_correct"] for p in parts)
    remaining = correct
    attacks = []
    for i, name in enumerate(TA_NAMES):
        broken = sum(p["broken"][i] for p in parts)
        remaining -= broken
        attacks.append({"name": name, "robust_accuracy": remaining / n, "n_broken": broken,
                        "seconds": sum(p["attack_seconds"][i] for p in parts)})
    robust = [flag for p in parts for flag in p["robust"]]
    return {"clean_accuracy": correct / n, "attacks": attacks, "robust_accuracy": sum(robust) / n, "robust": robust,
            "seconds": sum(p["seconds"] for p in parts), "settings": parts[0]["settings"]}


def markdown(report: dict[str, Any]) -> str:
    """The comparison as a Markdown page."""
    sc, ta = report["scfront"], report["torchattacks"]
    lines = [f"# @autoattack (scfront {report['scfront_version']}) vs torchattacks {report['torchattacks_version']} "
             "AutoAttack", "",
             f"Model {report['model']}, {report['n_images']} CIFAR-10 test images (evaluation subset, seed 0), "
             f"Linf 8/255; torchattacks budget: {report['torchattacks_budget']}.", "",
             "| after | scfront robust | broken | seconds | torchattacks robust | broken | seconds |",
             "|---|---|---|---|---|---|---|",
             f"| clean | {100 * sc['clean_accuracy']:.1f} % | | | {100 * ta['clean_accuracy']:.1f} % | | |"]
    for a, b in zip(sc["attacks"], ta["attacks"]):
        lines.append(f"| {a['name']} / {b['name']} | {100 * a['robust_accuracy']:.1f} % | {a['n_broken']} | "
                     f"{a['seconds']:.0f} | {100 * b['robust_accuracy']:.1f} % | {b['n_broken']} | {b['seconds']:.0f} |")
    diff = report["verdicts_differ"]
    lines += ["", f"Robust accuracy: scfront {100 * sc['robust_accuracy']:.1f} %, torchattacks "
              f"{100 * ta['robust_accuracy']:.1f} % (difference {report['difference_points']:+.1f} points).",
              f"Images whose verdict differs: {diff['total']} ({diff['robust_only_scfront']} robust only under "
              f"scfront, {diff['robust_only_torchattacks']} robust only under torchattacks).",
              f"Wall time: scfront {sc['seconds']:.0f} s, torchattacks {ta['seconds']:.0f} s.", "",
              "torchattacks settings: " + "; ".join(f"{k} {v}" for k, v in ta["settings"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="anything scfront.load takes (default: the original PGD-AT ResNet-32 of the shared folder)")
    parser.add_argument("--data-root", type=Path, default=None, help="CIFAR-10 folder (default: the shared datasets)")
    parser.add_argument("--n", type=int, default=500, help="images of the evaluation subset (default: 500)")
    parser.add_argument("--batch", type=int, default=250, help="images per batch on both sides (default: 250)")
    parser.add_argument("--torchattacks-budget", choices=("original", "library"), default="original",
                        help="original: torchattacks' attacks set to fra31/auto-attack's standard settings "
                             "(100 iterations, unscaled Square schedule); library: torchattacks' defaults")
    parser.add_argument("--side", choices=("both", "scfront", "torchattacks"), default="both",
                        help="compute one side only (two processes can share --out), or both and write the "
                             "comparison (default; what is stored already is not computed again)")
    parser.add_argument("--batches", default=None, metavar="B,B",
                        help="with --side torchattacks: compute only these batch numbers (from 0), to split "
                             "that side between processes sharing --out; the comparison is written by a "
                             "later run without --side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (reused to resume)")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="also copy the comparison and the small per-side files (results.json, report.md, "
                             "spec.json, the torchattacks batch records; not the stored units and adversarials) "
                             "into DIR, e.g. results/autoattack_crosscheck")
    args = parser.parse_args(argv)
    only = None
    if args.batches is not None:
        if args.side != "torchattacks":
            parser.error("--batches applies to --side torchattacks only")
        try:
            only = {int(b) for b in args.batches.split(",")}
        except ValueError:
            parser.error(f"--batches must be comma-separated batch numbers, got {args.batches!r}")
        n_batches = -(-args.n // args.batch)
        if not only or min(only) < 0 or max(only) >= n_batches:
            parser.error(f"--batches must name batches 0..{n_batches - 1}, got {args.batches!r}")
    torchattacks = import_torchattacks()  # fail before any work
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = args.model or str(shared_root() / "reference" / "checkpoints" / "resnet32_pgd_at.pt")
    model = scfront.load(spec)
    test = load_cifar10(args.data_root or shared_root() / "datasets", "test")
    index = eval_subset_indices(len(test), args.n, 0)
    data = EvalData(index, test.images[index], test.labels[index])
    x, y = test.images[index].float() / 255.0, test.labels[index].clone()
    name = Path(spec).name if args.model is None else args.model

    if args.side in ("both", "scfront"):
        sc = run_scfront(model, data, args.out / "scfront", args.batch, name)
        print(f"scfront @autoattack: clean {100 * sc['clean_accuracy']:.1f} %, robust "
              f"{100 * sc['robust_accuracy']:.1f} % ({sc['seconds']:.0f} s)", flush=True)
    if args.side in ("both", "torchattacks"):
        ta = run_torchattacks(torchattacks, model, x, y, args.batch,
                              args.out / f"torchattacks_{args.torchattacks_budget}", args.torchattacks_budget, only)
        if ta is None:
            print(f"torchattacks AutoAttack: batches {args.batches} done", flush=True)
            return 0
        print(f"torchattacks AutoAttack: clean {100 * ta['clean_accuracy']:.1f} %, robust "
              f"{100 * ta['robust_accuracy']:.1f} % ({ta['seconds']:.0f} s)", flush=True)
    if args.side != "both":
        return 0

    mine, theirs = torch.tensor(sc["robust"]), torch.tensor(ta["robust"])
    report = {"model": name, "n_images": args.n, "subset_seed": 0, "eps": EPS, "batch": args.batch,
              "scfront_version": scfront.__version__, "torchattacks_version": torchattacks.__version__,
              "torchattacks_budget": args.torchattacks_budget, "scfront_suite": list(SUITES["autoattack"][0]),
              "scfront": {k: v for k, v in sc.items() if k != "robust"},
              "torchattacks": {k: v for k, v in ta.items() if k != "robust"},
              "difference_points": 100 * (sc["robust_accuracy"] - ta["robust_accuracy"]),
              "verdicts_differ": {"total": int((mine != theirs).sum()),
                                  "robust_only_scfront": int((mine & ~theirs).sum()),
                                  "robust_only_torchattacks": int((~mine & theirs).sum()),
                                  "indices": index[mine != theirs].tolist()}}
    stem = "crosscheck" if args.torchattacks_budget == "original" else "crosscheck_library"
    atomic_write_json(args.out / f"{stem}.json", report)
    text = markdown(report)
    atomic_write_text(args.out / f"{stem}.md", text)
    print(text)
    if args.results:
        copy_small_files(args.out, args.results, stem, args.torchattacks_budget)
    return 0


def copy_small_files(out: Path, dest: Path, stem: str, budget: str) -> None:
    """The comparison, scfront's results/report/spec and torchattacks' batch records, into ``dest``."""
    files = [out / f"{stem}.json", out / f"{stem}.md"]
    files += [out / "scfront" / name for name in ("results.json", "report.md", "spec.json")]
    files += sorted((out / f"torchattacks_{budget}").glob("batch_*.json"))
    for path in files:
        target = dest / path.relative_to(out)
        atomic_write_text(target, path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    raise SystemExit(main())
