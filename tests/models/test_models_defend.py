"""scfront.defend and ``model.classifier = "package.module:factory"``: a user's own classifier behind
the frontend, built, checked, saved and reloaded without any registration."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import scfront
from scfront.config import ModelConfig, RunConfig, load_preset
from scfront.errors import ConfigError, InputError
from scfront.frontend import BPDA, use_bpda
from scfront.models import build_model, load_model, save_model
from scfront.models.defended import DefendedModel
from scfront.models.inputs import input_spec
from scfront.models.registration import REGISTRY

MODULE = "scfront_test_user_nets"
USER_NETS = textwrap.dedent('''
    import torch
    from torch import nn


    class TinyNet(nn.Module):
        """(N, C, H, W) -> (N, num_classes) for any H, W (global pooling)."""

        def __init__(self, num_classes=10, in_channels=3):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(in_channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
            self.head = nn.Linear(6 * 4, num_classes)

        def forward(self, x):
            return self.head(self.body(x))


    def make(num_classes=10):
        return TinyNet(num_classes)


    def make_fixed():
        return TinyNet(10)


    def make_for_codes(num_classes=10):
        return TinyNet(num_classes, in_channels=500)


    def make_28(num_classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, num_classes))


    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet(10)

        def forward(self, x):
            return self.net(x), x


    def make_pair():
        return Pair()


    def needs_width(width):
        return TinyNet(width)


    def not_a_module(num_classes=10):
        return 42


    CONSTANT = 3
''')


@pytest.fixture()
def user_nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module importable as ``scfront_test_user_nets`` for one test, registered nowhere."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(USER_NETS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return MODULE


def _x(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def _user(module: str, attribute: str = "make", **kwargs: object) -> nn.Module:
    import importlib

    return getattr(importlib.import_module(module), attribute)(**kwargs)


# ------------------------------------------------------------------------------- scfront.defend
def test_defend_puts_the_papers_frontend_before_the_classifier(user_nets: str) -> None:
    import scfront.models
    import scfront.models.custom

    assert scfront.models.defend is scfront.models.custom.defend  # not shadowed by a submodule
    classifier = _user(user_nets)
    model = scfront.defend(classifier)
    assert isinstance(model, DefendedModel) and model.classifier is classifier
    enc = model.encoder
    assert (enc.n_atoms, enc.patch_size, enc.stride, enc.top_t) == (500, 4, 2, 15)
    assert enc.bpda == BPDA(30, 4.0)
    assert model.frontend.decoder.image_size == 32
    assert model.training and model.frontend.training
    x = _x()
    assert model(x).shape == (2, 10)
    with pytest.raises(InputError, match="trained on 32x32 images, got 28x28"):
        model(_x(size=28))
    # the classifier reads exactly the frontend's reconstruction
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), classifier(model.frontend(x)), rtol=0, atol=0)


def test_defend_takes_the_frontend_settings(user_nets: str) -> None:
    model = scfront.defend(_user(user_nets), dictionary="imagenette", decoder="default", top_t=20,
                           bpda=BPDA(60, 8.0), beta=2.0)
    enc = model.encoder
    assert (enc.n_atoms, enc.patch_size, enc.stride, enc.top_t) == (1000, 8, 4, 20)  # stride: half the patch
    assert enc.bpda == BPDA(60, 8.0)
    assert model.frontend.decoder.image_size == 160 and input_spec(model).size == (160, 160)
    assert model(_x(1, 160)).shape == (1, 10)
    small = scfront.defend(_user(user_nets), image_size=16, stride=4)
    assert small.encoder.stride == 4 and small(_x(1, 16)).shape == (1, 10)


def test_the_bpda_rules_of_a_defended_user_classifier_are_set_with_use_bpda(user_nets: str) -> None:
    model = scfront.defend(_user(user_nets)).eval()
    x = _x()

    def gradient() -> torch.Tensor:
        point = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(point)[:, 0].sum(), point)
        return grad

    own = gradient()
    with use_bpda(model, BPDA(0, 0.0)) as encoders:
        assert encoders == [model.encoder] and model.encoder.bpda == BPDA(0, 0.0)
        identity = gradient()
    assert model.encoder.bpda == BPDA(30, 4.0)
    assert own.abs().sum() > 0 and not torch.allclose(own, identity)
    torch.testing.assert_close(gradient(), own, rtol=0, atol=0)


def test_defend_keeps_the_classifiers_device_and_modes(user_nets: str) -> None:
    classifier = _user(user_nets).eval()
    classifier.body[1].train()  # a submodule in another mode than its parent
    model = scfront.defend(classifier)
    assert not model.training and not model.frontend.training
    assert classifier.body[1].training  # untouched by defend and by its check
    assert int(classifier.body[1].num_batches_tracked) == 0  # the check moved no statistic


def test_defend_with_the_identity_decoder_feeds_codes(user_nets: str) -> None:
    model = scfront.defend(_user(user_nets, "make_for_codes"), decoder="identity")
    assert model(_x()).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"identity decoder's codes, \(N, 500, 15, 15\) codes"):
        scfront.defend(_user(user_nets), decoder="identity")


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda m: scfront.defend(_user(m, "make_28")),
     r"fails on the decoder's reconstruction of the 32x32 input images, \(N, 3, 32, 32\) images"),
    (lambda m: scfront.defend(_user(m), num_classes=7), "returns 10 logits per image, but num_classes is 7"),
    (lambda m: scfront.defend(_user(m, "make_pair")), "returned a tuple"),
    (lambda m: scfront.defend(_user(m, "make", num_classes=1)), "at least 2 classes"),
    (lambda m: scfront.defend(_user(m, "make_fixed"), top_t=501), "at most the 500 atoms"),
    (lambda m: scfront.defend(_user(m), image_size=17), "not tiled"),
    (lambda m: scfront.defend(_user(m), top_t=0), "frontend.top_t must be >= 1"),
    (lambda m: scfront.defend(_user(m), decoder="huge"), "frontend.decoder must be one of"),
    (lambda m: scfront.defend(_user(m), bpda=(30, 4)), "bpda must be a scfront.frontend.BPDA"),
    (lambda m: scfront.defend(lambda x: x), "needs the classifier as a torch.nn.Module"),
    (lambda m: scfront.defend(_user(m), dictionary=3), "dictionary must be"),
], ids=["wrong-input-size", "wrong-classes", "tuple-output", "one-class", "top-t", "not-tiled", "top-t-0",
        "decoder", "bpda", "not-a-module", "dictionary"])
def test_defend_explains_what_does_not_fit(user_nets: str, call, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        call(user_nets)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- configuration
def _config(classifier: str, *overrides: str) -> RunConfig:
    return load_preset("smoke", overrides=[f"model.classifier={classifier!r}".replace("'", '"'), *overrides])


def test_build_model_imports_the_factory_and_passes_num_classes(user_nets: str) -> None:
    defended = build_model(_config(f"{user_nets}:make", "model.num_classes=7"))
    assert isinstance(defended, DefendedModel) and type(defended.classifier).__name__ == "TinyNet"
    assert defended(_x()).shape == (2, 7)
    fixed = build_model(_config(f"{user_nets}:make_fixed"))  # no num_classes parameter: called as is
    assert fixed(_x()).shape == (2, 10)
    alone = build_model(_config(f"{user_nets}:make", "frontend.enabled=false", "data.image_size=24"))
    assert not isinstance(alone, DefendedModel) and input_spec(alone).size == (24, 24)
    with pytest.raises(InputError, match="trained on 24x24"):
        alone(_x())
    assert not any(user_nets in name for name in REGISTRY)


def test_the_factory_classifier_gets_seeded_initial_weights(user_nets: str) -> None:
    config = _config(f"{user_nets}:make")
    a, b = (build_model(config, generator=torch.Generator().manual_seed(3)) for _ in range(2))
    c = build_model(config, generator=torch.Generator().manual_seed(4))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.classifier.head.weight, c.classifier.head.weight)


@pytest.mark.parametrize(("classifier", "extra", "fragment"), [
    ("scfront_no_such_module_xyz:make", (), "classifier factory 'scfront_no_such_module_xyz:make': no module named"),
    ("{m}:nosuch", (), "has no attribute 'nosuch'"),
    ("{m}:CONSTANT", (), "is a int, not a callable"),
    ("{m}:needs_width", (), "must be callable as factory(num_classes=K) or factory()"),
    ("{m}:not_a_module", (), "returned a int, not a torch.nn.Module"),
    ("{m}:make_28", (), "fails on the decoder's reconstruction of the 32x32 input images"),
    ("{m}:make_28", ("frontend.enabled=false",), "fails on the 32x32 images (data.image_size)"),
    ("{m}:make_fixed", ("model.num_classes=5",), "returns 10 logits per image, but num_classes is 5"),
    ("{m}:make_pair", (), "returned a tuple"),
], ids=["no-module", "no-attribute", "not-callable", "signature", "not-a-module", "input-size",
        "input-size-no-frontend", "classes", "tuple"])
def test_a_bad_factory_is_one_clear_error(user_nets: str, classifier: str, extra: tuple[str, ...],
                                          fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_model(_config(classifier.format(m=user_nets), *extra))
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["a:b:c", "pkg.:make", ":make", "pkg:", "my-pkg:make"])
def test_a_malformed_factory_is_refused_by_the_config(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a registered name or package.module:factory"):
        ModelConfig(classifier=text)


# ------------------------------------------------------------------------------- save and reload
def test_a_saved_factory_model_reloads_by_importing_the_factory(user_nets: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    config = _config(f"{user_nets}:make")
    model = build_model(config, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # move the BatchNorm statistics away from their initial values
        model.train()(_x(8))
    model.eval()
    run = tmp_path / "run"
    save_model(model, run, config)
    card = json.loads((run / "model_card.json").read_text())
    assert card["architecture"]["classifier"] == f"{user_nets}:make"
    assert card["architecture"]["classifier_factory"] is True
    monkeypatch.delitem(sys.modules, user_nets)  # a fresh interpreter: nothing imported, nothing registered
    x = _x(4)
    for load in (load_model, scfront.load):
        loaded = load(str(run))
        assert not loaded.training and user_nets in sys.modules
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        monkeypatch.delitem(sys.modules, user_nets)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("site")])
    with pytest.raises(ConfigError, match="no module named 'scfront_test_user_nets'"):
        scfront.load(str(run))


def test_a_registered_classifier_is_not_marked_as_a_factory(tmp_path: Path) -> None:
    import json

    config = load_preset("smoke")
    save_model(build_model(config), tmp_path / "run", config)
    assert json.loads((tmp_path / "run" / "model_card.json").read_text())["architecture"]["classifier_factory"] is False
