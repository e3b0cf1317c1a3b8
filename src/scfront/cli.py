"""The ``scfront`` command.

Each pipeline stage registers its own subcommands from its package's ``cli`` module (a function
``register(subparsers)``); handlers import the heavy modules only when they run, so ``--help``
is instant. Every handler returns an exit status. An :class:`~scfront.errors.ScfrontError`
(bad input, missing file, invalid config) is printed as one line ``scfront: error: ...`` with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from scfront import __version__
from scfront.config import PRESETS, DatasetName, RunConfig, load_config, load_preset
from scfront.errors import ConfigError, ScfrontError
from scfront.runtime import configure_cpu

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "scfront.data.cli",
    "scfront.dictionary.cli",
    "scfront.training.cli",
    "scfront.evaluation.cli",
    "scfront.reproduction.cli",
)

log = logging.getLogger("scfront")


# --------------------------------------------------------------------------- shared options
def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "cpu") -> None:
    """``--preset``, ``--dataset``, ``--config`` and repeated ``--set section.key=value``."""
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--preset", choices=PRESETS, default=default_preset,
        help=f"size of the run (default: {default_preset}); see scfront/configs/",
    )
    group.add_argument(
        "--dataset", choices=[d.value for d in DatasetName if d is not DatasetName.SYNTHETIC],
        default=DatasetName.CIFAR10.value, help="dataset whose preset is used (default: cifar10)",
    )
    group.add_argument(
        "--config", type=Path, default=None,
        help="a TOML run configuration (e.g. a saved config.toml); replaces the preset",
    )
    group.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one setting, value in TOML syntax (repeatable), e.g. --set train.epochs=5",
    )


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run configuration chosen by :func:`add_config_arguments` options."""
    if args.config is not None:
        config = load_config(args.config)
        return config.replace(args.overrides) if args.overrides else config
    return load_preset(args.preset, args.dataset, args.overrides)


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="folder holding cifar10/ (and imagenette/); default: $SCFRONT_DATA",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None,
        help="torch device, e.g. cpu or cuda (default: the config's, else cpu)",
    )


def resolve_data_root(value: Path | None) -> Path:
    """``--data-root``, else ``$SCFRONT_DATA``; a clear error when neither is set."""
    if value is None:
        env = os.environ.get("SCFRONT_DATA")
        if not env:
            raise ConfigError("no data root: pass --data-root DIR or set SCFRONT_DATA")
        value = Path(env)
    if not value.is_dir():
        raise ConfigError(f"data root {value} is not a directory")
    return value


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scfront",
        description="Sparse coding frontend: dictionaries, defended models, adaptive attacks.",
    )
    parser.add_argument("--version", action="version", version=f"scfront {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch CPU threads for this command (default: one per core); a training config's "
             "train.num_threads takes precedence. Two one-thread processes (e.g. evaluate "
             "--shard i/2) can outrun one two-thread process: see results/benchmarks.md. "
             "SCFRONT_TUNED_ALLOCATOR=1 enables huge pages and glibc's keep-freed-memory mode",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    _setup_logging(args.verbose, args.quiet)
    try:
        configure_cpu(args.threads)
        return int(args.handler(args) or 0)
    except ScfrontError as exc:
        print(f"scfront: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scfront: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
