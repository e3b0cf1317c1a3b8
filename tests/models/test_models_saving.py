"""build_model from a RunConfig, seeded initialisation, and the save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import scfront
from scfront.config import RunConfig
from scfront.dictionary.core import Dictionary
from scfront.errors import CheckpointError, ConfigError
from scfront.models import build_model, create_model, list_pretrained, load_pretrained, save_model
from scfront.models.init import initialize_
from scfront.models.saving import CARD_FILE, MODEL_FILE, load_model


def _dictionary(n_atoms: int = 24, seed: int = 0) -> Dictionary:
    atoms = torch.randn(n_atoms, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return Dictionary(atoms / atoms.flatten(1).norm(dim=1)[:, None, None, None])


def _defended_config(**frontend: object) -> RunConfig:
    settings = {"frontend.enabled": True, "frontend.decoder": "small", "frontend.top_t": 5}
    settings.update({f"frontend.{k}": v for k, v in frontend.items()})
    return RunConfig().replace(settings)


def test_plain_classifier() -> None:
    model = build_model(RunConfig().replace({"model.num_classes": 4}))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    assert type(model).__name__ == "MadryResNet"


def test_defended_model_and_its_checks() -> None:
    from scfront.models.defended import DefendedModel

    model = build_model(_defended_config(), dictionary=_dictionary())
    assert isinstance(model, DefendedModel)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    codes = build_model(_defended_config(decoder="identity").replace(
        {"model.classifier": "resnet32_codes"}), dictionary=_dictionary())
    assert codes.classifier.conv1.in_channels == 24
    assert codes(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="identity decoder feeds codes"):
        build_model(_defended_config(decoder="identity"), dictionary=_dictionary())
    with pytest.raises(ConfigError, match="reads frontend codes"):
        build_model(RunConfig().replace({"model.classifier": "resnet32_codes"}))


def test_seeded_initialisation_is_reproducible() -> None:
    config = _defended_config()
    a = build_model(config, _dictionary(), generator=torch.Generator().manual_seed(5))
    b = build_model(config, _dictionary(), generator=torch.Generator().manual_seed(5))
    c = build_model(config, _dictionary(), generator=torch.Generator().manual_seed(6))
    for (key, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), key
    assert not torch.equal(a.classifier.linear.weight, c.classifier.linear.weight)
    # The dictionary atoms are data, not weights: never redrawn.
    assert torch.equal(a.encoder.atoms, c.encoder.atoms)


def test_initialisation_follows_the_documented_distributions() -> None:
    model = initialize_(create_model("resnet32"), torch.Generator().manual_seed(0))
    w = model.block2[1].conv1.weight
    fan_in, fan_out = 32 * 9, 32 * 9
    xavier_std = (2.0 / (fan_in + fan_out)) ** 0.5
    assert abs(w.std().item() / xavier_std - 1) < 0.05
    bound = 1 / (64 ** 0.5)  # Kaiming-uniform(a=√5) of a 64-input linear layer
    lin = model.linear.weight
    assert lin.abs().max() <= bound and lin.abs().max() > 0.9 * bound
    assert torch.equal(model.bn1.weight, torch.ones(64))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    config = _defended_config()
    dictionary = _dictionary()
    model = build_model(config, dictionary).eval()
    x = torch.rand(3, 3, 32, 32)
    # Give the BatchNorm statistics non-default values so that their saving is checked too.
    model.train()
    with torch.no_grad():
        model(torch.rand(3, 3, 32, 32))
    model.eval()
    expected = model(x)
    weights = save_model(model, tmp_path, config, {"monitor_accuracy": 0.5},
                         dataset={"train_images": 8})
    assert weights == tmp_path / MODEL_FILE
    card = json.loads((tmp_path / CARD_FILE).read_text())
    assert card["architecture"]["defended"] and card["architecture"]["decoder"] == "small"
    assert card["dictionary"]["sha256"] == dictionary.sha256()
    assert card["dictionary"]["name"] == "cifar10" and card["dictionary"]["n_atoms"] == 24
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["metrics"] == {"monitor_accuracy": 0.5}
    assert card["dataset"]["train_images"] == 8 and card["training"]["lr_max"] == 0.02
    assert card["scfront_version"] == scfront.__version__ and card["created"]
    for where in (tmp_path, weights):
        loaded = scfront.load(where, dictionary=dictionary)
        assert not loaded.training
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_plain_classifier_round_trip(tmp_path: Path) -> None:
    config = RunConfig()
    model = build_model(config).eval()
    save_model(model, tmp_path, config)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(load_model(tmp_path)(x), model(x))
    assert json.loads((tmp_path / CARD_FILE).read_text())["dictionary"] is None


def test_mismatched_dictionary_is_refused(tmp_path: Path) -> None:
    config = _defended_config()
    save_model(build_model(config, _dictionary(seed=0)), tmp_path, config)
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(tmp_path, dictionary=_dictionary(seed=1))


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    config = RunConfig()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="import_original_resnet32"):
        load_model(tmp_path / "weights.pt")
    save_model(build_model(config), tmp_path, config)
    weights = tmp_path / MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_model(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / CARD_FILE).unlink()
    with pytest.raises(CheckpointError, match="model_card.json does not exist"):
        load_model(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    config = RunConfig()
    save_model(build_model(config), tmp_path, config)
    (tmp_path / "config.toml").write_text('[model]\nclassifier = "resnet32_dropout"\n')
    with pytest.raises(CheckpointError, match="shape mismatches conv1.weight"):
        load_model(tmp_path)


def test_load_pretrained_lists_what_is_available() -> None:
    available = list_pretrained()
    with pytest.raises(CheckpointError, match="no pretrained model 'no-such-model'; available: "):
        load_pretrained("no-such-model")
    assert all(isinstance(name, str) for name in available)


def test_the_shipped_defended_model_loads_and_classifies_the_shipped_sample() -> None:
    from scfront.models.defended import DefendedModel
    from scfront.reproduction import load_sample

    assert "cifar10_cpu" in list_pretrained()
    model = load_pretrained("cifar10_cpu")
    assert isinstance(model, DefendedModel) and not model.training
    encoder = model.frontend.encoder
    assert (encoder.n_atoms, encoder.channels, encoder.patch_size, encoder.top_t) == (500, 3, 4, 15)
    sample = load_sample()
    with torch.no_grad():
        pred = model(sample.images.float() / 255).argmax(1)
    # 75.0 % on these 200 images when shipped (76.18 % on the full test set)
    assert float((pred == sample.labels).float().mean()) >= 0.70


def test_export_copies_the_model_alone_and_halves_its_parameters(tmp_path: Path) -> None:
    from scfront.models import export_model

    config = _defended_config()
    dictionary = _dictionary()
    model = build_model(config, dictionary).eval()
    run = tmp_path / "run"
    save_model(model, run, config, {"monitor_accuracy": 0.5})
    (run / "log.jsonl").write_text("{}\n")  # run files that are not the model stay behind
    full = export_model(run, tmp_path / "full", dictionary=dictionary)
    assert full["max_abs_logit_change"] == 0.0 and full["prediction_changes"] == 0 and not full["half"]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == sorted([CARD_FILE, "config.toml", MODEL_FILE])
    half = export_model(run, tmp_path / "half", half=True, dictionary=dictionary)
    card = json.loads((tmp_path / "half" / CARD_FILE).read_text())
    assert card["weights"]["dtype"] == "float16 parameters, float32 buffers"
    assert card["metrics"] == {"monitor_accuracy": 0.5} and card["dictionary"]["sha256"] == dictionary.sha256()
    assert half["bytes"] < 0.6 * full["bytes"] and 0 < half["relative_logit_change"] < 1e-2
    loaded = load_model(tmp_path / "half", dictionary=dictionary)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=1e-2, atol=1e-2)
    # an existing folder is refused, a folder without a model too; nothing is left behind
    with pytest.raises(CheckpointError, match="exists"):
        export_model(run, tmp_path / "half", dictionary=dictionary)
    with pytest.raises(CheckpointError):
        export_model(tmp_path / "nothing", tmp_path / "out", dictionary=dictionary)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*.tmp"))
