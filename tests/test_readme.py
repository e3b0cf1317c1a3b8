"""Every code block of README.md runs, at smoke scale, so the README cannot drift from the code.

A block is ``python`` (executed as it is, from the repository root), ``bash`` (each command run
after :func:`smoke_command` shrinks its budget: smoke preset, a few images, outputs in a
temporary folder, the shared data folder of this checkout) or ``text`` (program output: not run).
A command this test does not know how to shrink fails the test, so a new README command needs a
rule here. The two setup commands are not run here: CI runs exactly them around this suite.
"""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LANGUAGES = ("python", "bash", "text")
# Commands CI itself runs before and as this suite (running them here would recurse).
NOT_RUN = ("bash scripts/setup.sh", ".venv/bin/python -m pytest")
# Budget of every evaluation and training inside a reproduction command.
TINY_EVALUATION = ["evaluation.n_images=4", "evaluation.steps=2", "evaluation.batch_size=4"]
TINY_TRAINING = ["data.train_limit=64", "data.monitor_images=16"]
# The ablations run at smoke scale: the reference and one ablation (each trains a model).
SMOKE_ABLATIONS = ("reference", "no-decoder")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, text and first line number in README.md."""

    language: str
    code: str
    line: int


def code_blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, in order."""
    blocks, language, start, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, start, lines = line[3:].strip(), number, []
            else:
                blocks.append(Block(language, "\n".join(lines), start))
                language = None
        elif language is not None:
            lines.append(line)
    assert language is None, f"README.md: the block opened on line {start} is never closed"
    return blocks


def commands(code: str) -> list[list[str]]:
    """Shell commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def split_launch(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """({VAR: value} of leading environment assignments, the command without them and without a
    ``torchrun ... --no-python`` launcher). The launcher itself is tested with two ranks in
    tests/evaluation/test_evaluation_ranks.py; here the command it starts runs in one process."""
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, value = words[0].split("=", 1)
        env[key] = value
        words = words[1:]
    if words and words[0] == "torchrun":
        assert "--no-python" in words, "README: torchrun commands start scfront with --no-python"
        words = words[words.index("--no-python") + 1:]
    return env, words


def smoke_command(words: list[str], out: Path, data_root: Path,
                  produced: dict[str, str] | None = None) -> list[str]:
    """``words`` with the budget shrunk: smoke preset, few images, output under ``out``.

    ``produced`` maps each ``--out`` folder of an earlier command to where it went, so that a
    later command reading it (``scfront evaluate runs/x`` after ``scfront train --out runs/x``)
    reads that folder; this command's ``--out`` is added to it.

    Raises:
        AssertionError: a command this test has no rule for.
    """
    produced = {} if produced is None else produced
    words = [_produced(w, produced) for w in words]
    program = words[0]
    result: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word == "--preset":
            result += ["--preset", "smoke"]
        elif word == "--device":
            pass  # the README's GPU examples run on the CPU here
        elif word == "--out":
            target = str(out / value.strip("/"))
            produced[value.rstrip("/")] = target
            result += ["--out", target]
        elif word == "--n-images":
            result += ["--n-images", "2"]
        elif word == "--attacks":
            result += ["--attacks", smoke_attacks(value)]
        elif word == "--data-root":
            result += ["--data-root", str(data_root)]
        else:
            result.append(word.replace("../shared/reference", str(data_root.parent / "reference")))
            i += 1
            continue
        i += 2
    if program == "scfront":
        sub = result[1:3]
        if sub[0] == "reproduce":
            result += [f"--set={s}" for s in TINY_EVALUATION + TINY_TRAINING]
            if sub[1] == "ablations" and "--only" not in result:
                result += ["--only", ",".join(SMOKE_ABLATIONS)]
        elif sub[0] == "train":
            result += [f"--set={s}" for s in TINY_TRAINING]
        elif sub[0] == "demo":
            if "--out" not in result:
                result += ["--out", str(out / f"demo-{len(produced)}")]
                produced[f"demo-{len(produced)}"] = result[-1]
            result += ["--n-images", "2"]
        elif sub[0] in ("evaluate", "evaluate-merge", "evaluate-compare", "evaluate-repredict"):
            pass
        else:
            raise AssertionError(f"README command {shlex.join(words)!r}: no smoke rule in tests/test_readme.py")
        if "--help" in result:
            return result
        return result + (["--no-progress"] if sub[0] in ("reproduce", "train", "evaluate", "demo") else [])
    if program == "python" and words[1:3] == ["-m", "scfront.models.check_original"]:
        return result + ["--n-images", "8"]
    raise AssertionError(f"README command {shlex.join(words)!r}: no smoke rule in tests/test_readme.py")


# The smoke budget of an attack item: its iterations, queries and restarts cut to these.
SMOKE_BUDGET = {"steps": 2, "queries": 20, "restarts": 1}


def smoke_attacks(text: str) -> str:
    """An ``--attacks`` list with every suite expanded and every item's budget cut to
    :data:`SMOKE_BUDGET` (the same attacks in the same order, on a budget of seconds)."""
    from scfront.attacks.registry import attack_parameters
    from scfront.evaluation.suite import expand_suites, parse_item

    items = []
    for item in expand_suites([i for i in text.split(",") if i.strip()]):
        name, options = parse_item(item)
        declared = attack_parameters(name)
        options.update({k: v for k, v in SMOKE_BUDGET.items() if k in declared})
        items.append(":".join([name, *(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in options.items())]))
    return ",".join(items)


def _produced(word: str, produced: dict[str, str]) -> str:
    """``word`` with an earlier command's output folder replaced by where it went."""
    for original, target in produced.items():
        if word == original or word.startswith(original + "/"):
            return target + word[len(original):]
        if "=" in word and (
                word.split("=", 1)[1] == original or word.split("=", 1)[1].startswith(original + "/")):
            key, value = word.split("=", 1)
            return f"{key}={target}{value[len(original):]}"
    return word


def test_every_block_has_a_known_language() -> None:
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    assert blocks
    for block in blocks:
        assert block.language in LANGUAGES, f"README.md line {block.line}: block language {block.language!r}"


def test_the_readme_starts_with_setup_and_test_commands() -> None:
    first = code_blocks(README.read_text(encoding="utf-8"))[0]
    lines = [shlex.join(c) for c in commands(first.code)]
    assert len(lines) == len(NOT_RUN) and all(line.startswith(cmd) for line, cmd in zip(lines, NOT_RUN))


def test_launch_prefixes_are_split_off() -> None:
    env, words = split_launch(["PYTHONPATH=examples", "torchrun", "--nproc_per_node=2", "--no-python",
                               "scfront", "evaluate", "m"])
    assert env == {"PYTHONPATH": "examples"} and words == ["scfront", "evaluate", "m"]
    assert split_launch(["scfront", "demo"]) == ({}, ["scfront", "demo"])


def test_smoke_rules_refuse_unknown_commands(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no smoke rule"):
        smoke_command(["rm", "-rf", "x"], tmp_path, tmp_path)
    with pytest.raises(AssertionError, match="no smoke rule"):
        smoke_command(["scfront", "dictionary", "learn"], tmp_path, tmp_path)
    shrunk = smoke_command(["scfront", "train", "--preset", "paper", "--device", "cuda", "--data-root", "DATA",
                            "--out", "runs/x"], tmp_path, tmp_path / "datasets")
    assert shrunk[:3] == ["scfront", "train", "--preset"] and shrunk[3] == "smoke" and "cuda" not in shrunk
    assert shrunk[shrunk.index("--out") + 1] == str(tmp_path / "runs" / "x")
    produced = {"runs/x": str(tmp_path / "runs" / "x")}
    later = smoke_command(["scfront", "evaluate", "runs/x", "--reuse", "natural=runs/x/model", "--out", "runs/y"],
                          tmp_path, tmp_path, produced)
    assert later[2] == str(tmp_path / "runs" / "x") and f"natural={tmp_path}/runs/x/model" in later
    attacks = smoke_attacks("pgd-linf,@autoattack").split(",")
    assert [a.split(":")[0] for a in attacks] == ["pgd-linf", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert "queries=20" in attacks[-1] and "p_init=0.8" in attacks[-1] and "steps=2" in attacks[0]


@pytest.mark.slow
def test_every_code_block_runs(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from scfront.cli import main

    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))  # as `python` started in the repository root has it
    ran = 0
    produced: dict[str, str] = {}
    for block in code_blocks(README.read_text(encoding="utf-8")):
        where = f"README.md line {block.line}"
        if block.language == "python":
            exec(compile(block.code, where, "exec"), {"__name__": "__readme__"})
            ran += 1
        elif block.language == "bash":
            for k, words in enumerate(commands(block.code)):
                text = shlex.join(words)
                if any(text.startswith(skip) for skip in NOT_RUN):
                    continue
                env, words = split_launch(words)
                for key, value in env.items():
                    assert key == "PYTHONPATH", f"{where}: no rule for the environment variable {key}"
                    for folder in value.split(":"):  # the commands run in this process
                        monkeypatch.syspath_prepend(str(REPO / folder))
                argv = smoke_command(words, tmp_path, data_root, produced)
                if argv[0] == "scfront":
                    try:
                        code = main(argv[1:])
                    except SystemExit as stop:  # --help exits from argparse
                        code = stop.code or 0
                    assert code == 0, f"{where}: {shlex.join(argv)} exited {code}: {capsys.readouterr().err[-2000:]}"
                else:
                    monkeypatch.setattr(sys, "argv", [argv[2], *argv[3:]])
                    try:
                        runpy.run_module(argv[2], run_name="__main__")
                    except SystemExit as stop:
                        assert not stop.code, f"{where}: {shlex.join(argv)} exited {stop.code}"
                ran += 1
    assert ran >= 10
