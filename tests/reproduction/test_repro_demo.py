"""`scfront demo` on a tiny saved model, and its error when no model is available."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repro_helpers import save_tiny_model  # type: ignore[import-not-found]

from scfront.cli import main
from scfront.models import list_pretrained
from scfront.reproduction.demo import DEMO_ATTACKS, DemoSettings, run_demo
from scfront.reproduction.sample import load_sample


def test_demo_with_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model_dir), "--out", str(out), "--n-images", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "tiny" and results["n_images"] == 4
    assert [a["name"] for a in results["attacks"]] == ["pgd-linf", "apgd-ce"]
    assert results["attacks"][0]["params"]["steps"] == 40
    # the cascade: accuracy never rises along the attacks, and the worst case is the last one
    accs = [results["clean_accuracy"]] + [a["robust_accuracy"] for a in results["attacks"]]
    assert all(b <= a for a, b in zip(accs, accs[1:]))
    assert results["worst_case_accuracy"] == accs[-1]
    sample = load_sample()
    assert results["indices"] == sample.indices[:4].tolist()
    assert "clean" in printed and "apgd-ce" in printed and str(out / "report.md") in printed
    assert "upper bound on robust accuracy" in printed
    assert (out / "report.md").is_file()
    assert len(DEMO_ATTACKS) == 2


def test_demo_without_shipped_model_says_how_to_pass_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import scfront.models

    assert "cifar10_cpu" in list_pretrained()  # shipped; pretend an installation without it
    monkeypatch.setattr(scfront.models, "list_pretrained", lambda: [])
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0]


def test_demo_rejects_bad_input(tmp_path: Path) -> None:
    from scfront.errors import ScfrontError

    with pytest.raises(ScfrontError, match="neither a saved model"):
        run_demo(DemoSettings(model=str(tmp_path / "absent"), out_dir=tmp_path / "o"))
    model_dir = save_tiny_model(tmp_path / "tiny")
    with pytest.raises(ScfrontError, match=r"n-images must be in \[1, 200\] \(the shipped cifar10 sample"):
        run_demo(DemoSettings(model=str(model_dir), out_dir=tmp_path / "o", n_images=1000))
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_demo_folders_are_per_model_under_the_cache(tmp_path, monkeypatch) -> None:
    """Without --out the demo never writes to the current directory, and two models (or two
    sample sizes) get two folders, so any two demo commands can run one after the other."""
    from scfront.reproduction.demo import default_demo_dir

    monkeypatch.setenv("SCFRONT_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "runs" / "natural"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"")
    shipped = default_demo_dir(None, 100)
    assert shipped.parent == tmp_path / "cache" / "demo"
    assert default_demo_dir("cifar10_cpu", 100) == shipped
    other = {default_demo_dir(str(run), 100), default_demo_dir(None, 50), default_demo_dir(str(run / "model.safetensors"), 100)}
    assert shipped not in other and len(other) == 2  # a folder and its model file: one model
    twin = tmp_path / "elsewhere" / "natural"
    twin.mkdir(parents=True)
    assert default_demo_dir(str(twin), 100) != default_demo_dir(str(run), 100)
