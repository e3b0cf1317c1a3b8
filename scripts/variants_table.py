"""Train and evaluate the defense's variants at one identical budget, then print their table.

Rows (docs/method.md §2.7), each a recipe of the chosen preset:

    supervised   defense               frontend + classifier end to end (the reference)
    unsupervised defense_unsupervised  stage 1: frontend as an autoencoder; stage 2: classifier
    noisy        defense_noisy         encoder noise γ = 100 in training only (deterministic)
    noisy_test   defense_noisy_test    the same noise at test time too, deployed as an ensemble
    dropout      defense_dropout       95 % dropout of kept coefficients, train and test, ensemble

The budget is identical: every row gets the same ``train.epochs``, batch size, peak rate and
seed (the preset's defense settings unless overridden); the unsupervised row trains its
classifier for those epochs after its stage 1 of ``--autoencoder-epochs``. Every row is
evaluated with the same attacks on the same test subset; the randomised rows (test-time noise,
dropout) with every gradient averaged over ``--eot-samples`` samples (EOT), the others without.
The table adds the unsupervised frontend's reconstruction MSE and PSNR on the whole test set.

Usage::

    python scripts/variants_table.py DATA_ROOT OUT [--preset cpu] [--epochs N] [--dry-run]

``--dry-run`` prints the commands without running anything. Rerunning the same command resumes:
``scfront train`` and ``scfront evaluate`` continue their folders, finished ones are reused.
Output: OUT/models/<row>, OUT/eval/<row>, OUT/<row>.train.log, OUT/<row>.eval.log and
OUT/table.md (the printed table).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from scfront.config import load_preset
from scfront.errors import ConfigError, ScfrontError
from scfront.io import atomic_write_text, run_logged

ROWS = (
    ("supervised", "defense", "supervised, deterministic (reference)"),
    ("unsupervised", "defense_unsupervised", "unsupervised (autoencoder stage 1)"),
    ("noisy", "defense_noisy", "noisy, train-time noise only"),
    ("noisy_test", "defense_noisy_test", "noisy, test-time noise + ensemble"),
    ("dropout", "defense_dropout", "dropout + ensemble"),
)


@dataclass(frozen=True)
class Row:
    name: str
    recipe: str
    label: str
    randomized: bool  # evaluated with EOT
    ensemble: int  # model.ensemble_samples of the recipe


def plan_rows(preset: str, overrides: Sequence[str]) -> list[Row]:
    """The rows with what their recipes make of them (ConfigError for a bad preset/override)."""
    rows = []
    for name, recipe, label in ROWS:
        config = load_preset(preset, "cifar10", overrides, recipe=recipe)
        fe = config.frontend
        randomized = fe.noise_gamma_test > 0 or fe.dropout_p > 0
        rows.append(Row(name, recipe, label, randomized, config.model.ensemble_samples))
    return rows


def commands(args: argparse.Namespace, rows: Sequence[Row]) -> list[tuple[Row, str, list[str]]]:
    """(row, "train" | "evaluate", argv) in the order they run."""
    cli = [args.python, "-m", "scfront.cli", "--threads", str(args.threads)]
    out = Path(args.out)
    # the one budget, spelled out on every command (the preset's defense epochs by default)
    epochs = args.epochs if args.epochs is not None else load_preset(args.preset, "cifar10").train.epochs
    stage1 = (args.autoencoder_epochs if args.autoencoder_epochs is not None
              else load_preset(args.preset, "cifar10", recipe="defense_unsupervised").train.autoencoder_epochs)
    budget = [f"train.epochs={epochs}", *args.set]
    steps = []
    for row in rows:
        train = [*cli, "train", "--preset", args.preset, "--recipe", row.recipe, "--data-root", args.data_root,
                 "--device", args.device, "--out", str(out / "models" / row.name), "--no-progress"]
        for item in budget + ([f"train.autoencoder_epochs={stage1}"] if row.recipe == "defense_unsupervised" else []):
            train += ["--set", item]
        steps.append((row, "train", train))
    for row in rows:
        evaluate = [*cli, "evaluate", str(out / "models" / row.name), "--data-root", args.data_root,
                    "--attacks", args.attacks, "--n-images", str(args.n_images), "--device", args.device,
                    "--seed", str(args.seed), "--out", str(out / "eval" / row.name), "--no-progress"]
        if row.randomized:
            evaluate += ["--eot-samples", str(args.eot_samples)]
        steps.append((row, "evaluate", evaluate))
    return steps


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run the commands first (or without --table-only)")
    return json.loads(path.read_text(encoding="utf-8"))


def table(out: Path, rows: Sequence[Row]) -> list[str]:
    """The Markdown table from OUT/models/<row>/summary.json and OUT/eval/<row>/results.json."""
    results = {row.name: _read(out / "eval" / row.name / "results.json") for row in rows}
    attack_names = [a["name"] for a in results[rows[0].name]["attacks"]]
    lines = ["| variant | recipe | ensemble | EOT | clean | " + " | ".join(attack_names)
             + " | worst case | stage-1 test MSE | PSNR (dB) | train minutes |",
             "|---|---|---|---|---|" + "---|" * len(attack_names) + "---|---|---|---|"]
    for row in rows:
        summary, res = _read(out / "models" / row.name / "summary.json"), results[row.name]
        robust = {a["name"]: a["robust_accuracy"] for a in res["attacks"]}
        rec = summary.get("reconstruction")
        cells = [row.label, row.recipe, str(row.ensemble) if row.ensemble > 1 else "-",
                 "yes" if row.randomized else "-", f"{100 * res['clean_accuracy']:.1f} %"]
        cells += [f"{100 * robust[n]:.1f} %" if n in robust else "-" for n in attack_names]
        cells += [f"{100 * res['worst_case_accuracy']:.1f} %",
                  "-" if rec is None else f"{rec['mse']:.5f}", "-" if rec is None else f"{rec['psnr']:.2f}",
                  f"{summary['seconds'] / 60:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="variants_table", description=__doc__.split("\n\n")[0])
    p.add_argument("data_root", help="folder holding cifar10/")
    p.add_argument("out", help="output folder (models/, eval/, logs, table.md)")
    p.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "paper"], help="default: cpu")
    p.add_argument("--epochs", type=int, default=None,
                   help="train.epochs of every row (default: the preset's defense epochs)")
    p.add_argument("--autoencoder-epochs", type=int, default=None,
                   help="stage-1 epochs of the unsupervised row (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="another override given to every row's training (repeatable)")
    p.add_argument("--attacks", default="pgd-linf,apgd-ce", help="the attacks of every row (default: pgd-linf,apgd-ce)")
    p.add_argument("--eot-samples", type=int, default=5,
                   help="EOT samples of the randomised rows (default: 5; each is a pass of the whole "
                        "ensemble, so a step costs EOT x ensemble forward-backward passes)")
    p.add_argument("--n-images", type=int, default=200, help="test images evaluated (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="the attacks' seed (default: 0)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each command (default: 2)")
    p.add_argument("--python", default=sys.executable, help="interpreter with scfront installed")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--table-only", action="store_true", help="only print the table of finished rows")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for flag, value in (("--epochs", args.epochs), ("--autoencoder-epochs", args.autoencoder_epochs),
                            ("--eot-samples", args.eot_samples), ("--n-images", args.n_images),
                            ("--threads", args.threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
        overrides = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
        if args.autoencoder_epochs is not None:
            overrides.append(f"train.autoencoder_epochs={args.autoencoder_epochs}")
        rows = plan_rows(args.preset, [*overrides, *args.set])
        out = Path(args.out)
        if args.dry_run:
            for _row, _kind, argv_ in commands(args, rows):
                print(shlex.join(argv_))
            return 0
        if not args.table_only:
            if not Path(args.data_root).is_dir():
                raise ConfigError(f"data root {args.data_root} is not a directory")
            out.mkdir(parents=True, exist_ok=True)
            for row, kind, argv_ in commands(args, rows):
                log = out / f"{row.name}.{'train' if kind == 'train' else 'eval'}.log"
                print(f"{kind} {row.name} (log: {log})", flush=True)
                run_logged(argv_, log, f"{kind} of {row.name}")
        lines = table(out, rows)
        if not args.table_only:
            atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    except ScfrontError as exc:
        print(f"variants_table: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
