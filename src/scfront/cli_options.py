"""Command-line options shared by the subcommands, and how they are resolved.

Every ``*/cli.py`` module takes its common options from here; :mod:`scfront.cli` only assembles
the parser from those modules, so no subcommand module imports the command that imports it.

Options that name a device or a place to write are checked while the command line is parsed,
before anything runs or is written, so every command refuses them the same way (one line, exit
status 2):

- ``--device`` (:func:`add_device_argument`, argparse type :func:`device_option`): a device torch
  knows *and* this machine has (``--device gpu`` or ``--device cuda`` on a CPU-only torch is
  refused);
- output folders (argparse type :func:`output_folder`, e.g. ``--out``) and output files
  (:func:`output_file`, e.g. ``dictionary learn --out x.npz``): not an existing file where a
  folder is meant (or a folder where a file is), and creatable: the nearest existing folder
  above is a folder, writable, on a writable file system. :func:`check_output_folder` and
  :func:`check_output_file` are the same checks for Python callers.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from scfront.config import PRESETS, DatasetName, RunConfig, load_config, load_preset
from scfront.errors import ConfigError

__all__ = ["add_config_arguments", "add_data_root_argument", "add_device_argument",
           "check_output_file", "check_output_folder", "dataset_name", "device_option",
           "output_file", "output_folder", "resolve_config", "resolve_data_root"]


_REAL = tuple(d.value for d in DatasetName if d is not DatasetName.SYNTHETIC)


def dataset_name(text: str) -> DatasetName:
    """argparse type of ``--dataset``: a real dataset's name -> :class:`DatasetName`."""
    if text not in _REAL:
        raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(_REAL)})")
    return DatasetName(text)


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "cpu") -> None:
    """``--preset``, ``--dataset``, ``--config`` and repeated ``--set section.key=value``.

    ``--dataset`` is converted to :class:`~scfront.config.DatasetName` by argparse itself, so
    handlers receive the enum (converted once, at the boundary).
    """
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--preset", choices=PRESETS, default=default_preset,
        help=f"size of the run (default: {default_preset}); see scfront/configs/",
    )
    group.add_argument(
        "--dataset", type=dataset_name, default=DatasetName.CIFAR10, metavar="{" + ",".join(_REAL) + "}",
        help="dataset whose preset is used (default: cifar10)",
    )
    group.add_argument(
        "--config", type=Path, default=None,
        help="a TOML run configuration (e.g. a saved config.toml); replaces the preset",
    )
    group.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one setting (repeatable), value in TOML syntax or a fraction, e.g. "
             "--set train.epochs=5 --set train.attack_eps=8/255",
    )


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run configuration chosen by :func:`add_config_arguments` options."""
    if args.config is not None:
        config = load_config(args.config)
        return config.replace(args.overrides) if args.overrides else config
    return load_preset(args.preset, args.dataset, args.overrides)


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root DIR`` (see :func:`resolve_data_root`)."""
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="folder holding cifar10/ (and imagenette/); default: $SCFRONT_DATA",
    )


def device_option(text: str) -> str:
    """argparse type of ``--device``: ``text`` when it is a torch device this machine has.

    Raises:
        argparse.ArgumentTypeError: an unknown device string (``gpu``), or CUDA/MPS where torch
            has none (:func:`scfront.validate.available_device` says which).
    """
    from scfront.validate import available_device

    if text == "cpu":
        return text  # always there; no torch import while parsing
    try:
        available_device(text, "device")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = None,
                        help: str = "torch device, e.g. cpu or cuda (default: the config's, else cpu)") -> None:
    """``--device`` (a torch device string this machine has, checked by :func:`device_option`
    while parsing; ``default`` when not given)."""
    parser.add_argument("--device", type=device_option, default=default, help=help)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (absolute)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _writable_folder(folder: Path) -> str | None:
    """Why new entries cannot be created in the existing folder ``folder``, or None."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): rely on os.access
        read_only = False
    if read_only:
        return f"{folder} is on a read-only file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable by this user"
    return None


def _label(option: str, path: Path) -> str:
    return f"{option} {path}" if option else str(path)


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """``Path(path)`` when it is an existing folder or one that can be created, and writable.

    Nothing is created: the command creates the folder when it writes its first file.

    Args:
        option: the option's name for the message ("" for none).

    Raises:
        ConfigError: ``path`` is an existing file; a file lies on the way to it (``a.txt/run``);
            the nearest existing folder is not writable or on a read-only file system.
    """
    path = Path(path)
    where = _label(option, path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where} is an existing file, not a folder; choose a folder path (created "
                          "if missing) or remove the file")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ConfigError(f"{where}: {base} is a file, so no folder can be created below it; choose "
                          "another path")
    problem = _writable_folder(base)
    if problem is not None:
        raise ConfigError(f"{where} cannot be written: {problem}; choose a writable place")
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """``Path(path)`` when a file can be written there: not a folder, an existing file that is
    writable, or a new file whose folder exists or can be created (see
    :func:`check_output_folder`). Nothing is created.

    Raises:
        ConfigError: naming the problem and what to choose instead.
    """
    path = Path(path)
    where = _label(option, path)
    if path.is_dir():
        raise ConfigError(f"{where} is an existing folder; give a file name (e.g. {path / 'out'})")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{where} exists and is not writable; choose another file")
    base = path.absolute().parent if path.exists() else _nearest_existing(path.parent)
    if not base.is_dir():
        raise ConfigError(f"{where}: {base} is a file, so nothing can be created below it; choose "
                          "another path")
    problem = _writable_folder(base)  # an existing file is replaced atomically, from its folder
    if problem is not None:
        raise ConfigError(f"{where} cannot be written: {problem}; choose a writable place")
    return path


def output_folder(text: str) -> Path:
    """argparse type of an output folder option (``--out``): :func:`check_output_folder`, its
    error a usage error (one line, exit status 2)."""
    try:
        return check_output_folder(text, "")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_file(text: str) -> Path:
    """argparse type of an output file option (``--plot``): :func:`check_output_file`, its
    error a usage error (one line, exit status 2)."""
    try:
        return check_output_file(text, "")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
