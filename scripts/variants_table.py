"""Train and evaluate the defense's variants at one identical budget, then write their tables.

Rows (docs/method.md §2.7), each a recipe of the chosen preset:

    supervised   defense               frontend + classifier end to end (the reference)
    unsupervised defense_unsupervised  stage 1: frontend as an autoencoder; stage 2: classifier
    noisy        defense_noisy         encoder noise γ = 100 in training only (deterministic)
    noisy_test   defense_noisy_test    the same noise at test time too, deployed as an ensemble
    dropout      defense_dropout       95 % dropout of kept coefficients, train and test, ensemble

The budget is identical: every row gets the same ``train.epochs``, batch size, peak rate and
seed (the preset's defense settings unless overridden); the unsupervised row trains its
classifier for those epochs after its stage 1 of ``--autoencoder-epochs``. ``--reuse ROW=DIR``
takes a finished training run instead of training the row, after checking that its
configuration is exactly the one the row would train with (where and with how many threads it
ran aside).

Evaluation, all on the fixed seeded test subset (a shorter subset is the first images of a
longer one), with the attacks of ``--attacks`` as one cascade (each attack on what the earlier
ones left robust; the last column is the per-example worst case) and the default checks:

- a deterministic row on ``--n-images`` images (default 1,000);
- a randomised row (test-time noise, dropout; deployed as the recipe's ensemble) on the first
  ``--random-images`` (default 200), every gradient averaged over ``--eot-samples`` calls of the
  deployed model (EOT); black-box attacks query the deployed model as it is. Two more
  evaluations show what EOT does: the gradient attacks without EOT on the same images
  (``<row>_no_eot``, with the randomness check, which must fail there), and with twice the
  samples on the first ``--doubling-images`` (default 100, ``<row>_eot_2x``): the EOT count
  suffices when doubling it lowers the accuracy after the gradient attacks by at most 2 points.

The reference row is also reported on the first ``--random-images`` images (from its own
per-image results), so the randomised rows have a deterministic row on the same images.

Usage::

    python scripts/variants_table.py DATA_ROOT OUT [--preset cpu] [--epochs N] [--dry-run]

``--dry-run`` prints the commands without running anything. Rerunning the same command resumes:
``scfront train`` and ``scfront evaluate`` continue their folders, finished ones are reused.
Output: OUT/models/<row>, OUT/eval/<evaluation>, OUT/<step>.log, OUT/table.md (the tables),
OUT/variants.json (the commands and every number) and OUT/clean_vs_worst.png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from scfront.config import differing_settings, flat_settings, load_config, load_preset
from scfront.errors import ConfigError, ScfrontError
from scfront.io import atomic_write, atomic_write_json, atomic_write_text, read_step_output, run_logged
from scfront.training.loop import EXECUTION_SETTINGS  # where a run executed, not what it trained

ROWS = (
    ("supervised", "defense", "supervised, deterministic (reference)"),
    ("unsupervised", "defense_unsupervised", "unsupervised (autoencoder stage 1)"),
    ("noisy", "defense_noisy", "noisy, train-time noise only"),
    ("noisy_test", "defense_noisy_test", "noisy, test-time noise + ensemble"),
    ("dropout", "defense_dropout", "dropout + ensemble"),
)
REFERENCE = "supervised"
ATTACKS = "pgd-linf,apgd-ce,apgd-dlr,square:queries=5000"
EOT_TOLERANCE = 0.02  # doubling the EOT samples may lower the accuracy by at most this much


@dataclass(frozen=True)
class Row:
    name: str
    recipe: str
    label: str
    randomized: bool  # evaluated with EOT
    ensemble: int  # model.ensemble_samples of the recipe
    settings: dict[str, Any]  # the resolved training configuration, flat


@dataclass(frozen=True)
class Step:
    row: str
    name: str  # the log's name: "<row>.train" or "<evaluation>.eval"
    argv: list[str]


def plan_rows(preset: str, overrides: Sequence[str]) -> list[Row]:
    """The rows with what their recipes make of them (ConfigError for a bad preset/override)."""
    rows = []
    for name, recipe, label in ROWS:
        config = load_preset(preset, "cifar10", overrides, recipe=recipe)
        fe = config.frontend
        randomized = fe.noise_gamma_test > 0 or fe.dropout_p > 0
        rows.append(Row(name, recipe, label, randomized, config.model.ensemble_samples, flat_settings(config)))
    return rows


def gradient_items(attacks: str) -> list[str]:
    """The white-box items of the attack list ``attacks`` (the ones EOT applies to), in order."""
    from scfront.evaluation.suite import build_suite

    items = [item.strip() for item in attacks.split(",") if item.strip()]
    suite = build_suite(items)
    white = [item for item, attack in zip(items, suite) if not attack.black_box]
    if not white:
        raise ConfigError(f"--attacks {attacks!r} has no gradient attack for EOT to apply to")
    return white


def reused_runs(items: Sequence[str], rows: Sequence[Row]) -> dict[str, Path]:
    """{row: finished run folder} from ``--reuse ROW=DIR`` items, each checked to be trained with
    exactly the row's configuration (ConfigError naming the differing settings otherwise)."""
    by_name = {row.name: row for row in rows}
    out: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or name not in by_name or not folder:
            raise ConfigError(f"--reuse takes ROW=DIR with ROW one of {', '.join(by_name)}; got {item!r}")
        run = Path(folder)
        if not (run / "summary.json").is_file() or not (run / "config.toml").is_file():
            raise ConfigError(f"--reuse {item}: {run} is not a finished training run (no summary.json/config.toml)")
        saved = flat_settings(load_config(run / "config.toml"))
        wanted = by_name[name].settings
        differ = differing_settings(saved, wanted, ignore=EXECUTION_SETTINGS)
        if differ:
            raise ConfigError(f"--reuse {item}: that run was not trained like the other rows: "
                              + "; ".join(f"{k}: {saved.get(k)!r} (row: {wanted.get(k)!r})" for k in differ))
        out[name] = run
    return out


def evaluations(args: argparse.Namespace, row: Row) -> list[tuple[str, str, int, list[str]]]:
    """(evaluation name, attacks, images, extra flags) of one row."""
    if not row.randomized:
        return [(row.name, args.attacks, args.n_images, [])]
    gradient = ",".join(gradient_items(args.attacks))
    return [(row.name, args.attacks, args.random_images, ["--eot-samples", str(args.eot_samples)]),
            (f"{row.name}_no_eot", gradient, args.random_images, ["--checks", "randomness"]),
            (f"{row.name}_eot_2x", gradient, args.doubling_images,
             ["--eot-samples", str(2 * args.eot_samples), "--no-checks"])]


def commands(args: argparse.Namespace, rows: Sequence[Row], reuse: dict[str, Path]) -> list[Step]:
    """The steps in the order they run: the trainings (rows not reused), then the evaluations."""
    cli = [args.python, "-m", "scfront.cli", "--threads", str(args.threads)]
    out = Path(args.out)
    # the one budget, spelled out on every command (the preset's defense epochs by default)
    epochs = args.epochs if args.epochs is not None else load_preset(args.preset, "cifar10").train.epochs
    stage1 = (args.autoencoder_epochs if args.autoencoder_epochs is not None
              else load_preset(args.preset, "cifar10", recipe="defense_unsupervised").train.autoencoder_epochs)
    budget = [f"train.epochs={epochs}", *args.set]
    steps = []
    for row in rows:
        if row.name in reuse:
            continue
        train = [*cli, "train", "--preset", args.preset, "--recipe", row.recipe, "--data-root", args.data_root,
                 "--device", args.device, "--out", str(out / "models" / row.name), "--no-progress"]
        for item in budget + ([f"train.autoencoder_epochs={stage1}"] if row.recipe == "defense_unsupervised" else []):
            train += ["--set", item]
        steps.append(Step(row.name, f"{row.name}.train", train))
    for row in rows:
        model = str(reuse.get(row.name, out / "models" / row.name))
        for name, attacks, images, extra in evaluations(args, row):
            steps.append(Step(row.name, f"{name}.eval", [
                *cli, "evaluate", model, "--data-root", args.data_root, "--attacks", attacks,
                "--n-images", str(images), "--device", args.device, "--seed", str(args.seed),
                *extra, "--out", str(out / "eval" / name), "--no-progress"]))
    return steps


def prefix_accuracies(results: dict[str, Any], k: int | None = None) -> dict[str, Any]:
    """Accuracies of an evaluation (a cascade) on its first ``k`` images (``None``: all), from its
    per-image ``broken_by`` (-2 wrong on clean, -1 robust, else the first attack that broke it):
    ``{"n", "clean", "after": {attack: accuracy against it and every earlier one}}``."""
    broken = results["broken_by"]
    k = len(broken) if k is None else k
    if k > len(broken):
        raise ConfigError(f"an evaluation of {len(broken)} images has no first {k}")
    head = broken[:k]
    after = {a["name"]: sum(1 for b in head if b == -1 or b > j) / k for j, a in enumerate(results["attacks"])}
    return {"n": k, "clean": sum(1 for b in head if b != -2) / k, "after": after}


def _failed_checks(results: dict[str, Any]) -> list[str]:
    return [name for name, entry in results.get("checks", {}).items() if not entry.get("passed")]


def _eval_minutes(results: dict[str, Any]) -> float:
    return sum(float(results.get(k, 0.0)) for k in ("clean_seconds", "attack_seconds", "check_seconds")) / 60.0


def collect(args: argparse.Namespace, rows: Sequence[Row], reuse: dict[str, Path]) -> dict[str, Any]:
    """Every number of the tables, from the training summaries and the evaluations' results."""
    out = Path(args.out)
    data: dict[str, Any] = {"rows": {}, "eot": {}}
    for row in rows:
        summary = read_step_output(reuse.get(row.name, out / "models" / row.name) / "summary.json")
        res = read_step_output(out / "eval" / row.name / "results.json")
        rec = summary.get("reconstruction")
        data["rows"][row.name] = {
            "label": row.label, "recipe": row.recipe, "ensemble": row.ensemble, "randomized": row.randomized,
            "eot_samples": args.eot_samples if row.randomized else None,
            **prefix_accuracies(res), "worst_case": res["worst_case_accuracy"],
            "failed_checks": _failed_checks(res), "checks": res.get("checks", {}),
            "reconstruction": rec, "train_minutes": summary["seconds"] / 60.0, "eval_minutes": _eval_minutes(res),
            "reused_run": row.name in reuse}
        if not row.randomized:
            continue
        gradient = gradient_items(args.attacks)

        def last(acc: dict[str, Any]) -> float:  # the accuracy after the last gradient attack
            return acc["after"][list(acc["after"])[len(gradient) - 1]]

        without = read_step_output(out / "eval" / f"{row.name}_no_eot" / "results.json")
        doubled = read_step_output(out / "eval" / f"{row.name}_eot_2x" / "results.json")
        n2 = len(doubled["broken_by"])
        with_eot, base_head = prefix_accuracies(res), prefix_accuracies(res, n2)
        data["eot"][row.name] = {
            "gradient_attacks": gradient, "images": with_eot["n"],
            "without_eot": last(prefix_accuracies(without)), "with_eot": last(with_eot),
            "randomness_check_without_eot": without.get("checks", {}).get("randomness", {}).get("passed"),
            "doubling_images": n2, "eot_samples": args.eot_samples,
            "at_samples": last(base_head), "at_twice": last(prefix_accuracies(doubled)),
            "eval_minutes": _eval_minutes(without) + _eval_minutes(doubled)}
        drop = data["eot"][row.name]["at_samples"] - data["eot"][row.name]["at_twice"]
        data["eot"][row.name].update(drop=drop, enough=drop <= EOT_TOLERANCE + 1e-12)
    random_images = [r["n"] for r in data["rows"].values() if r["randomized"]]
    if random_images and REFERENCE in data["rows"] and not data["rows"][REFERENCE]["randomized"]:
        ref = read_step_output(out / "eval" / REFERENCE / "results.json")
        data["reference_on_random_images"] = {**prefix_accuracies(ref, min(random_images)),
                                              "label": data["rows"][REFERENCE]["label"]}
    return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def table(data: dict[str, Any], budget: str) -> list[str]:
    """The Markdown report: the budget, the variants table, the reference on the randomised rows'
    images, what EOT changes, the failed checks."""
    rows = data["rows"]
    attack_names = list(next(iter(rows.values()))["after"])
    heads = [attack_names[0]] + [f"+ {n}" for n in attack_names[1:]]
    lines = [f"Budget: {budget}", "",
             "| variant | recipe | ensemble | EOT samples | images | clean | " + " | ".join(heads)
             + " | checks | stage-1 test MSE | PSNR (dB) | train minutes | eval minutes |",
             "|---|---|---|---|---|---|" + "---|" * len(heads) + "---|---|---|---|---|"]

    def accuracy_cells(acc: dict[str, Any]) -> list[str]:
        return [str(acc["n"]), _pct(acc["clean"])] + [_pct(acc["after"].get(n)) for n in attack_names]

    for name, row in rows.items():
        rec = row["reconstruction"]
        checks = "pass" if not row["failed_checks"] else "FAIL: " + ", ".join(row["failed_checks"])
        cells = [row["label"], row["recipe"], str(row["ensemble"]) if row["ensemble"] > 1 else "-",
                 str(row["eot_samples"]) if row["randomized"] else "-", *accuracy_cells(row), checks,
                 "-" if rec is None else f"{rec['mse']:.5f}", "-" if rec is None else f"{rec['psnr']:.2f}",
                 f"{row['train_minutes']:.1f}" + (" (reused run)" if row["reused_run"] else ""),
                 f"{row['eval_minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    ref = data.get("reference_on_random_images")
    if ref is not None:
        cells = [f"{ref['label']}, first {ref['n']} images", rows[REFERENCE]["recipe"], "-", "-",
                 *accuracy_cells(ref), "", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each attack column is the accuracy against that attack and every one before it (a cascade: "
                  "each attack runs on what the earlier ones left robust); the last is the per-example worst case."]
    if data["eot"]:
        lines += ["", "What EOT changes (accuracy after the gradient attacks, as a cascade):", "",
                  "| variant | images | without EOT | with EOT | randomness check without EOT | images | "
                  "EOT samples | twice the samples | drop | enough (drop <= 2 points) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, e in data["eot"].items():
            check = {True: "pass", False: "FAIL", None: "-"}[e["randomness_check_without_eot"]]
            lines.append(f"| {rows[name]['label']} | {e['images']} | {_pct(e['without_eot'])} | "
                         f"{_pct(e['with_eot'])} | {check} | {e['doubling_images']} | "
                         f"{e['eot_samples']}: {_pct(e['at_samples'])} | {2 * e['eot_samples']}: "
                         f"{_pct(e['at_twice'])} | {100 * e['drop']:.1f} points | {'yes' if e['enough'] else 'NO'} |")
    failed = [(rows[n]["label"], c, rows[n]["checks"][c].get("detail", "")) for n in rows for c in rows[n]["failed_checks"]]
    if failed:
        lines += ["", "Failed checks:"] + [f"- {label}: {check}: {detail}" for label, check, detail in failed]
    return lines


def plot(data: dict[str, Any], path: Path) -> Path:
    """Clean accuracy (x) against the per-example worst case (y), one point per variant."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for row in data["rows"].values():
        marker = "s" if row["randomized"] else "o"
        axes.scatter([100 * row["clean"]], [100 * row["worst_case"]], marker=marker, s=50,
                     label=f"{row['label']} ({row['n']} images)")
    axes.set_xlabel("clean accuracy (%)")
    axes.set_ylabel("worst case over the attacks (%)")
    axes.set_title("Variants of the defense (squares: randomised, with EOT)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))


def _budget(args: argparse.Namespace, rows: Sequence[Row]) -> str:
    s = rows[0].settings
    stage1 = next(r for r in rows if r.name == "unsupervised").settings["train.autoencoder_epochs"]

    def epochs(n: int) -> str:
        return f"{n} epoch{'' if n == 1 else 's'}"

    return (f"preset {args.preset}, {epochs(s['train.epochs'])} for every row (unsupervised: after "
            f"{epochs(stage1)} of stage 1), batch {s['train.batch_size']}, peak rate {s['train.lr_max']:g}, seed "
            f"{s['train.seed']}; attacks {args.attacks}; deterministic rows on {args.n_images} test images, "
            f"randomised rows on the first {args.random_images} with EOT {args.eot_samples} calls of the "
            f"deployed model per gradient")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="variants_table", description=__doc__.split("\n\n")[0])
    p.add_argument("data_root", help="folder holding cifar10/")
    p.add_argument("out", help="output folder (models/, eval/, logs, table.md, variants.json, plot)")
    p.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "paper"], help="default: cpu")
    p.add_argument("--epochs", type=int, default=None,
                   help="train.epochs of every row (default: the preset's defense epochs)")
    p.add_argument("--autoencoder-epochs", type=int, default=None,
                   help="stage-1 epochs of the unsupervised row (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="another override given to every row's training (repeatable)")
    p.add_argument("--reuse", action="append", default=[], metavar="ROW=DIR",
                   help="a finished training run for ROW, checked to have the row's configuration (repeatable)")
    p.add_argument("--attacks", default=ATTACKS, help=f"the attacks of every row, one cascade (default: {ATTACKS})")
    p.add_argument("--eot-samples", type=int, default=2,
                   help="EOT samples of the randomised rows (default: 2; each is a call of the deployed "
                        "ensemble, so a gradient costs samples x ensemble forward-backward passes)")
    p.add_argument("--n-images", type=int, default=1000, help="test images of the deterministic rows (default: 1000)")
    p.add_argument("--random-images", type=int, default=200,
                   help="test images of the randomised rows, the first of the subset (default: 200)")
    p.add_argument("--doubling-images", type=int, default=100,
                   help="images of the doubled-EOT evaluation (default: 100)")
    p.add_argument("--rows", default=None,
                   help="comma-separated rows whose steps this invocation runs (default: all), e.g. to run "
                        "two invocations side by side on one thread each; the tables are written once every "
                        "row is done")
    p.add_argument("--seed", type=int, default=0, help="the attacks' seed (default: 0)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each command (default: 2)")
    p.add_argument("--python", default=sys.executable, help="interpreter with scfront installed")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--table-only", action="store_true", help="only write the tables of finished rows")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for flag, value in (("--epochs", args.epochs), ("--autoencoder-epochs", args.autoencoder_epochs),
                            ("--eot-samples", args.eot_samples), ("--n-images", args.n_images),
                            ("--random-images", args.random_images), ("--doubling-images", args.doubling_images),
                            ("--threads", args.threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
        if not args.doubling_images <= args.random_images <= args.n_images:
            raise ConfigError("the image counts must satisfy --doubling-images <= --random-images <= --n-images "
                              "(each subset is the start of the next)")
        gradient_items(args.attacks)
        overrides = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
        if args.autoencoder_epochs is not None:
            overrides.append(f"train.autoencoder_epochs={args.autoencoder_epochs}")
        rows = plan_rows(args.preset, [*overrides, *args.set])
        reuse = reused_runs(args.reuse, rows)
        steps = commands(args, rows, reuse)
        if args.rows is not None:
            chosen = [name.strip() for name in args.rows.split(",") if name.strip()]
            unknown = sorted(set(chosen) - {row.name for row in rows})
            if unknown or not chosen:
                raise ConfigError(f"--rows takes names among {', '.join(r.name for r in rows)}; got {args.rows!r}")
            steps = [step for step in steps if step.row in chosen]
        out = Path(args.out)
        if args.dry_run:
            for step in steps:
                print(shlex.join(step.argv))
            return 0
        if not args.table_only:
            if not Path(args.data_root).is_dir():
                raise ConfigError(f"data root {args.data_root} is not a directory")
            out.mkdir(parents=True, exist_ok=True)
            for step in steps:
                log = out / f"{step.name}.log"
                print(f"{step.name} (log: {log})", flush=True)
                run_logged(step.argv, log, step.name)
            missing = [row.name for row in rows if not (out / "eval" / row.name / "results.json").is_file()]
            if args.rows is not None and missing:
                print(f"done; the tables wait for the rows {', '.join(missing)}")
                return 0
        data = collect(args, rows, reuse)
        lines = table(data, _budget(args, rows))
        if out.is_dir():
            atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
            recorded = [shlex.join(["python", *s.argv[1:]]) for s in steps]  # the interpreter as "python"
            atomic_write_json(out / "variants.json", {"commands": recorded, **data})
            plot(data, out / "clean_vs_worst.png")
        print("\n".join(lines))
        return 0
    except ScfrontError as exc:
        print(f"variants_table: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
