"""Shared fixtures: where the real shared data live, and small deterministic helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    env = os.environ.get("SCFRONT_SHARED")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared_root()
DATA_ROOT = SHARED / "datasets"
REFERENCE = SHARED / "reference"


@pytest.fixture(autouse=True)
def _few_threads():
    # The suite runs on 2-core machines; oversubscription makes it slower, not faster.
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "cifar10").is_dir():
        pytest.skip(f"real datasets not found at {DATA_ROOT}")
    return DATA_ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference artifacts not found at {REFERENCE}")
    return REFERENCE
