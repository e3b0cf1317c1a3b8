"""torchrun with two CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scfront.config import load_preset
from scfront.models.registration import REGISTRY
from scfront.distributed import DistContext, shard
from scfront.training.loop import train

from tiny_run import TINY  # type: ignore[import-not-found]

# A network without BatchNorm: each example's loss and attack are then independent of how the
# batch is split, so two processes must reproduce one process up to float summation order.
MLP = '''
from torch import nn
from scfront.models.registration import register_model

@register_model("test_mlp", input_size=(3, 8, 8), num_params=6506, description="test only")
def test_mlp(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, num_classes))
'''
WORKER = MLP + '''
import sys
from scfront.config import load_preset
from scfront.training.loop import train

train(load_preset("smoke", "cifar10", sys.argv[2:], recipe="pgd_at"), sys.argv[1], progress=False)
'''
# 31 images per batch: shards of 16 and 15, so the per-shard loss weighting is exercised.
SETTINGS = [*TINY, "data.image_size=8", "data.train_limit=124", "train.batch_size=31",
            "train.attack_steps=2", 'model.classifier="test_mlp"']


def test_shards_cover_the_batch() -> None:
    for n, world in [(31, 2), (64, 3), (5, 4)]:
        parts = [shard(n, DistContext(rank=r, world_size=world)) for r in range(world)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


@pytest.mark.slow
def test_two_processes_match_one(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:  # the one-process reference runs here, with the test network registered for a while
        exec(MLP, {})
        train(load_preset("smoke", "cifar10", SETTINGS, recipe="pgd_at"), tmp_path / "one",
              progress=False)
    finally:
        REGISTRY.pop("test_mlp", None)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(worker), str(tmp_path / "two"), *SETTINGS],
                   check=True, env=env, timeout=300)
    one = load_file(str(tmp_path / "one" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)
    summary = (tmp_path / "two" / "summary.json").read_text()
    assert '"world_size": 2' in summary
