"""Checkpoint files: exact round trip of model, optimizer and generators; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from scfront.errors import CheckpointError
from scfront.training.checkpoint import (RECORD_FILE, TrainingState, load_checkpoint,
                                         restore_generators, save_checkpoint)


def _setup(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)  # test-only
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def _step(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> None:
    x = torch.rand(8, 3, 4, 4, generator=gen)
    loss = model(x).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_round_trip_continues_identically(tmp_path: Path) -> None:
    model, opt = _setup(0)
    gen = torch.Generator().manual_seed(1)
    _step(model, opt, gen)
    save_checkpoint(tmp_path, model, opt, TrainingState(1, {"data": gen.get_state()},
                                                        [{"epoch": 1, "loss": 0.5}]))
    _step(model, opt, gen)  # the uninterrupted continuation
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    fresh, fresh_opt = _setup(99)
    fresh_gen = torch.Generator()
    state = load_checkpoint(tmp_path, fresh, fresh_opt)
    assert state is not None and state.epoch == 1 and state.history == [{"epoch": 1, "loss": 0.5}]
    restore_generators({"data": fresh_gen}, state.generators)
    _step(fresh, fresh_opt, fresh_gen)
    for key, value in expected.items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_no_checkpoint_yet(tmp_path: Path) -> None:
    model, opt = _setup(0)
    assert load_checkpoint(tmp_path, model, opt) is None


def test_broken_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    model, opt = _setup(0)
    save_checkpoint(tmp_path, model, opt, TrainingState(1, {}))
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    tensors = tmp_path / record["tensors"]
    tensors.write_bytes(tensors.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(tmp_path, model, opt)
    tensors.unlink()
    with pytest.raises(CheckpointError, match="which does not exist"):
        load_checkpoint(tmp_path, model, opt)
    (tmp_path / RECORD_FILE).write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path, model, opt)
    with pytest.raises(CheckpointError, match="lacks generator state"):
        restore_generators({"attack": torch.Generator()}, {})


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    model, opt = _setup(0)
    save_checkpoint(tmp_path, model, opt, TrainingState(1, {}))
    other = nn.Sequential(nn.Conv2d(3, 5, 3))
    with pytest.raises(CheckpointError, match="missing keys|unexpected keys|shape"):
        load_checkpoint(tmp_path, other, torch.optim.SGD(other.parameters(), lr=0.1))
