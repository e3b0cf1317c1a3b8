"""Import the ResNet-32 checkpoints of the original implementation (reference/README.md).

The files are PyTorch state_dicts in the legacy serialization. They are read with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects, so an untrusted file
cannot run code; every key and shape must then match :func:`~scfront.models.create_model`'s
"resnet32" exactly.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from scfront.errors import CheckpointError, one_line
from scfront.models.registry import create_model

_SHOWN = 5  # how many offending keys an error message lists
# torch.load(weights_only=True) names the first object it refuses to unpickle like this.
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error: (.*?)(?: Check the documentation of torch\.load.*)?$")
SAVE_HINT = ("save the weights alone with torch.save(model.state_dict(), PATH) and load them as "
             "package.module:factory --weights PATH")


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    """The error for a file ``torch.load(weights_only=True)`` refused with ``exc``."""
    unsafe = _UNSAFE_GLOBAL.search(str(exc))
    if unsafe is not None:
        return CheckpointError(
            f"{path} is not a readable PyTorch state_dict: it holds a pickled Python object "
            f"({unsafe.group(1)}, e.g. a whole nn.Module); scfront reads only state_dicts of tensors, "
            f"with torch.load(weights_only=True), so that a file cannot run code; {SAVE_HINT}")
    detail = one_line(exc) or type(exc).__name__
    unpickler = _UNPICKLER_ERROR.search(detail)
    if unpickler is not None:  # the rest of torch's text advises weights_only=False: not here
        detail = unpickler.group(1).strip()
    return CheckpointError(f"{path} is not a readable PyTorch state_dict (corrupt, truncated or another "
                           f"format: {detail}); {SAVE_HINT}")


def _few(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch checkpoint file, read without unpickling arbitrary objects.

    Raises:
        CheckpointError: the file is missing, unreadable, or does not hold a flat mapping of
            names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it all
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError,
            zipfile.BadZipFile, AttributeError, KeyError, IndexError, TypeError) as exc:
        # torch raises a variety of types for truncated, foreign or unsafe files.
        raise _unreadable(path, exc) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a state_dict (a mapping of "
                              f"names to tensors); {SAVE_HINT}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path} is not a state_dict of tensors (entries {_few(bad)})")
    return dict(obj)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with one clear error naming the mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_few(shapes)}")
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def import_original_resnet32(path: str | Path) -> nn.Module:
    """The original implementation's ResNet-32 with the weights of checkpoint ``path``.

    Returns:
        "resnet32" from the registry in eval mode; input (N, 3, 32, 32) float in [0, 1]
        (normalised inside with the CIFAR-10 statistics), output (N, 10) logits. It has the
        feature hook of :mod:`scfront.models.features`: ``features(x)`` (N, 64), ``readout``
        the checkpoint's ``linear`` layer.

    Raises:
        CheckpointError: missing or corrupt file, not a state_dict, or keys/shapes that differ
            from the architecture (the first few are listed).
    """
    state = read_state_dict(path)
    linear = state.get("linear.weight")
    num_classes = int(linear.shape[0]) if linear is not None and linear.ndim == 2 else 10
    model = create_model("resnet32", num_classes=num_classes)
    load_state_dict_strict(model, state, str(path))
    return model.eval()
