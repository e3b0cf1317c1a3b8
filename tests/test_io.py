"""scfront.io.run_logged: the experiment scripts' logged steps."""

from __future__ import annotations

import shlex
import sys

import pytest

from scfront.errors import ConfigError
from scfront.io import run_logged


def test_a_step_appends_its_command_and_output_to_the_log(tmp_path):
    log = tmp_path / "step.log"
    log.write_text("earlier\n", encoding="utf-8")
    argv = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    run_logged(argv, log, "step")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["earlier", "$ " + shlex.join(argv)]
    assert sorted(lines[2:]) == ["err", "out"]


def test_a_failing_step_names_itself_and_its_log(tmp_path):
    log = tmp_path / "bad.log"
    with pytest.raises(ConfigError, match=r"^train of noisy failed \(exit 3\); see .*bad\.log$"):
        run_logged([sys.executable, "-c", "raise SystemExit(3)"], log, "train of noisy")
    assert log.read_text(encoding="utf-8").startswith("$ ")
