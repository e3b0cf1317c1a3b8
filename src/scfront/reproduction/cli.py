"""``scfront reproduce table1|ablations`` and ``scfront demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TABLE1_EPILOG = """\
examples:
  scfront reproduce table1 --preset smoke --data-root DATA --out runs/table1_smoke
  scfront reproduce table1 --preset cpu --data-root DATA --out runs/table1_cpu \\
      --reuse natural=results/train/cifar10_cpu_natural --reuse defense=runs/cifar10_cpu_defense \\
      --pgd-at-checkpoint ../shared/reference/checkpoints/resnet32_pgd_at.pt
  scfront reproduce table1 --preset paper --data-root DATA --out runs/table1 --device cuda
  scfront reproduce table1 --dataset imagenette --preset cpu --data-root DATA --out runs/imagenette_table \
      --reuse natural=runs/imagenette_cpu_natural --reuse defense=runs/imagenette_cpu_defense

Rerunning the same command resumes (trained runs, evaluation units, sweep points are kept).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from scfront.cli_options import add_device_argument, output_folder

    rep = subparsers.add_parser("reproduce", help="reproduce the paper's Table 1 or its ablations",
                                description="Reproduce the paper's results at a preset's scale.")
    sub = rep.add_subparsers(dest="what", metavar="WHAT")
    rep.set_defaults(handler=lambda args: (rep.print_help(), 2)[1])

    t1 = sub.add_parser(
        "table1", help="natural / PGD-AT / TRADES / defense against the attack columns of Table 1",
        description="Train (or reuse) the four models of Table 1 and evaluate each against every "
                    "column (clean, PGD-Linf, CW-Linf, PGD-L2, PGD-L1 faithful and sparse, "
                    "APGD-CE + APGD-DLR, Square, Boundary, worst case); writes report.md, "
                    "table1.json, per-model results.json and plots. With --dataset imagenette: "
                    "natural EfficientNet-B0, an adversarially trained one (only with --reuse "
                    "pgd_at=DIR at the cpu preset) and the defense against PGD-Linf 2/255, 4/255 "
                    "and 8/255, APGD-CE + APGD-DLR and Square 8/255, on the Imagenette val subset.",
        epilog=TABLE1_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(t1)
    t1.add_argument("--reuse", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="use this saved model for row NAME (natural, pgd_at, trades, defense) "
                         "instead of training it (repeatable); a .pt is an original checkpoint")
    t1.add_argument("--pgd-at-checkpoint", type=Path, default=None,
                    help="the original PGD-AT ResNet-32 checkpoint (.pt) for the PGD-AT row")
    t1.add_argument("--rows", default=None, help="comma-separated rows to produce (default: all of "
                                                 "the dataset's: natural,pgd_at,trades,defense on "
                                                 "CIFAR-10, natural,pgd_at,defense on Imagenette)")
    t1.add_argument("--dataset", choices=["cifar10", "imagenette"], default="cifar10",
                    help="the table of this dataset (default: cifar10, the paper's Table 1)")
    t1.add_argument("--report-only", action="store_true",
                    help="run no training, evaluation or sweep: rebuild table1.json, report.md and the "
                         "figures from the stored results and sweep points (e.g. after copying a row's "
                         "eval/ and sweeps/ folders in from another output folder)")
    _add_tail_options(t1, "every recipe's config, e.g. --set evaluation.n_images=64")
    t1.set_defaults(handler=_table1)

    ab = sub.add_parser(
        "ablations", help="the ablations of the paper (T sweep, no activation, ..., DCT basis)",
        description="Train and evaluate each ablation of docs/method.md §8 with one reduced, "
                    "identical budget; writes report.md, ablations.json and a plot.")
    _add_run_options(ab)
    ab.add_argument("--only", default=None, help="comma-separated ablation names (default: all)")
    _add_tail_options(ab, "every ablation (after the shared budget)")
    ab.set_defaults(handler=_ablations)

    demo = subparsers.add_parser(
        "demo", help="attack a model (default: the shipped defense) on a test sample shipped with scfront (offline)",
        description="Clean accuracy, PGD-Linf 8/255 and APGD-CE 8/255 (BPDA for a defended model) "
                    "on the test sample shipped with scfront for the model's dataset (CIFAR-10: 200 test "
                    "images; Imagenette: 150 val images), the first --n-images of it; prints a table "
                    "and the report's path. Needs no dataset and no network.")
    demo.add_argument("--model", default=None, metavar="NAME_OR_DIR",
                      help="a saved model folder (e.g. written by scfront train) or a shipped model "
                           "name (default: cifar10_cpu)")
    demo.add_argument("--out", type=output_folder, default=None,
                      help="output folder (default: one folder per model and sample size under the "
                           "cache, $SCFRONT_CACHE or ~/.cache/scfront, in demo/)")
    demo.add_argument("--n-images", type=int, default=None, help="images of the sample (default: 100 of the CIFAR-10 sample, 20 of the "
                           "Imagenette one)")
    add_device_argument(demo)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """--preset, --data-root and --out of both reproduce commands."""
    from scfront.cli_options import add_data_root_argument, output_folder
    from scfront.config import PRESETS

    parser.add_argument("--preset", choices=PRESETS, default="cpu", help="scale (default: cpu)")
    add_data_root_argument(parser)
    parser.add_argument("--out", type=output_folder, required=True, help="output folder (created; reused to resume)")


def _add_tail_options(parser: argparse.ArgumentParser, set_applies_to: str) -> None:
    """--set, --seed, --device and --no-progress of both reproduce commands."""
    from scfront.cli_options import add_device_argument

    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override a setting of {set_applies_to}")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the attacks (default: 0)")
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _table1(args: argparse.Namespace) -> int:
    from scfront.cli_options import resolve_data_root
    from scfront.reproduction.report import render_table
    from scfront.reproduction.rows import parse_reuse
    from scfront.reproduction.table1 import Table1Settings, parse_rows, run_table1

    settings = Table1Settings(
        preset=args.preset, data_root=resolve_data_root(args.data_root), out_dir=args.out,
        reuse=parse_reuse(args.reuse, args.dataset), pgd_at_checkpoint=args.pgd_at_checkpoint,
        rows=parse_rows(args.rows, args.dataset), overrides=tuple(args.overrides), device=args.device or "cpu",
        seed=args.seed, progress=_progress(args), dataset=args.dataset, report_only=args.report_only)
    start = time.perf_counter()
    table = run_table1(settings)
    print("\n".join(render_table(table)))
    print(f"report: {args.out / 'report.md'} ({time.perf_counter() - start:.0f} s)")
    return 0


def _ablations(args: argparse.Namespace) -> int:
    from scfront.cli_options import resolve_data_root
    from scfront.reproduction.ablations import run_ablations

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    rows = run_ablations(args.preset, resolve_data_root(args.data_root), args.out, only=only,
                         overrides=args.overrides, device=args.device or "cpu", seed=args.seed,
                         progress=_progress(args))
    for r in rows:
        shown = ["–" if r[k] is None else f"{100 * r[k]:.2f} %" for k in ("clean", "pgd-linf")]
        print(f"{r['name']:<24} clean {shown[0]:>9}  PGD-Linf {shown[1]:>9}")
    print(f"report: {args.out / 'report.md'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from scfront.reproduction.demo import DemoSettings, format_results, run_demo

    settings = DemoSettings(model=args.model, out_dir=args.out, n_images=args.n_images,
                            device=args.device or "cpu", progress=_progress(args))
    start = time.perf_counter()
    results, report = run_demo(settings)
    print(format_results(results))
    print(f"report: {report} ({time.perf_counter() - start:.0f} s)")
    return 0
