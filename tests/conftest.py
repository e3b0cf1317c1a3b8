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
def _one_thread():
    # The suite runs on 2-core machines, often beside other jobs; the tests' tensors are small and
    # a second intra-op thread made them up to 30x slower under load, never faster.
    from threadpoolctl import threadpool_limits  # BLAS/OpenMP pools of numpy and scikit-learn

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


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
