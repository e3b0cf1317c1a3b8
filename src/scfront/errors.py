"""Exceptions raised for bad input. The CLI prints their message as one line and exits 2.

A message names the problem and, where there is one, the fix (``"... is not a state_dict ...;
save one with torch.save(model.state_dict(), PATH)"``); :func:`one_line` is how any text
(including a third-party library's message) becomes such a line.
"""

import re

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "InputError", "ScfrontError",
           "TrainingError", "one_line"]

# ANSI/VT100 escape sequences (colours, bold: "\x1b[1m"), as torch puts in some messages.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


class ScfrontError(Exception):
    """Base class: a user-facing problem with input, files or settings (not a bug)."""


class ConfigError(ScfrontError, ValueError):
    """A configuration file, preset or override is invalid."""


class DatasetError(ScfrontError, ValueError):
    """A dataset folder or file is missing, malformed or does not match its checksum."""


class InputError(ScfrontError, ValueError):
    """A tensor given to a model, encoder or attack has the wrong shape, range or values."""


class CheckpointError(ScfrontError, ValueError):
    """A checkpoint, dictionary or model card is missing, corrupt or mismatched."""


class TrainingError(ScfrontError, FloatingPointError):
    """Training cannot go on with these settings (the loss diverged to NaN or infinity)."""


def one_line(text: object) -> str:
    """``text`` as one clean line: terminal escape sequences removed, every run of whitespace
    (newlines and tabs included) made one space, nothing cut off."""
    return " ".join(_ESCAPES.sub("", str(text)).split())
