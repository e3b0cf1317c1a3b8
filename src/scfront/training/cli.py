"""``scfront train``: train the defense or a baseline into a run folder (resumable)."""

from __future__ import annotations

import argparse
import os

from scfront.config import RECIPES, DatasetName, RunConfig, load_preset

EPILOG = """\
examples:
  scfront train --preset smoke --data-root ../shared/datasets --out runs/smoke
  scfront train --preset cpu --recipe natural --data-root DATA --out runs/natural
  scfront train --preset paper --recipe pgd_at --data-root DATA --out runs/pgd --device cuda
  torchrun --nproc_per_node=2 --no-python scfront train --preset cpu --data-root DATA --out runs/ddp
  scfront train --preset smoke --classifier mypackage.nets:make --data-root DATA --out runs/mine

Running the same command again after an interruption continues from the last completed epoch.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from scfront.cli_options import (add_config_arguments, add_data_root_argument, add_device_argument,
                                     output_folder)

    parser = subparsers.add_parser(
        "train", help="train the defended model or a baseline (natural, PGD-AT, TRADES)",
        description="Train the network a preset (or config file) describes into --out. The run "
                    "folder gets config.toml, log.jsonl, checkpoints, model.safetensors, "
                    "model_card.json and summary.json; rerunning resumes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, default_preset="cpu")
    parser.add_argument(
        "--recipe", choices=RECIPES, default=None,
        help="what to train with the preset: the defense (default) or a baseline",
    )
    parser.add_argument(
        "--classifier", default=None, metavar="NAME|package.module:factory",
        help="the classifier (same as --set model.classifier=...): a registered name, or a "
             "callable returning your nn.Module, called with num_classes= if it takes it; loading "
             "the saved model imports that module again",
    )
    add_data_root_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--out", type=output_folder, required=True,
                        help="run folder (created; rerunning the same command resumes it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)

    export = subparsers.add_parser(
        "export", help="copy a trained model alone into a new folder (optionally float16 weights)",
        description="Copy the saved model of RUN (weights, model card, config; none of the run's "
                    "checkpoints and logs) into the new folder OUT, as a package ships it. With --half "
                    "the floating-point parameters are stored in float16 (half the size; the "
                    "dictionary's atoms and BatchNorm statistics stay float32); the exported model is "
                    "loaded back and its logits compared with the run's on seeded probe images.",
        epilog="example:\n  scfront export runs/imagenette_cpu_defense src/scfront/assets/models/imagenette_cpu --half",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("run", metavar="RUN", help="a folder with a saved model (a finished training run)")
    export.add_argument("out", metavar="OUT", type=output_folder, help="the new folder (must not exist)")
    export.add_argument("--half", action="store_true", help="store the parameters in float16")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``scfront export``: :func:`scfront.models.saving.export_model`, then one summary line."""
    import json

    from scfront.models.saving import export_model

    report = export_model(args.run, args.out, half=args.half)
    print(json.dumps(report))
    return 0


def resolve_training_config(args: argparse.Namespace) -> RunConfig:
    """Preset (+ recipe) or ``--config``, then ``--set`` overrides, then ``--classifier`` and
    ``--device``."""
    from scfront.cli_options import resolve_config
    from scfront.errors import ConfigError

    if args.classifier is not None and any(o.split("=", 1)[0].strip() == "model.classifier"
                                           for o in args.overrides):
        raise ConfigError("give the classifier once: --classifier or --set model.classifier=..., not both")
    if args.config is not None:
        if args.recipe is not None:
            raise ConfigError("--recipe applies to presets; a --config file is used as it is")
        config = resolve_config(args)
    else:
        config = load_preset(args.preset, args.dataset, args.overrides,
                             recipe=args.recipe or "defense")
    if args.classifier is not None:
        config = config.replace({"model.classifier": args.classifier})
    if args.device is not None:
        config = config.replace({"train.device": args.device})
    return config


def run(args: argparse.Namespace) -> int:
    from scfront.cli_options import resolve_data_root
    from scfront.training.loop import train

    config = resolve_training_config(args)
    data_root = None
    if config.data.dataset is not DatasetName.SYNTHETIC:
        data_root = resolve_data_root(args.data_root)
    summary = train(config, args.out, data_root, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, the main process reports
    monitor = summary.get("monitor_accuracy")
    shown = "-" if monitor is None else f"{100 * monitor:.2f} %"
    print(f"trained {summary.get('classifier')} ({summary.get('method')}, "
          f"{'defended' if summary.get('defended') else 'no frontend'}) for "
          f"{summary.get('epochs')} epochs in {summary.get('seconds', 0):.0f} s; "
          f"monitor accuracy {shown}; saved to {args.out}")
    return 0
