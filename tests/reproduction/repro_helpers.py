"""Tiny saved models for the reproduction tests (untrained, seeded: the commands' plumbing is
what is tested, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scfront.config import load_preset
from scfront.models import build_model, save_model


def save_tiny_model(run_dir: Path, recipe: str = "natural", dataset: str = "cifar10") -> Path:
    """A smoke-preset model of ``recipe`` on ``dataset`` with seeded initial weights, saved into ``run_dir``."""
    config = load_preset("smoke", dataset, recipe=recipe)
    model = build_model(config, generator=torch.Generator().manual_seed(0))
    save_model(model.eval(), run_dir, config)
    return run_dir


