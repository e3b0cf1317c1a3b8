"""evaluate-compare and evaluate-repredict on tiny synthetic evaluations (seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from eval_helpers import mlp as _mlp  # type: ignore[import-not-found]

from scfront.cli import main
from scfront.errors import ConfigError, InputError
from scfront.evaluation.compare import (compare_evaluations, format_comparison, read_results, repredict,
                                        robust_flags)
from scfront.evaluation import EvalData, build_suite, evaluate

SUITE = ["fgsm:eps=0.05", "pgd-linf:eps=0.05:steps=3:step_size=0.02"]


def _images(n: int = 40, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 8, 8, generator=gen) * 255).round().to(torch.uint8)


def _evaluate(out: Path, model: nn.Module, labels: torch.Tensor, indices: torch.Tensor,
              items: list[str] = SUITE) -> dict:
    pool = _images()
    data = EvalData(indices, pool[indices].clone(), labels[indices].clone())
    return evaluate(model, data, build_suite(items), out, batch_size=8, checks=False, progress=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same 16 images and labels, attacked on two different models."""
    root = tmp_path_factory.mktemp("compare")
    with torch.no_grad():
        labels = _mlp(0)(_images().float() / 255).argmax(1)
    labels[:3] = (labels[:3] + 1) % 10  # misclassified by model 0 from the start
    indices = torch.arange(16)
    a = _evaluate(root / "a", _mlp(0), labels, indices)
    b = _evaluate(root / "b", _mlp(1), labels, indices)
    return root, labels, a, b


def test_sets_follow_broken_by(two_runs):
    root, _, a, b = two_runs
    comparison = compare_evaluations([root / "a", root / "b"])
    robust_a = [i for i, x in zip(a["indices"], a["broken_by"]) if x == -1]
    robust_b = [i for i, x in zip(b["indices"], b["broken_by"]) if x == -1]
    assert comparison.robust_in_all() == [i for i in robust_a if i in robust_b]
    assert comparison.robust_only_in(0) == [i for i in robust_a if i not in robust_b]
    assert comparison.robust_only_in(1) == [i for i in robust_b if i not in robust_a]
    first, second = comparison.evaluations
    assert (first.label, second.label) == ("A", "B")
    assert sum(first.robust) == round(a["worst_case_accuracy"] * 16)
    assert first.clean_correct == round(a["clean_accuracy"] * 16) == 13
    assert first.queries == sum(x["queries"] for x in a["attacks"]) > 0
    assert first.attacks == ("fgsm", "pgd-linf")
    # the two models leave different images robust: the comparison has something to show
    assert robust_a != robust_b


def test_after_counts_only_the_attacks_up_to_it(two_runs):
    root, _, a, _ = two_runs
    after_fgsm = robust_flags(a, "fgsm")
    assert after_fgsm == [x == -1 or x == 1 for x in a["broken_by"]]
    assert sum(after_fgsm) == round(a["attacks"][0]["robust_accuracy"] * 16)
    assert robust_flags(a, "pgd-linf") == robust_flags(a)
    comparison = compare_evaluations([root / "a", root / "a" / "results.json"], ["folder", "file"])
    assert comparison.evaluations[0].robust == comparison.evaluations[1].robust
    staged = compare_evaluations([root / "a", root / "b"], after="fgsm")
    assert staged.evaluations[0].robust == tuple(after_fgsm)
    assert staged.evaluations[0].attacks == ("fgsm",)
    assert staged.evaluations[0].queries == a["attacks"][0]["queries"]
    with pytest.raises(ConfigError, match="no attack 'square' in"):
        compare_evaluations([root / "a", root / "b"], after="square")


def test_three_way_sets_partition_the_images(two_runs):
    root, *_ = two_runs
    comparison = compare_evaluations([root / "a", root / "b", root / "a"], ["x", "y", "z"])
    robust = [e.robust for e in comparison.evaluations]
    in_any = [i for k, i in enumerate(comparison.indices) if any(r[k] for r in robust)]
    assert sorted(comparison.robust_in_all() + comparison.robust_in_some()) == sorted(in_any)
    assert comparison.robust_only_in(0) == comparison.robust_only_in(2) == []  # x and z are one evaluation
    text = format_comparison(comparison)
    assert "robust in some but not all" in text and text.count("\nrobust only in ") == 3


def test_command_prints_counts_and_indices(two_runs, capsys):
    root, *_ = two_runs
    assert main(["evaluate-compare", str(root / "a"), str(root / "b"), "--names", "cpu,gpu", "--indices"]) == 0
    out = capsys.readouterr().out.splitlines()
    comparison = compare_evaluations([root / "a", root / "b"], ["cpu", "gpu"])
    assert out[0] == ("2 evaluations of the same 16 cifar10 images; "
                      "robust = classified correctly and not broken by any attack")
    assert out[1].startswith(f"cpu: {root / 'a'} (model model; fgsm → pgd-linf): clean 13 (81.2 %), robust ")
    sets = {"robust in all": comparison.robust_in_all(), "robust only in cpu": comparison.robust_only_in(0),
            "robust only in gpu": comparison.robust_only_in(1)}
    assert any(sets.values())
    for title, indices in sets.items():
        line = out.index(f"{title}: {len(indices)} ({100 * len(indices) / 16:.1f} %)")
        if indices:
            assert out[line + 1] == "  indices: " + " ".join(map(str, indices))
        else:
            assert line + 1 == len(out) or not out[line + 1].startswith("  indices")


def test_mismatched_or_missing_evaluations_are_one_line_errors(two_runs, tmp_path, capsys):
    root, labels, *_ = two_runs
    other = tmp_path / "other"
    _evaluate(other, _mlp(0), labels, torch.arange(8, 24), items=["fgsm:eps=0.05"])
    cases = [
        ([str(root / "a"), str(other)], "evaluated different images (16 vs 16 images"),
        ([str(root / "a"), str(tmp_path / "nope")], "nope does not exist"),
        ([str(root / "a")], "needs at least two evaluations"),
        ([str(root / "a"), str(root / "b"), "--names", "x"], "1 names for 2 evaluations"),
        ([str(root / "a"), str(root / "b"), "--names", "x,x"], "must be distinct"),
        ([str(root / "a"), str(root / "b"), "--after", "square"], "no attack 'square' in"),
    ]
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    other_dataset = tmp_path / "imagenette"
    other_dataset.mkdir()
    results = json.loads((root / "a" / "results.json").read_text())
    (other_dataset / "results.json").write_text(json.dumps({**results, "dataset": "imagenette"}))
    cases.append(([str(root / "a"), str(other_dataset)], "evaluated imagenette but"))
    cases.append(([str(root / "a"), str(unfinished)], "holds no results.json: not a finished evaluation"))
    for argv, message in cases:
        assert main(["evaluate-compare", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)


def test_files_that_are_not_results_are_refused(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_results(tmp_path)
    bad.write_text(json.dumps({"model": "m", "dataset": "cifar10"}))
    with pytest.raises(InputError, match="no n_images, clean_accuracy, attacks, indices, broken_by"):
        read_results(bad)


# --------------------------------------------------------------------------- re-predicting
def test_repredict_agrees_with_the_evaluated_model_and_not_with_another(two_runs):
    root, labels, a, _ = two_runs
    for batch_size in (1, 5, 250):
        same = repredict(root / "a", _mlp(0), batch_size=batch_size)
        assert [r.attack for r in same] == ["fgsm", "pgd-linf"]
        for r, entry in zip(same, a["attacks"]):
            assert r.differ == ()
            assert r.attacked == entry["n_run"] and r.stored_broken == r.misclassified == entry["n_broken"]
    other = repredict(root / "a", _mlp(1))
    # model 1 misclassifies many of the images model 0 got right: its verdicts differ
    assert sum(len(r.differ) for r in other) > 0
    for r in other:
        assert set(r.differ) <= set(a["indices"])
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        repredict(root / "a", _mlp(0), batch_size=0)


def test_repredict_runs_in_eval_mode_and_restores_the_mode(two_runs):
    root, *_ = two_runs

    class Noisy(nn.Module):
        """Model 0 with dropout after its input: random in training mode, model 0 in eval mode."""

        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.9)
            self.net = _mlp(0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(self.drop(x))

    model = Noisy().train()
    model.net.eval()  # mixed modes: each must come back as it was
    assert all(r.differ == () for r in repredict(root / "a", model))
    assert model.training and model.drop.training and not model.net.training


def _tiny_saved_model(run_dir: Path, seed: int) -> nn.Module:
    from scfront.config import load_preset
    from scfront.models import build_model, save_model

    config = load_preset("smoke", "cifar10", recipe="natural")
    model = build_model(config, generator=torch.Generator().manual_seed(seed)).eval()
    save_model(model, run_dir, config)
    return model


def test_repredict_command_loads_the_model_and_sets_the_exit_status(tmp_path, capsys):
    model = _tiny_saved_model(tmp_path / "m0", 0)
    _tiny_saved_model(tmp_path / "m1", 1)
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(12, 3, 32, 32, generator=gen) * 255).round().to(torch.uint8)
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)
    data = EvalData(torch.arange(12), images, labels)  # every image correct for model 0
    evaluate(model, data, build_suite(["fgsm:eps=0.01"]), tmp_path / "eval", batch_size=6, checks=False,
             progress=False)
    assert main(["evaluate-repredict", str(tmp_path / "eval"), str(tmp_path / "m0")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fgsm (Linf ≤ 0.01): 12 images attacked; broken according to the evaluation: ")
    assert out.rstrip().endswith("images where the two differ: 0") and "note:" not in out
    code = main(["evaluate-repredict", str(tmp_path / "eval"), str(tmp_path / "m1"), "--indices"])
    out = capsys.readouterr().out
    # model 1 (untrained, another seed) misclassifies all 12: 10 verdicts differ
    assert code == 1
    assert "note: " in out and "is not the evaluated model ('model')" in out
    assert out.rstrip().endswith("images where the two differ: 10\n  indices: 1 2 3 4 5 6 7 8 9 10")
    shutil.rmtree(tmp_path / "eval" / "state")  # the public files are enough
    (tmp_path / "eval" / "adversarials.safetensors").unlink()
    assert main(["evaluate-repredict", str(tmp_path / "eval"), str(tmp_path / "m0")]) == 2
    assert "holds no adversarials.safetensors" in capsys.readouterr().err
