"""The ensemble wrapper and the model's own randomness: what the ensemble returns, its seed,
saving and loading it, and the separation from global and attack randomness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import scfront
from scfront.config import load_preset
from scfront.errors import ConfigError, InputError
from scfront.evaluation.spec import unit_generators
from scfront.models.build import build_model
from scfront.models.ensemble import Ensemble
from scfront.models.inputs import input_spec
from scfront.models.randomness import attach_generator, is_randomized, model_generator, random_layers, seed_model
from scfront.models.saving import load_model, save_model
from scfront.sampling import uniform

# Real CIFAR-10 geometry, synthetic data: a defended ResNet-32 with the small decoder.
BASE = ['data.dataset="synthetic"', "data.image_size=32"]


def _model(recipe: str, extra: tuple[str, ...] = ()) -> tuple[torch.nn.Module, object]:
    config = load_preset("smoke", "cifar10", [*BASE, *extra], recipe=recipe)
    return build_model(config, generator=torch.Generator().manual_seed(0)).eval(), config


def _x(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_randomized_models_are_recognised() -> None:
    assert not is_randomized(_model("defense")[0])
    assert not is_randomized(_model("defense_noisy")[0])  # noise in training only
    assert is_randomized(_model("defense_noisy_test")[0])
    assert is_randomized(_model("defense_dropout")[0])
    assert is_randomized(_model("natural", ('model.classifier="resnet32_dropout"',))[0])
    assert not is_randomized(_model("natural")[0])


def test_ensemble_of_a_deterministic_model_is_its_log_softmax() -> None:
    model = _model("defense")[0]
    x = _x()
    ensemble = Ensemble(model, samples=3).eval()
    assert not ensemble.randomized
    with torch.no_grad():
        expected = torch.log_softmax(model(x), dim=1)
        torch.testing.assert_close(ensemble(x), expected, rtol=0, atol=1e-5)


def test_ensemble_averages_the_probabilities_of_its_passes() -> None:
    model = _model("defense_dropout")[0]
    ensemble = Ensemble(model, samples=4).eval()
    assert ensemble.randomized and input_spec(ensemble) == input_spec(model)
    x = _x()
    with torch.no_grad():
        seed_model(model, 7)
        passes = torch.stack([torch.softmax(model(x), dim=1) for _ in range(4)])
        seed_model(model, 7)
        out = ensemble(x)
    assert out.shape == (3, 10) and bool((out <= 0).all())
    torch.testing.assert_close(out, passes.mean(0).log(), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.logsumexp(out, dim=1), torch.zeros(3), rtol=0, atol=1e-5)
    assert not torch.allclose(passes[0], passes[1])  # the passes do differ
    # an attacker's gradient exists and is finite
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(ensemble(xg), torch.tensor([0, 1, 2])).backward()
    assert xg.grad is not None and bool(torch.isfinite(xg.grad).all()) and float(xg.grad.abs().sum()) > 0


def test_same_seed_same_noise_and_no_global_randomness() -> None:
    model = _model("defense_noisy_test")[0]
    x = _x()
    with torch.no_grad():
        seed_model(model, 3)
        torch.manual_seed(0)
        a = model(x)
        seed_model(model, 3)
        torch.manual_seed(12345)  # the global generator plays no part
        b = model(x)
        c = model(x)  # the stream continues: another draw
        seed_model(model, 4)
        d = model(x)
    assert torch.equal(a, b) and not torch.equal(b, c) and not torch.equal(a, d)
    # every random layer shares the one generator, which later seeds reseed in place (so copies
    # sharing it, like the attack-time model of scfront.models.fast, follow)
    generators = {id(m.generator) for m in random_layers(model)}
    assert len(generators) == 1
    first = seed_model(model, 3)
    assert seed_model(model, 4) is first and id(first) in generators
    with torch.no_grad():
        assert torch.equal(model(x), d)


def test_model_streams_are_not_attack_streams() -> None:
    # the same seed and parts name different streams for the model and for the attacks
    model_draw = torch.rand(8, generator=model_generator(0, 0, "pgd-linf", 5))
    attack_draw = uniform((1, 8), unit_generators(0, [5], 0, "pgd-linf"), torch.empty(0))[0]
    assert not torch.allclose(model_draw, attack_draw)
    assert torch.equal(model_draw, torch.rand(8, generator=model_generator(0, 0, "pgd-linf", 5)))
    with pytest.raises(ConfigError, match="random seed"):
        model_generator(-1)


def test_bad_ensembles_are_refused() -> None:
    model = _model("defense_dropout")[0]
    for samples in (0, -2, 2.5, True):
        with pytest.raises(ConfigError, match="ensemble samples"):
            Ensemble(model, samples=samples)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="wraps an nn.Module"):
        Ensemble("model", 2)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Ensemble(model, 2)(torch.rand(2, 3, 31, 31))
    with pytest.raises(ConfigError, match="model.ensemble_samples must be"):
        load_preset("smoke", "cifar10", ["model.ensemble_samples=0"])


def test_saved_ensemble_round_trips(tmp_path: Path) -> None:
    model, config = _model("defense_dropout", ("model.ensemble_samples=3", "model.random_seed=11"))
    attach_generator(model, torch.Generator().manual_seed(99))  # training's generator
    save_model(Ensemble(model, 5), tmp_path / "m", config)  # the single network is saved
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["ensemble_samples"] == 3
    assert card["randomness"] == {"randomized": True, "seed": 11}
    loaded = scfront.load(tmp_path / "m")
    assert isinstance(loaded, Ensemble) and loaded.samples == 3 and not loaded.training
    assert set(loaded.model.state_dict()) == set(model.state_dict())
    single = load_model(tmp_path / "m", ensemble_samples=1)
    assert not isinstance(single, Ensemble)
    x = _x(2)
    with torch.no_grad():
        first, again = scfront.load(tmp_path / "m")(x), scfront.load(tmp_path / "m")(x)
        seed_model(single, 11)
        by_hand = torch.stack([torch.softmax(single(x), 1) for _ in range(3)]).mean(0).log()
    assert torch.equal(first, again)  # model.random_seed: two loads draw the same noise
    torch.testing.assert_close(first, by_hand, rtol=0, atol=1e-5)
    assert math.isclose(float(torch.logsumexp(first, 1)[0]), 0.0, abs_tol=1e-5)


def test_models_saved_without_the_fields_load_as_before(tmp_path: Path) -> None:
    model, config = _model("defense")
    save_model(model, tmp_path / "m", config)
    card_path = tmp_path / "m" / "model_card.json"
    card = json.loads(card_path.read_text())
    card.pop("ensemble_samples"), card.pop("randomness")
    card_path.write_text(json.dumps(card))
    loaded = scfront.load(tmp_path / "m")
    assert not isinstance(loaded, Ensemble)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_x()), model(_x()), rtol=0, atol=0)
