"""`scfront evaluate` / `evaluate-merge` end to end on the original checkpoint (few images)."""

from __future__ import annotations

import json

import pytest

from scfront.attacks import available_attacks
from scfront.cli import build_parser, main
from scfront.evaluation.results import without_timings


def test_help_documents_every_attack_and_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = capsys.readouterr().out
    for name in available_attacks():
        assert f"  {name} " in text, name
    for option in ("--attacks", "--n-images", "--out", "--subset-seed", "--eps", "--steps", "--restarts",
                   "--top-u", "--steepness", "--batch-size", "--device", "--no-cascade", "--shard",
                   "--checks", "--no-checks", "--check-images"):
        assert option in text, option
    assert "steps=25000" in text  # defaults come from the registry
    assert "@autoattack" in text and "@long" in text


def test_named_suites_expand_in_place_and_build():
    from scfront.evaluation.suite import SUITES, build_suite, expand_suites

    items = expand_suites(["pgd-linf", "@long", "fgsm"])
    assert items == ["pgd-linf", *SUITES["long"][0], "fgsm"]
    attacks = build_suite(expand_suites(["@autoattack"]), {"steps": 7})
    assert [a.name for a in attacks] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert attacks[0].steps == 7  # suite-wide overrides reach the suite's attacks
    long_attacks = build_suite(expand_suites(["@long"]), {"steps": 7})
    assert long_attacks[0].steps == 1000 and long_attacks[2].queries == 5000  # the suite's own values win


def test_bad_input_is_one_line_error(tmp_path, capsys, data_root):
    code = main(["evaluate", str(tmp_path / "missing.pt"), "--data-root", str(data_root),
                 "--attacks", "fgsm", "--n-images", "4", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    code = main(["evaluate", str(tmp_path / "missing.pt"), "--data-root", str(data_root),
                 "--attacks", "fgsm", "--n-images", "4", "--out", str(tmp_path / "o"), "--shard", "3"])
    assert code == 2
    capsys.readouterr()
    code = main(["evaluate", str(tmp_path / "missing.pt"), "--data-root", str(data_root),
                 "--attacks", "fgsm,@nope", "--out", str(tmp_path / "o")])
    assert code == 2
    assert ("unknown attack suite '@nope'; named suites: @autoattack, @autoattack-plus, @autoattack-rand, "
            "@long") in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_shards_and_merge_on_the_original_checkpoint(tmp_path, data_root, reference_dir, monkeypatch):
    from scfront.evaluation import cli

    # Reading the 10,000 test images is the slow part: once for the four commands.
    loaded = {}
    real = cli._load_test_set
    monkeypatch.setattr(cli, "_load_test_set", lambda args: loaded.setdefault("test", real(args)))
    ckpt = reference_dir / "checkpoints" / "resnet32_natural.pt"
    common = [str(ckpt), "--data-root", str(data_root), "--attacks", "fgsm,pgd-linf:steps=2",
              "--n-images", "6", "--batch-size", "3", "--no-checks", "--no-progress"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "whole")]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "a"), "--shard", "0/2"]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "b"), "--shard", "1/2"]) == 0
    assert main(["evaluate-merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert whole["model"] == "resnet32_natural.pt" and whole["n_images"] == 6
    assert without_timings(whole) == without_timings(merged)
    # the subset is the contract's randperm(len(test), seed 0)[:N]
    import torch

    assert whole["indices"] == torch.randperm(10000, generator=torch.Generator().manual_seed(0))[:6].tolist()


def test_bpda_options_build_one_bpda_value_and_eps_scales_the_step():
    from scfront.errors import ConfigError
    from scfront.evaluation.suite import build_suite
    from scfront.frontend.bpda import BPDA

    pgd, square = build_suite(["pgd-linf:top_u=0", "square"], {"steepness": 0.0, "eps": 4 / 255})
    assert pgd.bpda == BPDA(top_u=0, steepness=0.0)  # the item's field and the suite-wide one
    assert build_suite(["pgd-linf"], {"top_u": 60})[0].bpda == BPDA(top_u=60, steepness=4.0)
    assert build_suite(["pgd-linf"])[0].bpda is None  # nothing given: the model's own rules
    assert square.threat.eps == pgd.threat.eps == 4 / 255
    assert pgd.params()["step_size"] == (4 / 255) / 8  # relative to ε: the paper's ε/8
    with pytest.raises(ConfigError, match="no BPDA rules"):
        build_suite(["square:top_u=0"])


def test_columns_on_the_command_line(tmp_path, capsys, data_root):
    from scfront.errors import ConfigError
    from scfront.evaluation.cli import _column_items
    from scfront.evaluation.suite import SUITES

    assert _column_items(["pgd=pgd-linf:steps=3", "bb=square,@autoattack"]) == {
        "pgd": ["pgd-linf:steps=3"], "bb": ["square", *SUITES["autoattack"][0]]}
    for bad in ("pgd-linf:steps=3", "=fgsm", "a="):
        with pytest.raises(ConfigError, match="LABEL=LIST"):
            _column_items([bad])
    with pytest.raises(ConfigError, match="twice"):
        _column_items(["a=fgsm", "a=pgd-linf"])
    base = ["evaluate", str(tmp_path / "missing.pt"), "--data-root", str(data_root), "--out", str(tmp_path / "o")]
    assert main(base + ["--attacks", "fgsm", "--column", "a=fgsm"]) == 2
    assert "not both and not neither" in capsys.readouterr().err
    assert main(base) == 2
    assert "not both and not neither" in capsys.readouterr().err


def test_checks_are_selected_by_name_or_turned_off_on_the_command_line(tmp_path, capsys, data_root):
    """The shipped model on 4 real images: --checks picks checks (with their own image counts),
    --no-checks runs none; the report states the seconds of the attacks and of each check."""
    common = ["evaluate", "cifar10_cpu", "--data-root", str(data_root), "--attacks", "fgsm", "--n-images", "4",
              "--no-progress"]
    assert main(common + ["--checks", "probability-outputs,class-count,randomness:images=2,dynamic",
                          "--out", str(tmp_path / "some")]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "some" / "results.json").read_text())
    assert list(results["checks"]) == ["probability-outputs", "class-count", "randomness", "dynamic"]
    assert all(c["passed"] for c in results["checks"].values()), results["checks"]
    assert "5 forward passes on 2 images agree" in results["checks"]["randomness"]["detail"]
    assert "check dynamic: passed (" in printed and "attacks " in printed and "checks " in printed
    assert "| dynamic | yes |" in (tmp_path / "some" / "report.md").read_text()
    assert main(common + ["--no-checks", "--out", str(tmp_path / "none")]) == 0
    assert json.loads((tmp_path / "none" / "results.json").read_text())["checks"] == {}
    assert main(common + ["--checks", "more-step", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown check 'more-step'" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_help_lists_every_check_with_its_budget_and_whether_it_is_default(capsys):
    from scfront.evaluation.checks import available_checks, check_class

    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = capsys.readouterr().out
    import re

    for name in available_checks():
        cls = check_class(name)
        kind = "default" if cls.default else "opt-in"
        images = "the results" if cls.from_results else (f"{cls.budget} images" if cls.budget else "all check images")
        assert re.search(rf"^  {re.escape(name)} +\[{kind}, {images}", text, re.MULTILINE), name


def test_attack_model_choices_are_the_modes_of_prepare_for_attack():
    from scfront.models.fast import MODES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["evaluate"]
    action = next(a for a in sub._actions if a.dest == "attack_model")
    assert tuple(action.choices) == MODES and action.default == "auto"
