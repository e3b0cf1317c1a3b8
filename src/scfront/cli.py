"""The ``scfront`` command.

Each pipeline stage registers its own subcommands from its package's ``cli`` module (a function
``register(subparsers)``); handlers import the heavy modules only when they run, so ``--help``
is instant. Options several commands share live in :mod:`scfront.cli_options`, which those
modules import (never this module: it imports them). Every handler returns an exit status.

One error path for every command: a failure the user can fix is printed as exactly one line on
stderr, naming the problem and the fix, with exit status 2:

- a usage error found by argparse (``scfront train: error: argument --out: ...; see 'scfront
  train --help'``; no usage block), including the options checked while parsing (``--device``,
  ``--out`` and the other output paths, see :mod:`scfront.cli_options`);
- an :class:`~scfront.errors.ScfrontError` (bad input, missing file, invalid config):
  ``scfront: error: ...``;
- an ``OSError`` (permission denied, disk full, a path through a file) and running out of
  memory, with what to change.

Messages pass through :func:`scfront.errors.one_line` (no terminal escape codes, no line breaks).
Anything else is a bug of scfront (or of code it called, such as a model factory): its
traceback is printed, followed by a line saying so, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
from typing import NoReturn, Sequence

from scfront.errors import ScfrontError, one_line
from scfront.runtime import configure_cpu
from scfront.version import __version__

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "scfront.data.cli",
    "scfront.dictionary.cli",
    "scfront.training.cli",
    "scfront.evaluation.cli",
    "scfront.reproduction.cli",
)

log = logging.getLogger("scfront")


# --------------------------------------------------------------------------- parser
class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr, exit status 2:
    ``PROG: error: MESSAGE; see 'PROG --help'``. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``scfront`` parser with every command's subparser."""
    parser = OneLineParser(
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


# What to do about an OSError, by errno.
_OS_FIXES = {
    errno.ENOSPC: "free disk space or write somewhere else",
    getattr(errno, "EDQUOT", errno.ENOSPC): "free disk space or write somewhere else",  # no EDQUOT on Windows
    errno.EACCES: "check its permissions, or choose another path",
    errno.EPERM: "check its permissions, or choose another path",
    errno.EROFS: "choose a path on a writable file system",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "choose another path, or remove what is there",
    errno.EISDIR: "give a file, not a folder",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the path(s), the system's reason and what to change."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or 0, "check the path, its permissions and the free disk space")
    return one_line(f"{paths + ': ' if paths else ''}{reason}; {fix}")


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    kind = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return isinstance(exc, MemoryError) or (kind is not None and isinstance(exc, kind))


def _fail(message: str) -> int:
    print(f"scfront: error: {one_line(message)}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0 success, 2 a user error, 1 a bug, 130
    interrupted). Usage errors raise ``SystemExit(2)`` from argparse, after their one line."""
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
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("scfront: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        return _fail(describe_os_error(exc))
    except Exception as exc:  # noqa: BLE001 - the one place that reports every other failure
        if _is_out_of_memory(exc):
            detail = one_line(exc)
            return _fail(f"out of memory{f' ({detail})' if detail else ''}; use a smaller --batch-size, "
                         "fewer --n-images or --threads, or a device with more memory")
        traceback.print_exc()
        print(f"scfront: this is a bug in scfront (or in code it called, e.g. a model factory): "
              f"unexpected {type(exc).__name__}; please report it with the command and the traceback "
              "above", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
