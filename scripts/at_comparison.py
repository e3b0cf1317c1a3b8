"""The controlled comparison of issue 19: the same fast adversarial training with and without the
sparse coding frontend, judged by the same attacks on the same test images.

Arms (recipes of the chosen CIFAR-10 preset, docs/method.md §5):

    defended  defense_fast_at  frontend + ResNet-32, FGSM-RS through the frontend's BPDA rules
    plain     fast_at          ResNet-32 alone, the same FGSM-RS

Before anything runs, the two resolved configurations (with every ``--set``) are compared: they
must differ in ``frontend.enabled`` only (same data, held-out images, epochs, schedule, rate,
seed, classifier, attack and early-stopping settings), else the script stops. Both models are
then evaluated by ``scfront evaluate`` on the same ``--n-images`` test images (the fixed seeded
subset) with the same attack seed, one evaluation per column (a suite may hold each attack once,
and @autoattack holds a Square of its own):

    autoattack  @autoattack (APGD-CE, APGD-T, FAB-T, Square 5,000 queries, as a cascade), with
                the self-checks: the default ones, ``bpda-variants`` (other BPDA rules on what the
                suite left robust; defended arm only, the plain arm has no frontend) and
                ``binarization`` (the active binarization test) when this installation has it
    square      square:queries=5000 (Square alone on every correctly classified image: the
                black-box reference), no checks

and the per-example worst case over both (an image counts as robust when neither broke it,
from the evaluations' per-image ``broken_by``). The optional third evaluation, ``transfer``
(skip it with ``--no-transfer``), attacks the defended model without any knowledge of its
frontend: ``transfer:source=<plain model>`` runs ``--transfer-attack`` (default pgd-linf) on the
plain model and keeps, per image, the first adversarial that also fools the defended one. A
defended arm whose white-box robustness exceeds the plain arm's while it falls to the transfer
adversarials owes its gain to gradient masking.

Usage::

    python scripts/at_comparison.py DATA_ROOT OUT [--preset cpu] [--n-images 1000] [--dry-run]

``--dry-run`` prints the commands and runs nothing. Rerunning resumes (``scfront train`` and
``scfront evaluate`` continue their folders; finished ones are reused). Output: OUT/models/<arm>,
OUT/eval/<arm>/<column>, OUT/eval/transfer, OUT/<step>.log, OUT/table.md, OUT/comparison.json and
OUT/clean_vs_robust.png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from scfront.config import differing_settings, flat_settings, load_preset
from scfront.errors import ConfigError, ScfrontError
from scfront.io import atomic_write, atomic_write_json, atomic_write_text, read_step_output, run_logged

ARMS = (("defended", "defense_fast_at", "frontend + ResNet-32, FGSM-RS"),
        ("plain", "fast_at", "ResNet-32, FGSM-RS"))
COLUMNS = (("autoattack", "@autoattack"), ("square", "square:queries=5000"))
TRANSFER = "transfer"


def check_arms(preset: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The two arms' resolved configurations as flat dictionaries, after checking that they
    differ in ``frontend.enabled`` only (ConfigError otherwise, or for a bad override)."""
    configs = {arm: flat_settings(load_preset(preset, "cifar10", overrides, recipe=recipe))
               for arm, recipe, _ in ARMS}
    a, b = configs["defended"], configs["plain"]
    differ = differing_settings(a, b)
    if differ != ["frontend.enabled"] or not a["frontend.enabled"]:
        raise ConfigError(f"the arms must differ in frontend.enabled only, they differ in {', '.join(differ)}")
    return configs


def available_checks() -> list[str]:
    """The checks ``scfront evaluate`` accepts (the evaluation protocol registers them all)."""
    from scfront.evaluation import protocol  # noqa: F401  (imports the modules that register checks)
    from scfront.evaluation.checks import available_checks as names

    return names()


def checks_of(arm: str, available: Sequence[str], skip: Sequence[str] = ()) -> str:
    """The --checks list of an arm: the defaults, bpda-variants (defended arm), binarization
    (each opt-in check only where this installation has it and it is not in ``skip``)."""
    wanted = ["default"] + (["bpda-variants"] if arm == "defended" else []) + ["binarization"]
    return ",".join(c for c in wanted if c == "default" or (c in available and c not in skip))


def commands(args: argparse.Namespace, available: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(step name, argv) in the order they run: train both arms, evaluate both, the transfer."""
    cli = [args.python, "-m", "scfront.cli", "--threads", str(args.threads)]
    out = Path(args.out)
    steps = []
    for arm, recipe, _ in ARMS:
        argv = [*cli, "train", "--preset", args.preset, "--recipe", recipe, "--data-root", args.data_root,
                "--device", args.device, "--out", str(out / "models" / arm), "--no-progress"]
        for item in args.set:
            argv += ["--set", item]
        steps.append((f"train-{arm}", argv))
    common = ["--data-root", args.data_root, "--n-images", str(args.n_images), "--seed", str(args.seed),
              "--device", args.device, "--no-progress"]
    for arm, _, _ in ARMS:
        for k, (label, attacks) in enumerate(COLUMNS):
            argv = [*cli, "evaluate", str(out / "models" / arm), *common, "--column", f"{label}={attacks}"]
            argv += (["--checks", checks_of(arm, available, args.skip_check), "--check-images", str(args.check_images)]
                     if k == 0 else ["--no-checks"])
            steps.append((f"eval-{arm}-{label}", [*argv, "--out", str(out / "eval" / arm / label)]))
    if args.transfer:
        source = out / "models" / "plain"  # as given: the commands run in this folder
        if ":" in str(source):
            raise ConfigError(f"the transfer source path {source} contains ':', which separates attack options")
        argv = [*cli, "evaluate", str(out / "models" / "defended"), *common,
                "--column", f"{TRANSFER}=transfer:source={source}:source_attack={args.transfer_attack}",
                "--no-checks", "--out", str(out / "eval" / TRANSFER)]
        steps.append((f"eval-{TRANSFER}", argv))
    return steps


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _check_cell(checks: dict[str, Any], name: str) -> str:
    entry = checks.get(name)
    if entry is None:
        return "-"
    if entry.get("detail", "").startswith("not run"):
        return "not run"
    return "pass" if entry["passed"] else "FAIL"


def collect(out: Path, transfer: bool) -> dict[str, Any]:
    """The comparison's numbers from the run folders: per arm its training summary and
    evaluation results, and the transfer evaluation."""
    rows: dict[str, Any] = {}
    indices = None
    for arm, recipe, label in ARMS:
        summary = read_step_output(out / "models" / arm / "summary.json")
        results = {column: read_step_output(out / "eval" / arm / column / "results.json") for column, _ in COLUMNS}
        for res in results.values():
            if indices is not None and res["indices"] != indices:
                raise ConfigError("the evaluations ran on different test images")
            indices = res["indices"]
        res = results[COLUMNS[0][0]]
        stop = summary.get("early_stop") or {}
        rows[arm] = {
            "label": label, "recipe": recipe, "defended": summary["defended"],
            "epochs": summary["epochs"], "epochs_trained": stop.get("epochs_trained", summary["epochs"]),
            "model_epoch": stop.get("model_epoch", summary["epochs"]), "early_stop": stop.get("reason"),
            "train_minutes": summary["seconds"] / 60.0, "n_images": res["n_images"],
            "clean": res["clean_accuracy"],
            "columns": {column: results[column]["columns"][column]["accuracy"] for column, _ in COLUMNS},
            "worst_case": _worst_case([r["broken_by"] for r in results.values()]),
            "checks": dict(res["checks"]),
        }
    out_rows: dict[str, Any] = {"arms": rows}
    if transfer:
        res = read_step_output(out / "eval" / TRANSFER / "results.json")
        if res["indices"] != indices:
            raise ConfigError("the evaluations ran on different test images")
        out_rows[TRANSFER] = {"clean": res["clean_accuracy"], "accuracy": res["columns"][TRANSFER]["accuracy"],
                              "n_images": res["n_images"], "attack": res["columns"][TRANSFER]["attacks"]}
    return out_rows


def _worst_case(broken_by: Sequence[Sequence[int]]) -> float:
    """Fraction of images no evaluation broke: ``broken_by`` of each (per image, -1 = robust)."""
    robust = [all(b[i] == -1 for b in broken_by) for i in range(len(broken_by[0]))]
    return sum(robust) / len(robust)


def table(data: dict[str, Any], budget: str) -> list[str]:
    """The Markdown report: the budget, one row per arm, the transfer row, the checks' details."""
    rows = data["arms"]
    lines = [f"Budget: {budget}", "",
             "| arm | recipe | epochs (model / trained / planned) | clean | "
             + " | ".join(label for label, _ in COLUMNS)
             + " | worst case | bpda-variants | binarization | train minutes |",
             "|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|---|---|"]
    for arm, _, _ in ARMS:
        row = rows[arm]
        cells = [row["label"], row["recipe"], f"{row['model_epoch']} / {row['epochs_trained']} / {row['epochs']}",
                 _pct(row["clean"])]
        cells += [_pct(row["columns"][label]) for label, _ in COLUMNS]
        cells += [_pct(row["worst_case"]), _check_cell(row["checks"], "bpda-variants"),
                  _check_cell(row["checks"], "binarization"), f"{row['train_minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if TRANSFER in data:
        t = data[TRANSFER]
        lines += ["", f"Transfer (defended model attacked without knowledge of its frontend, "
                      f"{', '.join(t['attack'])} from the plain model): clean {_pct(t['clean'])}, "
                      f"robust {_pct(t['accuracy'])} on {t['n_images']} images."]
    lines += ["", "Early stopping:"]
    for arm, _, _ in ARMS:
        reason = rows[arm]["early_stop"]
        lines.append(f"- {arm}: " + (f"stopped after epoch {rows[arm]['epochs_trained']}, model of epoch "
                                     f"{rows[arm]['model_epoch']}: {reason}" if reason else "no collapse"))
    lines += ["", "Checks:"]
    for arm, _, _ in ARMS:
        for name, entry in rows[arm]["checks"].items():
            lines.append(f"- {arm} {name}: {'pass' if entry['passed'] else 'FAIL'}: {entry.get('detail', '')}")
    return lines


def plot(data: dict[str, Any], path: Path) -> Path:
    """Clean accuracy (x) against robust accuracy (y: AutoAttack, Square, worst case) per arm,
    and the transfer point of the defended arm."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    markers = {"autoattack": "o", "square": "s", "worst case": "v"}
    colours = {"defended": "tab:blue", "plain": "tab:orange"}
    for arm, _, label in ARMS:
        row = data["arms"][arm]
        values = {**row["columns"], "worst case": row["worst_case"]}
        for name, marker in markers.items():
            axes.scatter([100 * row["clean"]], [100 * values[name]], marker=marker, color=colours[arm],
                         label=f"{label}: {name}")
    if TRANSFER in data:
        t = data[TRANSFER]
        axes.scatter([100 * t["clean"]], [100 * t["accuracy"]], marker="x", color="tab:green",
                     label="defended: transfer from plain")
    axes.set_xlabel("clean accuracy (%)")
    axes.set_ylabel("robust accuracy, Linf 8/255 (%)")
    axes.set_title("fast AT with and without the frontend")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="at_comparison", description=__doc__.split("\n\n")[0])
    p.add_argument("data_root", help="folder holding cifar10/")
    p.add_argument("out", help="output folder (models/, eval/, logs, table.md, comparison.json, plot)")
    p.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "paper"], help="default: cpu")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="an override given to both arms' training (repeatable)")
    p.add_argument("--n-images", type=int, default=1000, help="test images evaluated (default: 1000)")
    p.add_argument("--check-images", type=int, default=100,
                   help="images the checks may use, the first of the subset (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="the attacks' seed (default: 0)")
    p.add_argument("--skip-check", action="append", default=[], choices=["bpda-variants", "binarization"],
                   help="leave out one of the opt-in checks (repeatable)")
    p.add_argument("--no-transfer", dest="transfer", action="store_false",
                   help="skip the transfer evaluation of the defended model")
    p.add_argument("--transfer-attack", default="pgd-linf",
                   help="the white-box attack run on the plain model for the transfer (default: pgd-linf)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each command (default: 2)")
    p.add_argument("--python", default=sys.executable, help="interpreter with scfront installed")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--table-only", action="store_true", help="only write the table of finished runs")
    return p.parse_args(argv)


def _budget(preset: str, config: dict[str, Any], n_images: int) -> str:
    return (f"preset {preset}, {config['train.epochs']} epochs of FGSM-RS (step {config['train.fgsm_alpha']:g} eps, "
            f"eps {255 * config['train.attack_eps']:.0f}/255), batch {config['train.batch_size']}, one-cycle peak "
            f"{config['train.lr_max']:g}, seed {config['train.seed']}, early stopping on "
            f"{config['train.early_stop_images']} held-out training images; {n_images} test images; "
            "the arms differ in frontend.enabled only")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for flag, value in (("--n-images", args.n_images), ("--check-images", args.check_images),
                            ("--threads", args.threads)):
            if value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
        configs = check_arms(args.preset, args.set)
        steps = commands(args, available_checks())
        out = Path(args.out)
        if args.dry_run:
            for _name, argv_ in steps:
                print(shlex.join(argv_))
            return 0
        if not args.table_only:
            if not Path(args.data_root).is_dir():
                raise ConfigError(f"data root {args.data_root} is not a directory")
            out.mkdir(parents=True, exist_ok=True)
            for name, argv_ in steps:
                log = out / f"{name}.log"
                print(f"{name} (log: {log})", flush=True)
                run_logged(argv_, log, name)
        data = collect(out, args.transfer)
        lines = table(data, _budget(args.preset, configs["defended"], args.n_images))
        if not args.table_only or out.is_dir():
            atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
            # the commands as run, the interpreter written as "python"
            recorded = [shlex.join(["python", *a[1:]]) for _, a in steps]
            atomic_write_json(out / "comparison.json", {"commands": recorded, **data})
            plot(data, out / "clean_vs_robust.png")
        print("\n".join(lines))
        return 0
    except ScfrontError as exc:
        print(f"at_comparison: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
