"""The feature hook (scfront.models.features), generated from the classifier registry: every
registered classifier, the defended model and the original ResNet-32 import expose
``features(x)`` and ``readout`` with ``model(x) == readout(features(x))`` exactly; a model
without the hook gets one error that says how to add it."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from scfront.config import DecoderName, FrontendConfig
from scfront.dictionary.core import Dictionary
from scfront.errors import ConfigError
from scfront.frontend import build_frontend
from scfront.models import InputKind, create_model, import_original_resnet32, list_models, model_info
from scfront.models.defended import DefendedModel
from scfront.models.features import FEATURE_HOOK_HINT, feature_readout
from scfront.models.layers import SeededDropout

# Small inputs keep the deep networks cheap (every model ends with global pooling).
_SPATIAL = {"resnet32_wide": 8, "preact_resnet101": 8, "efficientnet_b0": 32}


@functools.lru_cache(maxsize=None)
def _model(name: str) -> nn.Module:
    torch.manual_seed(0)  # test-only: deterministic initial weights
    return create_model(name, image_size=_SPATIAL.get(name)).eval()


def _input(name: str) -> torch.Tensor:
    info = model_info(name)
    channels, size, _ = info.input_size
    size = _SPATIAL.get(name, size)
    gen = torch.Generator().manual_seed(0)
    if info.input_kind is InputKind.CODES:
        return torch.randn(2, channels, size, size, generator=gen)
    return torch.rand(2, channels, size, size, generator=gen)


@pytest.fixture()
def tiny_defended() -> DefendedModel:
    """A small-decoder frontend on a random 500-atom dictionary, then ResNet-32."""
    atoms = torch.randn(500, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    dictionary = Dictionary(atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    torch.manual_seed(0)  # test-only: layer init
    frontend = build_frontend(FrontendConfig(decoder=DecoderName.SMALL), 32, dictionary)
    return DefendedModel(frontend, create_model("resnet32", input_check=False)).eval()


def _reseed(model: nn.Module) -> None:
    """Restart every always-on dropout's stream, so that two passes draw the same masks."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = torch.Generator().manual_seed(0)


def _same_outputs(model: nn.Module, x: torch.Tensor) -> None:
    readout = feature_readout(model)
    with torch.no_grad():
        _reseed(model)
        logits = model(x)
        _reseed(model)
        features = model.features(x)
    assert features.shape == (x.shape[0], readout.in_features)
    assert torch.equal(logits, readout(features))


@pytest.mark.parametrize("name", list_models())
def test_every_classifier_has_the_hook(name: str) -> None:
    model = _model(name)
    assert isinstance(feature_readout(model), nn.Linear)
    assert feature_readout(model).out_features == 10
    _same_outputs(model, _input(name))


def test_the_defended_model_has_the_hook(tiny_defended: nn.Module) -> None:
    _same_outputs(tiny_defended.eval(), torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert feature_readout(tiny_defended) is tiny_defended.classifier.readout


def test_a_model_without_the_hook_gets_one_clear_error() -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(12, 10))
    with pytest.raises(ConfigError, match="no method `features`") as info:
        feature_readout(plain)
    assert FEATURE_HOOK_HINT in str(info.value)

    class NoReadout(nn.Module):
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

    with pytest.raises(ConfigError, match="no attribute `readout`"):
        feature_readout(NoReadout())

    class WrongReadout(NoReadout):
        readout = nn.ReLU()

    with pytest.raises(ConfigError, match="`readout` is a ReLU"):
        feature_readout(WrongReadout())


def test_a_defended_model_with_a_hookless_classifier_names_it(tiny_defended: nn.Module) -> None:
    defended = DefendedModel(tiny_defended.frontend, nn.Sequential(nn.Flatten(), nn.LazyLinear(10)))
    with pytest.raises(ConfigError, match="Sequential does not expose its features"):
        feature_readout(defended)
    with pytest.raises(ConfigError, match="Sequential does not expose its features"):
        defended.features(torch.rand(1, 3, 32, 32))


def test_the_original_checkpoint_import_has_the_hook(reference_dir: Path) -> None:
    model = import_original_resnet32(reference_dir / "checkpoints" / "resnet32_pgd_at.pt")
    assert feature_readout(model) is model.linear
    _same_outputs(model, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
