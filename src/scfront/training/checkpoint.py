"""Training checkpoints: everything a run needs to continue bit-identically after a crash.

Layout inside the run folder::

    checkpoints/epoch_0003.safetensors   model state, optimizer state tensors, generator states
                                         (and, with early stopping, the best epoch's model state)
    checkpoint.json                      the commit record: epoch, the tensors file and its
                                         sha256, optimizer hyper-parameters, per-epoch history

The tensors file is written first, then ``checkpoint.json`` replaces the previous record
atomically, then older tensors files are deleted. A process killed at any moment therefore
leaves a record that points at a complete file of the same epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from scfront.errors import CheckpointError
from scfront.io import atomic_write, atomic_write_json, read_json_record, sha256_file
from scfront.models.original import load_state_dict_strict

RECORD_FILE = "checkpoint.json"
TENSOR_DIR = "checkpoints"
FORMAT = 1
_MODEL, _OPTIM, _RNG, _BEST = "model/", "optim/", "rng/", "best/"


@dataclass
class TrainingState:
    """What a checkpoint restores besides the weights and the optimizer.

    Attributes:
        epoch: number of completed epochs.
        generators: name → ``torch.Generator.get_state()`` (uint8 CPU tensor).
        history: one JSON-compatible record per completed epoch.
        world_size: processes of the run that wrote it (a resume must use as many).
        best_model: the model state of the best epoch of the early-stopping check
            (:mod:`scfront.training.early_stop`; CPU tensors), or None without that check.
    """

    epoch: int
    generators: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    best_model: dict[str, torch.Tensor] | None = None


def save_checkpoint(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: TrainingState) -> Path:
    """Write the checkpoint of ``state.epoch`` completed epochs; returns the record's path."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        tensors[_MODEL + key] = value.detach().cpu().contiguous()
    optim_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in optim_state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    for name, value in state.generators.items():
        tensors[_RNG + name] = value.detach().cpu().contiguous()
    for key, value in (state.best_model or {}).items():
        tensors[_BEST + key] = value.detach().cpu().contiguous()
    relative = f"{TENSOR_DIR}/epoch_{state.epoch:04d}.safetensors"
    path = run_dir / relative
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    record = {
        "format": FORMAT,
        "epoch": state.epoch,
        "world_size": state.world_size,
        "tensors": relative,
        "sha256": sha256_file(path),
        "optimizer": {"param_groups": optim_state["param_groups"], "scalars": scalars},
        "history": state.history,
    }
    record_path = atomic_write_json(run_dir / RECORD_FILE, record)
    for old in (run_dir / TENSOR_DIR).glob("epoch_*.safetensors"):
        if old.name != path.name:
            old.unlink(missing_ok=True)
    return record_path


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RECORD_FILE
    if not path.is_file():
        return None
    return read_json_record(path, FORMAT, "scfront training checkpoint")


def checkpoint_epoch(run_dir: str | Path) -> int | None:
    """Completed epochs recorded by the run's checkpoint, or ``None`` without one (the record
    only is read: the caller can build the optimiser that epoch's state fits before
    :func:`load_checkpoint`)."""
    record = _read_record(Path(run_dir))
    return None if record is None else int(record["epoch"])


def load_checkpoint(run_dir: str | Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> TrainingState | None:
    """Restore ``model`` and ``optimizer`` from the run's last checkpoint, in place.

    Returns the :class:`TrainingState`, or ``None`` when the run has no checkpoint yet.

    Raises:
        CheckpointError: a record pointing at a missing or corrupt file, or state that does not
            fit the model/optimizer.
    """
    run_dir = Path(run_dir)
    record = _read_record(run_dir)
    if record is None:
        return None
    path = run_dir / record["tensors"]
    if not path.is_file():
        raise CheckpointError(f"{run_dir / RECORD_FILE} points at {path}, which does not exist")
    if sha256_file(path) != record["sha256"]:
        raise CheckpointError(f"{path} does not match the sha256 recorded in {RECORD_FILE}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    model_state = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    load_state_dict_strict(model, model_state, str(path))
    optim_entries: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(_OPTIM):
            index, name = key[len(_OPTIM):].split("/", 1)
            optim_entries.setdefault(int(index), {})[name] = value
    for index, entries in record["optimizer"].get("scalars", {}).items():
        optim_entries.setdefault(int(index), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": optim_entries,
                                   "param_groups": record["optimizer"]["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({exc})") from None
    _match_layouts(optimizer)
    generators = {k[len(_RNG):]: v for k, v in tensors.items() if k.startswith(_RNG)}
    best = {k[len(_BEST):]: v for k, v in tensors.items() if k.startswith(_BEST)}
    if best and set(best) != set(model_state):
        raise CheckpointError(f"{path}: the best epoch's model state has other keys than the model's")
    return TrainingState(int(record["epoch"]), generators, list(record.get("history", [])),
                         int(record.get("world_size", 1)), best or None)


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give restored state tensors their parameter's memory layout (e.g. channels_last).

    The values are what matter; matching strides keeps the arithmetic of the continued run the
    same as that of an uninterrupted one.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            entries = optimizer.state.get(param, {})
            for name, value in list(entries.items()):
                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                    entries[name] = torch.empty_like(param).copy_(value)


def restore_generators(generators: Mapping[str, torch.Generator],
                       states: Mapping[str, torch.Tensor]) -> None:
    """``set_state`` every generator of ``generators`` from ``states`` (same names)."""
    missing = sorted(set(generators) - set(states))
    if missing:
        raise CheckpointError(f"checkpoint lacks generator state(s) {', '.join(missing)}")
    for name, generator in generators.items():
        generator.set_state(states[name].to(torch.uint8))
