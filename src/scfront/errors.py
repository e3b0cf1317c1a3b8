"""Exceptions raised for bad input. The CLI prints their message as one line and exits 2."""


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
