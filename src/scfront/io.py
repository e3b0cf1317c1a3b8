"""Atomic file writes, content hashes and logged commands shared by every long job.

A file is written to a temporary sibling, flushed, fsynced and renamed over the target, so a
process killed at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from scfront.errors import CheckpointError, ConfigError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json_record(path: str | Path, fmt: int, what: str) -> dict[str, Any]:
    """The JSON object stored in ``path`` (an existing file) whose ``"format"`` field is ``fmt``.

    Args:
        what: what the file is, for the error message (e.g. ``"scfront model card"``).

    Raises:
        CheckpointError: ``"{path} is not valid JSON (...)"``, or ``"{path} is not a {what} of
            format {fmt}"`` for valid JSON of another shape or format.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} of format {fmt}")
    return record


def run_logged(argv: Sequence[str], log: str | Path, what: str) -> None:
    """Run ``argv`` with its output (stdout and stderr) appended to ``log`` after a ``$ command``
    line, as the experiment scripts run their steps.

    Raises:
        ConfigError: ``"{what} failed (exit N); see {log}"`` when the command exits non-zero.
    """
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ " + shlex.join(argv) + "\n")
        handle.flush()
        code = subprocess.run(list(argv), stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise ConfigError(f"{what} failed (exit {code}); see {log}")


def read_step_output(path: str | Path) -> dict[str, Any]:
    """The JSON file a step of an experiment script wrote (a training's summary.json, an
    evaluation's results.json); ConfigError naming it when it is not there yet."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run the commands first (or without --table-only)")
    return json.loads(path.read_text(encoding="utf-8"))
