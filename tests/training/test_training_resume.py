"""Kill-and-resume: SIGKILL after the first checkpoint, rerun, same weights as without a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from scfront.config import load_preset
from scfront.training.loop import train

from tiny_run import TINY  # type: ignore[import-not-found]

# Every source of randomness is exercised: data order and augmentation, PGD random starts, and a
# classifier with always-on dropout (the model's own generator).
# 8x8 images keep the three runs short; the kill lands during the second of two epochs.
SETTINGS = [*TINY, "data.image_size=8", "train.attack_steps=1",
            'model.classifier="resnet32_dropout"']


def _command(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "scfront.cli", "-q", "train", "--preset", "smoke",
           "--recipe", "pgd_at", "--out", str(out), "--no-progress"]
    for item in SETTINGS:
        cmd += ["--set", item]
    return cmd


def _epoch_of_checkpoint(run: Path) -> int:
    try:
        return json.loads((run / "checkpoint.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config = load_preset("smoke", "cifar10", SETTINGS, recipe="pgd_at")
    straight = tmp_path / "straight"
    train(config, straight, progress=False)  # in-process: same code, one thread, no kill

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(killed), env=env)
    deadline = time.monotonic() + 300
    while _epoch_of_checkpoint(killed) < 1:
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert _epoch_of_checkpoint(killed) == 1 and not (killed / "summary.json").exists()

    train(config, killed, progress=False)  # "the same command again"
    log = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert different == []
    # Only the latest checkpoint file is kept.
    assert [p.name for p in (killed / "checkpoints").iterdir()] == ["epoch_0002.safetensors"]
