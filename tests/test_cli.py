"""The `scfront` command: help texts and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scfront.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "scfront.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("scfront ")
