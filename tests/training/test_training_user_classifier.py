"""``scfront train --classifier package.module:factory``: a user's classifier behind the frontend,
trained at smoke scale on real CIFAR-10, reloaded without registering anything, and evaluated by
``scfront evaluate`` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import scfront
from scfront.cli import main
from scfront.models.registration import REGISTRY

MODULE = "scfront_test_train_user_net"
SOURCE = textwrap.dedent('''
    from torch import nn


    class SmallNet(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten())
            self.head = nn.Linear(8 * 16, num_classes)

        def forward(self, x):
            return self.head(self.body(x))


    def make(num_classes=10):
        return SmallNet(num_classes)
''')
# A few batches of real images, one epoch: the run takes seconds.
SMALL = ["--set", "data.train_limit=128", "--set", "data.monitor_images=16", "--set", "train.batch_size=32"]


def test_train_save_reload_and_evaluate_a_user_classifier(tmp_path: Path, data_root: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from scfront.config import DataConfig
    from scfront.data import eval_subset_indices, load_dataset
    from scfront.training.metrics import count_correct

    site = tmp_path / "site"
    site.mkdir()
    (site / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    run = tmp_path / "run"
    code = main(["train", "--preset", "smoke", "--classifier", f"{MODULE}:make", "--data-root", str(data_root),
                 "--out", str(run), "--no-progress", *SMALL])
    assert code == 0, capsys.readouterr().err
    card = json.loads((run / "model_card.json").read_text())
    assert card["architecture"]["classifier"] == f"{MODULE}:make" and card["architecture"]["classifier_factory"]
    assert card["architecture"]["defended"] and card["architecture"]["decoder"] == "small"

    # A fresh state: the module not imported, no registry entry; loading imports it by itself.
    monkeypatch.delitem(sys.modules, MODULE)
    assert not any(MODULE in name for name in REGISTRY)
    reloaded = scfront.load(str(run))
    assert type(reloaded.classifier).__name__ == "SmallNet" and not reloaded.training

    # The same network through scfront.defend with the saved weights: the same keys, the same logits.
    import importlib

    rebuilt = scfront.defend(importlib.import_module(MODULE).make(10), dictionary="cifar10", decoder="small",
                             top_t=15)
    rebuilt.load_state_dict(load_file(str(run / "model.safetensors")), strict=True)
    rebuilt.eval()
    test = load_dataset(DataConfig(), data_root, "test")
    index = eval_subset_indices(len(test), 16, 0)
    x = test.images[index].float() / 255
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), rebuilt(x), rtol=0, atol=0)
    # the accuracy the trainer measured on its monitor images, with the model it had in memory
    assert count_correct(reloaded, test.images[index], test.labels[index]) / 16 == card["metrics"]["monitor_accuracy"]

    # scfront evaluate in a new interpreter: only the module's folder on PYTHONPATH
    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "scfront.cli", "--threads", "1", "evaluate", str(run),
                           "--attacks", "pgd-linf", "--steps", "5", "--n-images", "8", "--no-checks",
                           "--no-progress", "--data-root", str(data_root), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    first = eval_subset_indices(len(test), 8, 0)
    clean = count_correct(reloaded, test.images[first], test.labels[first]) / 8
    assert results["clean_accuracy"] == pytest.approx(clean)
    (attack,) = results["attacks"]
    assert attack["name"] == "pgd-linf" and attack["params"]["steps"] == 5
    assert 0.0 <= attack["robust_accuracy"] <= clean and results["indices"] == first.tolist()
