"""`torchrun ... scfront evaluate`: two ranks (gloo) give the results of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scfront.cli import main
from scfront.errors import ConfigError
from scfront.evaluation.ranks import _safe_relative

# Each rank writes into its own folder, so rank 0 must receive rank 1's units over gloo
# (two machines without a shared disk); the real command line (one shared --out) runs below.
WORKER = '''
import os, sys
from scfront.cli import main
base, *args = sys.argv[1:]
sys.exit(main(["evaluate", *args, "--out", os.path.join(base, "rank" + os.environ["RANK"])]))
'''


def _comparable(results: dict) -> dict:
    """results.json without the wall times, which differ from run to run."""
    results = dict(results)
    for key in ("clean_seconds", "attack_seconds", "check_seconds", "seconds"):
        results.pop(key, None)
    results["attacks"] = [{k: v for k, v in a.items() if k != "seconds"} for a in results["attacks"]]
    return results


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)


@pytest.mark.slow
def test_two_ranks_match_one_process(tmp_path: Path, data_root: Path, reference_dir: Path) -> None:
    ckpt = reference_dir / "checkpoints" / "resnet32_natural.pt"
    common = [str(ckpt), "--data-root", str(data_root), "--attacks", "fgsm,pgd-linf:steps=2",
              "--n-images", "6", "--batch-size", "2", "--no-checks", "--no-progress"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "one")]) == 0
    one = _comparable(json.loads((tmp_path / "one" / "results.json").read_text()))

    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    done = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 str(worker), str(tmp_path / "sep"), *common])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1: shard 1/2 done; rank 0 writes the results" in done.stdout
    assert not (tmp_path / "sep" / "rank1" / "results.json").exists()  # only rank 0 writes results
    two = json.loads((tmp_path / "sep" / "rank0" / "results.json").read_text())
    assert _comparable(two) == one

    torchrun = Path(sys.executable).with_name("torchrun")
    scfront = Path(sys.executable).with_name("scfront")
    if torchrun.is_file() and scfront.is_file():  # the documented command, one shared folder
        done = _run([str(torchrun), "--standalone", "--nproc_per_node=2", "--no-python", str(scfront),
                     "evaluate", *common, "--out", str(tmp_path / "shared")])
        assert done.returncode == 0, done.stderr[-2000:]
        shared = json.loads((tmp_path / "shared" / "results.json").read_text())
        assert _comparable(shared) == one


def test_torchrun_rejects_an_explicit_shard(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["evaluate", str(tmp_path / "m.pt"), "--attacks", "fgsm", "--shard", "1/2",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "under torchrun the ranks are the shards" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../b", ""])
def test_received_unit_paths_stay_inside_the_state_folder(path: str) -> None:
    with pytest.raises(ConfigError, match="not inside the state folder"):
        _safe_relative(path)
    assert str(_safe_relative("a01-fgsm/b00001.safetensors")) == "a01-fgsm/b00001.safetensors"
