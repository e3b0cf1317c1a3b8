"""The tools under scripts/: they reproduce the committed tables of results/ and fail in one line."""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path

import pytest
import torch

from scfront.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
RESULTS = REPO / "results"


def _script(name: str) -> dict:
    """The script's module namespace (its ``main`` is not run)."""
    return runpy.run_path(str(SCRIPTS / name))


def _readme_table(readme: Path) -> list[str]:
    return [line for line in readme.read_text(encoding="utf-8").splitlines() if line.startswith("|")]


def test_evaluation_table_reproduces_the_convergence_table(capsys, monkeypatch):
    folder = RESULTS / "defense_attack_convergence"
    order = ["pgdat_40", "pgdat_100", "pgdat_200", "defense_40", "defense_100", "defense_200", "p400",
             "p1000", "p3000", "p200r5", "p200id", "a500", "cascade"]
    monkeypatch.chdir(folder)
    code = _script("evaluation_table.py")["main"](
        [f"eval/{name}" for name in order] + ["--model-label", "resnet32_pgd_at.pt=original PGD-AT ResNet-32"])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == _readme_table(folder / "README.md")


def test_training_table_reproduces_the_recipe_search_table(capsys):
    folder = RESULTS / "recipe_search"
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    assert _script("training_table.py")["main"]([str(p) for p in runs]) == 0
    assert capsys.readouterr().out.splitlines() == _readme_table(folder / "README.md")


def test_table_scripts_refuse_other_folders_in_one_line(tmp_path, capsys):
    assert _script("training_table.py")["main"]([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"training_table: error: {tmp_path} holds no summary.json: not a finished `scfront train` run\n"
    assert _script("evaluation_table.py")["main"]([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evaluation_table: error: {tmp_path} holds no results.json") and err.count("\n") == 1


def test_recipe_search_checks_its_arguments(tmp_path):
    script = SCRIPTS / "recipe_search.sh"
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: scripts/recipe_search.sh DATA_ROOT OUT")
    missing = subprocess.run(["bash", str(script), str(tmp_path / "none"), str(tmp_path / "out")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    stray = subprocess.run(["bash", str(script), str(tmp_path), str(tmp_path / "out"), "cpu", "x"],
                           capture_output=True, text=True)
    assert stray.returncode == 2 and "unexpected argument 'x'" in stray.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- reattack.py
_RESULTS = {"indices": [7, 3, 9, 1, 5], "broken_by": [-1, 0, -2, 1, 0],
            "attacks": [{"name": "fgsm"}, {"name": "square"}]}


def test_reattack_selects_images_by_what_happened_to_them():
    select = _script("reattack.py")["select_indices"]
    assert select(_RESULTS, broken_by="fgsm") == [3, 5]
    assert select(_RESULTS, broken_by="fgsm", first=1) == [3]
    assert select(_RESULTS, broken_by="square") == [1]
    assert select(_RESULTS, robust=True) == [7]
    assert select(_RESULTS, indices=[9, 7]) == [9, 7]
    for kwargs, message in [({}, "choose the images one way"),
                            ({"robust": True, "broken_by": "fgsm"}, "choose the images one way"),
                            ({"broken_by": "pgd"}, "no attack 'pgd'"),
                            ({"indices": [2]}, "indices not in the evaluation's subset: 2"),
                            ({"robust": True, "first": 0}, "--first must be >= 1")]:
        with pytest.raises(ConfigError, match=message):
            select(_RESULTS, **kwargs)
    with pytest.raises(ConfigError, match="no image of the evaluation matches"):
        select({**_RESULTS, "broken_by": [-2] * 5}, robust=True)


def test_reattack_attacks_the_chosen_images_again(tmp_path, capsys):
    from scfront.config import DataConfig, load_preset
    from scfront.data import load_dataset
    from scfront.evaluation import EvalData, build_suite, evaluate
    from scfront.models import build_model, save_model

    config = load_preset("smoke", "cifar10", recipe="natural")
    model = build_model(config, generator=torch.Generator().manual_seed(0)).eval()
    save_model(model, tmp_path / "model", config)
    test = load_dataset(DataConfig(dataset="synthetic", image_size=32), None, "test")
    with torch.no_grad():
        right = (model(test.images[:200].float() / 255).argmax(1) == test.labels[:200]).nonzero().squeeze(1)
    index = torch.cat([right[:10], torch.tensor([i for i in range(20) if i not in right.tolist()][:4])])
    data = EvalData(index, test.images[index], test.labels[index])
    results = evaluate(model, data, build_suite(["fgsm:eps=0.02"]), tmp_path / "eval", dataset="synthetic",
                       batch_size=7, checks=False, progress=False)
    broken = [i for i, b in zip(results["indices"], results["broken_by"]) if b == 0]
    assert broken  # the untrained model has images that FGSM at 0.02 breaks
    code = _script("reattack.py")["main"]([
        str(tmp_path / "eval"), str(tmp_path / "model"), "--image-size", "32", "--broken-by", "fgsm",
        "--first", "3", "--attacks", "fgsm", "--eps", "0.02"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    n = min(3, len(broken))
    assert lines[0] == f"test indices {broken[:3]}"
    assert lines[1] == f"clean correct {[True] * n}"
    assert lines[2].startswith(f"fgsm: broken {[True] * n} (")
    assert lines[3].startswith("fgsm Linf x 255: [") and lines[3].count("5.1") == n  # 0.02 x 255
    assert lines[4] == f"fgsm adversarials re-predicted one by one, wrong: {[True] * n}"
    code = _script("reattack.py")["main"]([str(tmp_path / "eval"), str(tmp_path / "model"), "--broken-by",
                                           "fgsm", "--attacks", "fgsm", "--eps", "big"])
    assert code == 2 and "--eps must be a number" in capsys.readouterr().err


def test_reattack_checks_its_arguments_before_loading_anything(capsys):
    main = _script("reattack.py")["main"]
    cascade = RESULTS / "defense_attack_convergence" / "eval" / "cascade"
    for argv, message in [(["--robust", "--attacks", "nope"], "unknown attack 'nope'"),
                          (["--indices", "1,x", "--attacks", "fgsm"], "--indices must be comma-separated integers"),
                          (["--robust", "--attacks", "fgsm", "--threads", "0"], "--threads must be >= 1")]:
        assert main([str(cascade), "not-a-model", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reattack: error: ") and message in err and err.count("\n") == 1, err
