"""scfront.load(spec): every kind of model spec, and a clear error for anything else."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import scfront
from scfront.config import RunConfig
from scfront.errors import CheckpointError, ConfigError
from scfront.models import build_model, create_model, save_model
from scfront.models.loader import ModelSpec, SpecKind, load, resolve_spec

FACTORY_MODULE = textwrap.dedent('''
    from torch import nn


    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))


    class Zoo:
        @staticmethod
        def small():
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))


    def needs_argument(width):
        return nn.Linear(width, 10)


    def not_a_model():
        return 42


    CONSTANT = 3
''')


@pytest.fixture()
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module importable as ``scfront_test_factories`` for the duration of one test."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "scfront_test_factories.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "scfront_test_factories", raising=False)
    return "scfront_test_factories"


def _x(n: int = 2, size: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_a_saved_folder_and_its_safetensors_file(tmp_path: Path) -> None:
    config = RunConfig()
    model = build_model(config).eval()
    run = tmp_path / "run"
    save_model(model, run, config)
    x = _x(2, 32)
    for spec in (run, str(run), run / "model.safetensors", str(run / "model.safetensors")):
        resolved = resolve_spec(spec)
        assert resolved.kind is SpecKind.SAVED and resolved.display_name == "run"
        loaded = scfront.load(spec)
        assert not loaded.training
        assert torch.equal(loaded(x), model(x))


def test_an_original_resnet32_checkpoint(tmp_path: Path) -> None:
    model = create_model("resnet32").eval()
    path = tmp_path / "original.pt"
    torch.save(model.state_dict(), path)
    assert resolve_spec(path) == ModelSpec(SpecKind.ORIGINAL, str(path))
    loaded = load(str(path))
    assert not loaded.training
    x = _x(2, 32)
    assert torch.equal(loaded(x), model(x))
    # Read with weights_only: a pickle of arbitrary objects is refused, not executed.
    evil = tmp_path / "evil.pt"
    torch.save({"conv1.weight": object()}, evil)
    with pytest.raises(CheckpointError, match="not a readable PyTorch state_dict"):
        load(evil)


def test_a_factory_with_and_without_weights(tmp_path: Path, factory_module: str) -> None:
    spec = f"{factory_module}:make"
    assert resolve_spec(spec) == ModelSpec(SpecKind.FACTORY, spec)
    fresh = load(spec)
    assert isinstance(fresh, torch.nn.Module) and not fresh.training
    trained = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
    state = {k: v.contiguous() for k, v in trained.state_dict().items()}
    save_file(state, str(tmp_path / "weights.safetensors"))
    torch.save(state, tmp_path / "weights.pt")
    x = _x()
    for weights in (tmp_path / "weights.safetensors", str(tmp_path / "weights.pt")):
        loaded = scfront.load(spec, weights=weights)
        assert not loaded.training
        assert torch.equal(loaded(x), trained(x))
    # a dotted attribute path inside the module
    assert torch.equal(load(f"{factory_module}:Zoo.small", weights=tmp_path / "weights.pt")(x), trained(x))
    # weights of another architecture: every mismatch named
    save_file({"1.weight": torch.zeros(5, 48)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys 1.bias.*shape mismatches 1.weight"):
        load(spec, weights=tmp_path / "other.safetensors")
    with pytest.raises(ConfigError, match="weights file .* does not exist"):
        load(spec, weights=tmp_path / "absent.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"must be \.safetensors or a \.pt"):
        load(spec, weights=tmp_path / "weights.npz")


@pytest.mark.parametrize("attribute, message", [
    ("absent", "has no attribute 'absent'"),
    ("CONSTANT", "is a int, not a callable"),
    ("needs_argument", r"must be callable without arguments \(its signature: \(width\)\)"),
    ("not_a_model", "returned a int, not a torch.nn.Module"),
])
def test_bad_factories_are_clear_errors(factory_module: str, attribute: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(f"{factory_module}:{attribute}")


def test_a_missing_factory_module() -> None:
    with pytest.raises(ConfigError, match="no module named 'scfront_no_such_module'.*PYTHONPATH"):
        load("scfront_no_such_module.models:make")


def test_a_shipped_name() -> None:
    assert resolve_spec("cifar10_cpu") == ModelSpec(SpecKind.PRETRAINED, "cifar10_cpu")
    model = scfront.load("cifar10_cpu")
    assert type(model).__name__ == "DefendedModel" and not model.training


def test_options_that_the_kind_does_not_take(tmp_path: Path) -> None:
    path = tmp_path / "original.pt"
    torch.save(create_model("resnet32").state_dict(), path)
    with pytest.raises(ConfigError, match="weights= applies to package.module:factory"):
        load(path, weights=path)
    with pytest.raises(ConfigError, match="dictionary= applies to saved models"):
        load(path, dictionary=object())  # type: ignore[arg-type]


@pytest.mark.parametrize("spec, message", [
    ("", "empty model spec"),
    ("no_such_model_name", "unknown model 'no_such_model_name'"),
    ("runs/absent", "model 'runs/absent' does not exist"),
    ("absent.pt", "model 'absent.pt' does not exist"),
    ("not a:spec", "unknown model"),
])
def test_anything_else_lists_the_accepted_forms(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve_spec(spec)
    text = str(info.value)
    for form in ("saved by scfront", "original ResNet-32", "package.module:factory", "cifar10_cpu"):
        assert form in text


def test_files_that_are_no_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="is not a model file"):
        resolve_spec(tmp_path / "notes.txt")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ConfigError, match="not a saved model's model.safetensors.*factory"):
        resolve_spec(tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load(tmp_path)  # a folder, but no saved model in it


def test_a_path_wins_over_a_factory_or_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar10_cpu").mkdir()
    assert resolve_spec("cifar10_cpu").kind is SpecKind.SAVED  # the declared order: paths first
