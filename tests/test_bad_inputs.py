"""A catalogue of bad inputs: every one is refused cleanly and leaves nothing behind.

Command line (``scfront train``, ``dictionary``, ``data``, ``evaluate`` (the parts shared code
handles: ``--device``, ``--out``, model specs and weights), ``demo`` and ``reproduce``): exactly
one line on stderr, without terminal escape codes, exit status 2, and no file created or
changed, neither in the folder the paths point into nor in the current directory. Python API
(``scfront.load``, the models' forward, the typed configs, threat models and attacks): the
documented exception type, with a one-line message. The commands run in-process (``main(argv)``)
for speed.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from scfront.cli import main
from scfront.models.saving import pretrained_dir

FACTORY_MODULE = "scfront_bad_inputs_factory"
TINY_CONFIG = """\
[data]
dataset = "synthetic"
image_size = 16
train_limit = 64
monitor_images = 0

[frontend]
enabled = true
dictionary = "cifar10"
decoder = "small"

[train]
epochs = 1
batch_size = 32
num_threads = 1
"""


# ------------------------------------------------------------------------------- the world
@dataclass
class World:
    """A folder of ready-made bad inputs (files, folders, models) the cases point at."""

    root: Path
    cwd: Path  # the current directory while a command runs (must stay empty)
    paths: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return str(self.paths[name])


def _linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import shutil

    from scfront.config import load_config, save_config
    from scfront.models.saving import MODEL_FILE, _pretrained_root

    root = tmp_path_factory.mktemp("bad_inputs")
    w = World(root, root / "cwd")
    w.cwd.mkdir()
    p = w.paths
    p["file"] = root / "a_file.txt"
    p["file"].write_text("not a folder\n")
    p["under_file"] = p["file"] / "run"
    p["nonempty"] = root / "not_a_run"
    p["nonempty"].mkdir()
    (p["nonempty"] / "notes.txt").write_text("someone's notes\n")
    p["folder"] = root / "a_folder"
    p["folder"].mkdir()
    p["readonly"] = root / "read_only"
    p["readonly"].mkdir()
    p["readonly"].chmod(0o555)
    p["tiny"] = root / "tiny.toml"
    p["tiny"].write_text(TINY_CONFIG)
    p["bad_toml"] = root / "bad.toml"
    p["bad_toml"].write_text("[train\nepochs = 3\n")
    # a run folder of another configuration: only its config.toml is read
    p["other_run"] = root / "other_run"
    save_config(load_config(p["tiny"]).replace({"train.lr_max": 0.5}), p["other_run"] / "config.toml")
    torch.manual_seed(0)  # test-only: weights of the throwaway models
    p["module_pt"] = root / "module.pt"
    torch.save(_linear(), p["module_pt"])  # a whole pickled nn.Module, as users do
    p["junk_pt"] = root / "junk.pt"
    p["junk_pt"].write_bytes(b"\x80\x04not a checkpoint" * 8)
    p["junk_safetensors"] = root / "junk.safetensors"
    p["junk_safetensors"].write_bytes(b"\x00" * 64)
    p["foreign_safetensors"] = root / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in _linear().state_dict().items()}, str(p["foreign_safetensors"]))
    p["wrong_shapes"] = root / "wrong.safetensors"
    save_file({"1.weight": torch.zeros(10, 5), "1.bias": torch.zeros(10)}, str(p["wrong_shapes"]))
    p["notes"] = root / "notes.txt"
    p["notes"].write_text("hello\n")
    p["junk_npz"] = root / "junk.npz"
    p["junk_npz"].write_text("not an npz\n")
    # a saved model whose weights no longer match their card
    p["tampered"] = root / "tampered_model"
    shutil.copytree(_pretrained_root() / "cifar10_cpu", p["tampered"])
    weights = p["tampered"] / MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    site = root / "site"
    site.mkdir()
    (site / f"{FACTORY_MODULE}.py").write_text(
        "from torch import nn\n\n\ndef make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))\n\n\n"
        "def make_softmax():\n"  # probabilities instead of logits
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10), nn.Softmax(dim=1))\n\n\n"
        "def make_five():\n"  # 5 classes for the 10 of CIFAR-10
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))\n\n\n"
        "def make_28():\n"  # built for 28x28 images
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 10))\n")
    sys.path.insert(0, str(site))
    try:
        yield w
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(FACTORY_MODULE, None)
        p["readonly"].chmod(0o755)


def _snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: folders by name, files by size, mtime and content hash."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = "dir"
        else:
            stat = path.stat()
            out[rel] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``main(argv)``'s exit status (a usage error's SystemExit included) and stderr lines."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.splitlines()


def _assert_one_line(code: int, lines: list[str], fragments: tuple[str, ...]) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("scfront") and ": error: " in line, line
    assert "\x1b" not in line and "Traceback" not in line, line
    for fragment in fragments:
        assert fragment in line, line


# ------------------------------------------------------------------------------- CLI cases
@dataclass(frozen=True)
class Case:
    """One bad command line: ``argv(world, data_root)`` and fragments its error line must hold."""

    argv: Callable[[World, str], list[str]]
    fragments: tuple[str, ...]
    needs_data: bool = False
    unless_root: bool = False  # permission checks mean nothing to root
    unless_cuda: bool = False  # on a machine with CUDA, --device cuda is valid


def _train(*extra: str) -> Callable[[World, str], list[str]]:
    return lambda w, d: ["train", "--config", w["tiny"], "--out", str(w.root / "run"), "--no-progress", *extra]


def _evaluate(model: str | Callable[[World], str], *extra: str | Callable[[World], str]) -> Callable[[World, str], list[str]]:
    def argv(w: World, d: str) -> list[str]:
        words = [model(w) if callable(model) else model, *[e(w) if callable(e) else e for e in extra]]
        if "--out" not in words:
            words += ["--out", str(w.root / "eval")]
        return ["evaluate", *words, "--data-root", d, "--attacks", "fgsm", "--n-images", "4", "--no-checks",
                "--no-progress"]
    return argv


def _path(name: str) -> Callable[[World], str]:
    return lambda w: w[name]


FACTORY = f"{FACTORY_MODULE}:make"

CLI_CASES: dict[str, Case] = {
    # ---- train: the configuration (checked before anything is written)
    "train-top_t-0": Case(_train("--set", "frontend.top_t=0"), ("frontend.top_t must be >= 1 or none, got 0",)),
    "train-top_t-above-atoms": Case(_train("--set", "frontend.top_t=600"),
                                    ("frontend.top_t must be at most the 500 atoms",)),
    "train-epochs-negative": Case(_train("--set", "train.epochs=-1"), ("train.epochs must be >= 1, got -1",)),
    "train-batch-size-0": Case(_train("--set", "train.batch_size=0"), ("train.batch_size must be >= 1",)),
    "train-batch-larger-than-data": Case(_train("--set", "train.batch_size=1000"),
                                         ("smaller than one batch", "lower train.batch_size")),
    "train-lr-0": Case(_train("--set", "train.lr_max=0"), ("train.lr_max must be > 0",)),
    "train-momentum-1": Case(_train("--set", "train.momentum=1"), ("train.momentum must be in [0, 1)",)),
    "train-dropout-1": Case(_train("--set", "frontend.dropout_p=1"), ("frontend.dropout_p must be in [0, 1)",)),
    "train-attack-eps-8": Case(_train("--set", "train.attack_eps=8"), ("train.attack_eps must be in (0, 1]",)),
    "train-image-size-0": Case(_train("--set", "data.image_size=0"), ("data.image_size must be >= 1",)),
    "train-image-size-not-tiled": Case(_train("--set", "data.image_size=17"), ("not tiled",)),
    "train-unknown-key": Case(_train("--set", "train.epoch=3"), ("unknown key",)),
    "train-device-in-config": Case(_train("--set", "train.device=gpu"), ("train.device must be a torch device",)),
    "train-missing-config": Case(lambda w, d: ["train", "--config", str(w.root / "nope.toml"), "--out",
                                               str(w.root / "run")], ("does not exist",)),
    "train-bad-toml": Case(lambda w, d: ["train", "--config", w["bad_toml"], "--out", str(w.root / "run")],
                           ("not valid TOML",)),
    "train-recipe-with-config": Case(_train("--recipe", "natural"), ("--recipe applies to presets",)),
    "train-other-configuration": Case(lambda w, d: ["train", "--config", w["tiny"], "--out", w["other_run"]],
                                      ("holds a run with another configuration", "train.lr_max")),
    "train-not-a-run-folder": Case(lambda w, d: ["train", "--config", w["tiny"], "--out", w["nonempty"]],
                                   ("not empty and holds no config.toml",)),
    # ---- train: a user's classifier (--classifier package.module:factory)
    "train-classifier-no-module": Case(_train("--classifier", "scfront_no_such_module_xyz:make"),
                                       ("classifier factory 'scfront_no_such_module_xyz:make': no module named",)),
    "train-classifier-wrong-input-size": Case(_train("--classifier", FACTORY),
                                              ("fails on the decoder's reconstruction of the 16x16 input images",
                                               "(N, 3, 16, 16) images")),
    "train-classifier-malformed": Case(_train("--classifier", "a:b:c"),
                                       ("model.classifier must be a registered name or package.module:factory",)),
    "train-classifier-twice": Case(_train("--classifier", FACTORY, "--set", 'model.classifier="resnet32"'),
                                   ("give the classifier once",)),
    "train-classifier-unknown-name": Case(_train("--classifier", "resnet33"), ("unknown classifier 'resnet33'",)),
    # ---- train: device and output folder (checked while parsing)
    "train-device-gpu": Case(_train("--device", "gpu"), ("argument --device", "'gpu'", "cpu, cuda")),
    "train-device-cuda": Case(_train("--device", "cuda"), ("CUDA is not available", "--device cpu"),
                              unless_cuda=True),
    "train-out-is-a-file": Case(lambda w, d: ["train", "--config", w["tiny"], "--out", w["file"]],
                                ("argument --out", "is an existing file")),
    "train-out-under-a-file": Case(lambda w, d: ["train", "--config", w["tiny"], "--out", w["under_file"]],
                                   ("is a file, so no folder can be created",)),
    "train-out-read-only": Case(lambda w, d: ["train", "--config", w["tiny"], "--out", w["readonly"] + "/run"],
                                ("not writable",), unless_root=True),
    "train-unknown-dataset": Case(lambda w, d: ["train", "--dataset", "mnist", "--out", str(w.root / "run")],
                                  ("invalid choice 'mnist'", "see 'scfront train --help'")),
    "train-no-data-root": Case(lambda w, d: ["train", "--preset", "smoke", "--out", str(w.root / "run")],
                               ("no data root",)),
    "threads-0": Case(lambda w, d: ["--threads", "0", "train", "--config", w["tiny"], "--out", str(w.root / "run")],
                      ("--threads must be an integer >= 1",)),
    # ---- dictionary
    "dictionary-no-action": Case(lambda w, d: ["dictionary"], ("choose an action",)),
    "dictionary-learn-out-is-a-folder": Case(lambda w, d: ["dictionary", "learn", "--data-root", d, "--out",
                                                           w["folder"]], ("is an existing folder",)),
    "dictionary-learn-out-under-a-file": Case(lambda w, d: ["dictionary", "learn", "--data-root", d, "--out",
                                                            w["file"] + "/d.npz"], ("is a file",)),
    "dictionary-learn-device-gpu": Case(lambda w, d: ["dictionary", "learn", "--method", "fast", "--device", "gpu",
                                                      "--data-root", d, "--out", str(w.root / "d.npz")],
                                        ("argument --device",)),
    "dictionary-learn-0-atoms": Case(lambda w, d: ["dictionary", "learn", "--atoms", "0", "--data-root", d,
                                                   "--out", str(w.root / "d.npz")], ("n_atoms must be positive",)),
    "dictionary-show-unknown": Case(lambda w, d: ["dictionary", "show", "nosuch"], ("unknown dictionary 'nosuch'",)),
    "dictionary-show-junk-npz": Case(lambda w, d: ["dictionary", "show", w["junk_npz"]], ("not an npz",)),
    "dictionary-show-plot-is-a-folder": Case(lambda w, d: ["dictionary", "show", "dct4", "--plot", w["folder"]],
                                             ("argument --plot", "is an existing folder")),
    "dictionary-compare-out-dir-is-a-file": Case(lambda w, d: ["dictionary", "compare", "dct4", "--data-root", d,
                                                               "--out-dir", w["file"]], ("argument --out-dir",)),
    # ---- data
    "data-no-action": Case(lambda w, d: ["data"], ("choose an action",)),
    "data-info-missing-root": Case(lambda w, d: ["data", "info", "--data-root", str(w.root / "nope")],
                                   ("is not a directory",)),
    "data-download-dest-is-a-file": Case(lambda w, d: ["data", "download", "--dest", w["file"]],
                                         ("argument --dest", "is an existing file")),
    "data-download-dest-under-a-file": Case(lambda w, d: ["data", "download", "--dest", w["under_file"]],
                                            ("is a file, so no folder can be created",)),
    # ---- evaluate: device, output, model specs and weights
    "evaluate-device-gpu": Case(_evaluate("cifar10_cpu", "--device", "gpu"), ("argument --device",)),
    "evaluate-device-cuda": Case(_evaluate("cifar10_cpu", "--device", "cuda"), ("CUDA is not available",),
                                 unless_cuda=True),
    "evaluate-out-is-a-file": Case(_evaluate("cifar10_cpu", "--out", _path("file")), ("a_file.txt",),
                                   needs_data=True),
    "evaluate-out-under-a-file": Case(_evaluate("cifar10_cpu", "--out", _path("under_file")), ("a_file.txt",),
                                      needs_data=True),
    "evaluate-unknown-model": Case(_evaluate("cifar10_gpu"), ("unknown model 'cifar10_gpu'", "shipped: cifar10_cpu")),
    "evaluate-missing-path": Case(_evaluate(lambda w: str(w.root / "runs" / "nope")), ("does not exist",)),
    "evaluate-not-a-model-file": Case(_evaluate(_path("notes")), ("is not a model file",)),
    "evaluate-foreign-safetensors": Case(_evaluate(_path("foreign_safetensors")),
                                         ("not a saved model's model.safetensors", "weights=FILE")),
    "evaluate-pickled-module": Case(_evaluate(_path("module_pt")),
                                    ("pickled Python object", "torch.nn.modules.container.Sequential",
                                     "torch.save(model.state_dict(), PATH)")),
    "evaluate-junk-pt": Case(_evaluate(_path("junk_pt")), ("not a readable PyTorch state_dict",)),
    "evaluate-tampered-weights": Case(_evaluate(_path("tampered")), ("does not match the sha256",)),
    "evaluate-missing-factory-module": Case(_evaluate("no_such_module_xyz:make"), ("no module named",)),
    "evaluate-weights-missing": Case(_evaluate(FACTORY, "--weights", lambda w: str(w.root / "nope.safetensors")),
                                     ("does not exist",)),
    "evaluate-weights-pickled-module": Case(_evaluate(FACTORY, "--weights", _path("module_pt")),
                                            ("pickled Python object", "state_dict")),
    "evaluate-weights-junk": Case(_evaluate(FACTORY, "--weights", _path("junk_safetensors")),
                                  ("not a readable safetensors file",)),
    "evaluate-weights-wrong-shapes": Case(_evaluate(FACTORY, "--weights", _path("wrong_shapes")),
                                          ("does not match the model", "shape mismatches")),
    "evaluate-weights-for-a-shipped-model": Case(_evaluate("cifar10_cpu", "--weights", _path("foreign_safetensors")),
                                                 ("weights= applies to package.module:factory",)),
    # ---- evaluate: the attack list and radii (checked before the model or the data are read)
    "evaluate-empty-attacks": Case(lambda w, d: ["evaluate", "cifar10_cpu", "--attacks", "", "--out",
                                                 str(w.root / "eval"), "--data-root", d],
                                   ("--attacks lists no attack",)),
    "evaluate-empty-column": Case(lambda w, d: ["evaluate", "cifar10_cpu", "--column", "pgd=,", "--out",
                                                str(w.root / "eval"), "--data-root", d],
                                  ("--column 'pgd' lists no attack",)),
    "evaluate-linf-eps-5": Case(_evaluate("cifar10_cpu", "--eps", "5"), ("eps",)),
    "evaluate-eps-negative": Case(_evaluate("cifar10_cpu", "--eps=-0.1"), ("eps",)),
    "evaluate-unknown-attack": Case(lambda w, d: ["evaluate", "cifar10_cpu", "--attacks", "pgd-linfinity", "--out",
                                                  str(w.root / "eval"), "--data-root", d], ("unknown attack",)),
    # ---- evaluate: the model's outputs and input size (checked before the data are read) and the checks
    "evaluate-probabilities": Case(_evaluate(f"{FACTORY_MODULE}:make_softmax"),
                                   ("probability-outputs", "pass logits, not softmax")),
    "evaluate-class-count": Case(_evaluate(f"{FACTORY_MODULE}:make_five"),
                                 ("the model has 5 outputs but the dataset has 10 classes",)),
    "evaluate-input-size": Case(_evaluate(f"{FACTORY_MODULE}:make_28"),
                                ("the model fails on images of shape (4, 3, 32, 32)",)),
    "evaluate-unknown-check": Case(_evaluate("cifar10_cpu", "--checks", "default,nope"), ("unknown check 'nope'",)),
    "evaluate-check-option": Case(_evaluate("cifar10_cpu", "--checks", "more-steps:steps=80"), ("images=K",)),
    # ---- evaluate-merge: its inputs and its output folder
    "evaluate-merge-missing-shard": Case(lambda w, d: ["evaluate-merge", str(w.root / "no_shard"), "--out",
                                                       str(w.root / "merged")], ("no_shard",)),
    "evaluate-merge-not-an-evaluation": Case(lambda w, d: ["evaluate-merge", w["folder"], "--out",
                                                           str(w.root / "merged")], ("a_folder",)),
    "evaluate-merge-out-is-a-file": Case(lambda w, d: ["evaluate-merge", w["folder"], "--out", w["file"]],
                                         ("a_file.txt",)),
    "evaluate-merge-no-shard": Case(lambda w, d: ["evaluate-merge", "--out", str(w.root / "merged")],
                                    ("SHARD_DIR",)),
    # ---- export: a folder without a model, an existing output folder
    "export-not-a-model": Case(lambda w, d: ["export", w["folder"], str(w.root / "exported")],
                               ("model.safetensors",)),
    "export-missing-run": Case(lambda w, d: ["export", str(w.root / "no_run"), str(w.root / "exported")],
                               ("no_run", "does not exist")),
    "export-out-exists": Case(lambda w, d: ["export", str(pretrained_dir("cifar10_cpu")), w["folder"]],
                              ("exists; export into a new folder",)),
    # ---- demo and reproduce: the shared options
    "demo-device-gpu": Case(lambda w, d: ["demo", "--device", "gpu"], ("argument --device",)),
    "demo-device-cuda": Case(lambda w, d: ["demo", "--device", "cuda"], ("CUDA is not available",), unless_cuda=True),
    "demo-out-is-a-file": Case(lambda w, d: ["demo", "--n-images", "2", "--no-progress", "--out", w["file"]],
                               ("a_file.txt",)),
    "demo-unknown-model": Case(lambda w, d: ["demo", "--model", "nosuch", "--out", str(w.root / "demo")],
                               ("nosuch",)),
    "reproduce-table1-device-gpu": Case(lambda w, d: ["reproduce", "table1", "--device", "gpu", "--out",
                                                      str(w.root / "t1")], ("argument --device",)),
    "reproduce-ablations-device-cuda": Case(lambda w, d: ["reproduce", "ablations", "--device", "cuda:3", "--out",
                                                          str(w.root / "ab")], ("cuda:3",), unless_cuda=True),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_bad_input(name: str, world: World, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    case = CLI_CASES[name]
    if case.unless_root and os.geteuid() == 0:
        pytest.skip("root may write anywhere: permissions cannot be tested")
    if case.unless_cuda and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    # The real data where the command gets as far as reading it; elsewhere a path never read.
    data = request.getfixturevalue("data_root") if case.needs_data else world.root / "no_data_here"
    monkeypatch.chdir(world.cwd)
    monkeypatch.delenv("SCFRONT_DATA", raising=False)
    before = _snapshot(world.root)
    code, lines = _run(case.argv(world, str(data)), capsys)
    _assert_one_line(code, lines, case.fragments)
    assert _snapshot(world.root) == before


@pytest.mark.parametrize("argv", [
    lambda w: ["train", "--config", w["tiny"], "--out", str(w.root / "new" / "run")],
    lambda w: ["dictionary", "show", "dct4", "--plot", str(w.root / "atoms.png")],
    lambda w: ["data", "download", "--dest", w["folder"]],
], ids=["train-out", "dictionary-plot", "data-dest"])
def test_unwritable_places_are_refused(argv: Callable[[World], list[str]], world: World,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder this user cannot write to (simulated: the suite may run as root, who can)."""
    import scfront.cli_options as options

    monkeypatch.setattr(options.os, "access", lambda path, mode: False)
    before = _snapshot(world.root)
    code, lines = _run(argv(world), capsys)
    _assert_one_line(code, lines, ("not writable",))
    assert _snapshot(world.root) == before


# ------------------------------------------------------------------------------- training
def test_invalid_then_valid_train_command(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The failed command writes nothing, so the corrected one starts (not "another
    configuration")."""
    out = world.root / "fresh" / "run"
    for bad in ("frontend.top_t=0", "frontend.top_t=600", "train.epochs=-1"):
        code, lines = _run(["-q", "train", "--config", world["tiny"], "--out", str(out), "--set", bad], capsys)
        _assert_one_line(code, lines, ())
        assert not (world.root / "fresh").exists()
    code, lines = _run(["-q", "train", "--config", world["tiny"], "--out", str(out), "--set", "frontend.top_t=10",
                        "--no-progress"], capsys)
    assert code == 0, lines
    assert (out / "model.safetensors").is_file()
    import shutil

    shutil.rmtree(world.root / "fresh")


def _tiny(world: World, **overrides: Any) -> Any:
    from scfront.config import load_config

    return load_config(world.paths["tiny"]).replace(overrides) if overrides else load_config(world.paths["tiny"])


def _failing_epoch(fail_at: int, error: BaseException) -> Callable[..., Any]:
    from scfront.training.loop import _Run

    original = _Run.epoch

    def epoch(self: Any, index: int, progress: bool) -> dict[str, Any]:
        if index == fail_at:
            raise error
        return original(self, index, progress)

    return epoch


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "interrupt"])
def test_a_new_run_that_fails_in_its_first_epoch_leaves_nothing(world: World, monkeypatch: pytest.MonkeyPatch,
                                                                error: BaseException) -> None:
    from scfront.training.loop import _Run, train

    monkeypatch.setattr(_Run, "epoch", _failing_epoch(0, error))
    out = world.root / "new_parent" / "deeper" / "run"
    with pytest.raises(type(error)):
        train(_tiny(world), out, progress=False)
    assert not (world.root / "new_parent").exists()
    # an existing empty folder stays, empty
    empty = world.root / "empty_run"
    empty.mkdir()
    with pytest.raises(type(error)):
        train(_tiny(world), empty, progress=False)
    assert empty.is_dir() and not any(empty.iterdir())
    empty.rmdir()


def test_a_resumed_run_keeps_its_epochs_when_it_fails(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from scfront.training.loop import _Run, train

    out = world.root / "resumable"
    config = _tiny(world, **{"train.epochs": 2})
    with monkeypatch.context() as patch:
        patch.setattr(_Run, "epoch", _failing_epoch(1, RuntimeError("killed in epoch 2")))
        with pytest.raises(RuntimeError):
            train(config, out, progress=False)
    assert (out / "config.toml").is_file() and (out / "checkpoint.json").is_file()
    kept = _snapshot(out)
    with monkeypatch.context() as patch:  # fails again, right away, on resuming
        patch.setattr(_Run, "epoch", _failing_epoch(1, KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            train(config, out, progress=False)
    assert {k for k in _snapshot(out) if k != "log.jsonl"} == {k for k in kept if k != "log.jsonl"}
    summary = train(config, out, progress=False)
    assert summary["epochs"] == 2 and len(summary["history"]) == 2
    shutil.rmtree(out)


# ------------------------------------------------------------------------------- the error path
def test_messages_are_one_clean_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     world: World) -> None:
    """A message with escape codes and line breaks (as torch writes them) is printed as one line."""
    from scfront.data import cli as data_cli
    from scfront.errors import DatasetError

    def handler(args: Any) -> int:
        raise DatasetError("first \x1b[1mbold\x1b[0m part.\n\t(1) second part\n\nthe end")

    monkeypatch.setattr(data_cli, "_info", handler)
    code, lines = _run(["data", "info", "--data-root", str(world.root)], capsys)
    assert (code, lines) == (2, ["scfront: error: first bold part. (1) second part the end"])


def test_os_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                world: World) -> None:
    import errno

    from scfront.data import cli as data_cli

    def handler(args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(world.root / "x"))

    monkeypatch.setattr(data_cli, "_info", handler)
    code, lines = _run(["data", "info", "--data-root", str(world.root)], capsys)
    _assert_one_line(code, lines, ("No space left on device", "free disk space"))


def test_a_bug_keeps_its_traceback_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], world: World) -> None:
    from scfront.data import cli as data_cli

    def handler(args: Any) -> int:
        return {}["missing"]  # an internal mistake, not the user's

    monkeypatch.setattr(data_cli, "_info", handler)
    code, lines = _run(["data", "info", "--data-root", str(world.root)], capsys)
    assert code == 1
    assert lines[0].startswith("Traceback") and "KeyError" in "\n".join(lines)
    assert "this is a bug in scfront" in lines[-1]


# ------------------------------------------------------------------------------- Python API
@pytest.fixture(scope="module")
def shipped() -> nn.Module:
    import scfront

    return scfront.load("cifar10_cpu")


@pytest.fixture(scope="module")
def natural() -> nn.Module:
    from scfront.models import create_model

    return create_model("resnet32").eval()


_X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

# (model fixture, input, fragment of the InputError)
INPUT_CASES: dict[str, tuple[str, Callable[[], Any], str]] = {
    "defended-28x28": ("shipped", lambda: torch.rand(1, 3, 28, 28), "trained on 32x32 images, got 28x28"),
    "defended-64x64": ("shipped", lambda: torch.rand(1, 3, 64, 64), "trained on 32x32 images, got 64x64"),
    "defended-uint8": ("shipped", lambda: (_X * 255).to(torch.uint8), "x.float() / 255"),
    "defended-0-255-float": ("shipped", lambda: _X * 255, "divide them by 255"),
    "defended-no-batch-axis": ("shipped", lambda: _X[0], "x.unsqueeze(0)"),
    "defended-channels-last": ("shipped", lambda: _X.permute(0, 2, 3, 1), "x.permute(0, 3, 1, 2)"),
    "defended-nan": ("shipped", lambda: torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    "defended-negative": ("shipped", lambda: _X - 0.5, "must be images in [0, 1]"),
    "defended-empty-batch": ("shipped", lambda: _X[:0], "empty batch"),
    "defended-int64": ("shipped", lambda: (_X * 255).long(), "floating point"),
    "defended-a-list": ("shipped", lambda: _X.tolist(), "must be a torch.Tensor"),
    "natural-uint8": ("natural", lambda: (_X * 255).to(torch.uint8), "x.float() / 255"),
    "natural-0-255-float": ("natural", lambda: _X * 255, "divide them by 255"),
    "natural-28x28": ("natural", lambda: torch.rand(1, 3, 28, 28), "trained on 32x32"),
    "natural-one-channel": ("natural", lambda: torch.rand(1, 1, 32, 32), "3 channels"),
    "natural-infinite": ("natural", lambda: torch.full((1, 3, 32, 32), float("inf")), "infinite"),
}


@pytest.mark.parametrize("name", sorted(INPUT_CASES))
def test_model_input_is_checked(name: str, request: pytest.FixtureRequest) -> None:
    from scfront.errors import InputError

    fixture, make, fragment = INPUT_CASES[name]
    model = request.getfixturevalue(fixture)
    with torch.no_grad(), pytest.raises(InputError) as info:
        model(make())
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_converted_to_float32(dtype: torch.dtype, shipped: nn.Module,
                                                     natural: nn.Module) -> None:
    for model in (shipped, natural):
        x = _X.to(dtype)
        with torch.no_grad():
            logits = model(x)
            expected = model(x.to(torch.float32))
        assert logits.dtype == torch.float32
        torch.testing.assert_close(logits, expected)
    x = _X.double().requires_grad_(True)
    natural(x).sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float64


def test_every_registered_classifier_and_every_built_model_checks_its_input() -> None:
    """The check is attached where models come from, so a new architecture has it too."""
    from scfront.config import load_preset
    from scfront.errors import InputError
    from scfront.models import build_model, list_models, model_info
    from scfront.models.inputs import input_spec
    from scfront.models.registry import create_model

    for name in list_models():
        kwargs: dict[str, Any] = {"in_channels": 8} if name == "resnet32_codes" else {}
        spec = input_spec(create_model(name, **kwargs))
        assert spec is not None, name
        assert spec.channels == (8 if kwargs else model_info(name).input_size[0])
    for recipe in ("defense", "natural"):
        config = load_preset("smoke", "imagenette", recipe=recipe)
        model = build_model(config).eval()
        assert input_spec(model).size == (config.data.image_size, config.data.image_size)
        size = config.data.image_size
        with pytest.raises(InputError, match=f"trained on {size}x{size} images, got 32x32"):
            model(torch.rand(1, 3, 32, 32))


def test_a_factory_model_gets_the_range_check(world: World) -> None:
    import scfront
    from scfront.errors import InputError

    model = scfront.load(FACTORY, weights=world.paths["foreign_safetensors"])
    assert model(_X).shape == (2, 10)
    with pytest.raises(InputError, match="divide them by 255"):
        model(_X * 255)


def _evaluate_api(model: Callable[[], nn.Module] = lambda: _linear(), images: Callable[[], torch.Tensor] | None = None,
                  **kwargs: Any) -> Callable[[World], Any]:
    """``scfront.evaluate`` of 4 seeded 32x32 images (uint8 unless ``images``) with labels 0."""
    def call(w: World) -> Any:
        import scfront

        x = images() if images else (torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
                                     ).round().to(torch.uint8)
        return scfront.evaluate(model(), x, torch.zeros(4, dtype=torch.int64), kwargs.pop("attacks", "fgsm"),
                                **kwargs)
    return call


API_CASES: dict[str, tuple[Callable[[World], Any], str, str]] = {
    # (call, exception class name in scfront.errors, fragment)
    "evaluate-api-probabilities": (_evaluate_api(lambda: nn.Sequential(_linear(), nn.Softmax(dim=1))),
                                   "ConfigError", "pass logits, not softmax"),
    "evaluate-api-class-count": (_evaluate_api(n_classes=100), "ConfigError", "10 outputs but the dataset has 100"),
    "evaluate-api-0-255-floats": (_evaluate_api(images=lambda: torch.full((4, 3, 32, 32), 200.0)), "InputError",
                                  "divide by 255"),
    "evaluate-api-not-8-bit": (_evaluate_api(images=lambda: torch.full((4, 3, 32, 32), 0.3)), "InputError",
                               "8-bit values k/255"),
    "evaluate-api-norm-mismatch": (_evaluate_api(attacks="pgd-linf", norm="L2", eps=0.5), "ConfigError",
                                   "another norm"),
    "evaluate-api-unknown-check": (_evaluate_api(checks="default,nope"), "ConfigError", "unknown check 'nope'"),
    "load-unknown-name": (lambda w: __import__("scfront").load("nosuch"), "ConfigError", "unknown model"),
    "load-pickled-module": (lambda w: __import__("scfront").load(w.paths["module_pt"]), "CheckpointError",
                            "torch.save(model.state_dict(), PATH)"),
    "load-tampered": (lambda w: __import__("scfront").load(w.paths["tampered"]), "CheckpointError", "sha256"),
    "train-config-epochs-0": (lambda w: _config("TrainConfig", epochs=0), "ConfigError", "train.epochs must be >= 1"),
    "train-config-device": (lambda w: _config("TrainConfig", device="gpu"), "ConfigError", "torch device"),
    "train-config-milestone-0": (lambda w: _config("TrainConfig", lr_milestones=(0,)), "ConfigError",
                                 "train.lr_milestones[0] must be >= 1"),
    "frontend-config-beta-0": (lambda w: _config("FrontendConfig", beta=0.0), "ConfigError", "frontend.beta must be > 0"),
    "frontend-config-assumed-eps": (lambda w: _config("FrontendConfig", assumed_eps=8.0), "ConfigError", "in (0, 1]"),
    "data-config-padding": (lambda w: _config("DataConfig", crop_padding=-1), "ConfigError", "data.crop_padding"),
    "model-config-one-class": (lambda w: _config("ModelConfig", num_classes=1), "ConfigError", "num_classes must be >= 2"),
    "eval-config-no-attacks": (lambda w: _config("EvalConfig", attacks=()), "ConfigError", "at least one attack"),
    "eval-config-restarts-0": (lambda w: _config("EvalConfig", restarts=0), "ConfigError", "evaluation.restarts"),
    "threat-linf-5": (lambda w: _threat("Linf", 5.0), "ConfigError", "in (0, 1] for Linf"),
    "threat-linf-0": (lambda w: _threat("Linf", 0.0), "ConfigError", "in (0, 1] for Linf"),
    "threat-l2-negative": (lambda w: _threat("L2", -1.0), "ConfigError", "> 0 for L2"),
    "attack-linf-eps-8": (lambda w: _attack("pgd-linf", eps=8.0), "ConfigError", "8/255 is the paper's"),
    "attack-square-eps-0": (lambda w: _attack("square", eps=0.0), "ConfigError", "square: eps"),
    "attack-l2-beyond-the-box": (lambda w: _attack("pgd-l2", eps=100.0)(_linear().eval(), _X, torch.tensor([0, 1])),
                                 "ConfigError", "diameter"),
    "defend-not-a-module": (lambda w: __import__("scfront").defend(42), "ConfigError",
                            "needs the classifier as a torch.nn.Module"),
    "defend-wrong-input-size": (lambda w: __import__("scfront").defend(_linear(), image_size=16), "ConfigError",
                                "fails on the decoder's reconstruction of the 16x16 input images"),
    "build-factory-missing-attribute": (lambda w: _build(**{"model.classifier": f"{FACTORY_MODULE}:nosuch"}),
                                        "ConfigError", f"{FACTORY_MODULE} has no attribute 'nosuch'"),
    "build-top-t-above-atoms": (lambda w: _build(**{"frontend.top_t": 501}), "ConfigError",
                                "frontend.top_t must be at most the 500 atoms"),
}


def _config(section: str, **kwargs: Any) -> Any:
    import scfront.config as config

    return getattr(config, section)(**kwargs)


def _threat(norm: str, eps: float) -> Any:
    from scfront.attacks.threat import ThreatModel

    return ThreatModel(norm, eps)  # type: ignore[arg-type]


def _attack(name: str, **kwargs: Any) -> Any:
    from scfront.attacks.registry import create_attack

    return create_attack(name, **kwargs)


def _build(**overrides: Any) -> Any:
    from scfront.config import load_preset
    from scfront.models import build_model

    return build_model(load_preset("smoke", overrides=overrides))


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_python_api_bad_input(name: str, world: World) -> None:
    import scfront.errors as errors

    call, kind, fragment = API_CASES[name]
    before = _snapshot(world.root)
    with pytest.raises(getattr(errors, kind)) as info:
        call(world)
    message = str(info.value)
    assert fragment in message and "\n" not in message and "\x1b" not in message, message
    assert _snapshot(world.root) == before


def test_a_failed_merge_leaves_no_output_folder(world: World, data_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Merging only one shard of two: one line, exit 2, and the new --out folder is removed."""
    shard = tmp_path / "shard0"
    code = main(["evaluate", FACTORY, "--data-root", str(data_root), "--attacks", "fgsm", "--n-images", "4",
                 "--batch-size", "2", "--shard", "0/2", "--no-checks", "--no-progress", "--out", str(shard)])
    assert code == 0
    before = _snapshot(tmp_path)
    merged = tmp_path / "merged"
    code, lines = _run(["evaluate-merge", str(shard), "--out", str(merged)], capsys)
    _assert_one_line(code, lines, ())
    assert not merged.exists()
    assert _snapshot(tmp_path) == before
