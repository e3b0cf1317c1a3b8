"""Registry-generated checks: every classifier builds, has its documented size, and trains."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scfront.errors import ConfigError
from scfront.models import InputKind, count_parameters, create_model, list_models, model_info
from scfront.models.layers import Normalize, SeededDropout
from scfront.models.resnet32 import LEAK, ResidualUnit

# Small inputs keep the deep networks cheap; every model ends with global pooling, and is built
# for that size (its input check refuses others).
_SPATIAL = {"resnet32_wide": 8, "preact_resnet101": 8, "efficientnet_b0": 32}


@functools.lru_cache(maxsize=None)
def _model(name: str) -> torch.nn.Module:
    # Built once per test session: the large networks take seconds to initialise.
    torch.manual_seed(0)  # test-only: deterministic initial weights
    return create_model(name, image_size=_SPATIAL.get(name))


def _input(name: str, batch: int = 2) -> torch.Tensor:
    info = model_info(name)
    channels, size, _ = info.input_size
    size = _SPATIAL.get(name, size)
    gen = torch.Generator().manual_seed(0)
    if info.input_kind is InputKind.CODES:
        return torch.randn(batch, channels, size, size, generator=gen)
    return torch.rand(batch, channels, size, size, generator=gen)


def test_paper_models_are_registered() -> None:
    names = set(list_models())
    assert {"resnet32", "resnet32_wide", "preact_resnet101", "efficientnet_b0",
            "resnet32_codes", "resnet32_dropout"} <= names


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = _model(name)
    model.zero_grad(set_to_none=True)
    x = _input(name).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    F.cross_entropy(logits, torch.tensor([1, 5])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    without_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert without_grad == []


_FIRST_CONV = {"resnet32": "conv1", "preact_resnet101": "conv1", "efficientnet_b0": "stem.0"}


@pytest.mark.parametrize("name", sorted(_FIRST_CONV))
def test_classifiers_compute_channels_last_on_the_cpu(name: str, monkeypatch) -> None:
    """The first convolution sees channels-last input; logits and the input gradient (in the
    caller's NCHW layout) match the all-NCHW computation."""
    model = _model(name).eval()
    seen = []
    hook = model.get_submodule(_FIRST_CONV[name]).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = _input(name).requires_grad_(True)
    try:
        logits = model(x)
    finally:
        hook.remove()
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.is_contiguous()
    module = __import__(type(model).__module__, fromlist=["cpu_channels_last"])
    monkeypatch.setattr(module, "cpu_channels_last", lambda t: t)
    x_ref = x.detach().clone().requires_grad_(True)
    ref = model(x_ref)
    (grad_ref,) = torch.autograd.grad(ref.sum(), x_ref)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, grad_ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_parameter_count_matches_metadata(name: str) -> None:
    model = _model(name)
    assert count_parameters(model) == model_info(name).num_params
    assert model.info is model_info(name)


def test_resnet32_parameter_count_from_its_definition() -> None:
    # Independent count from reference/README.md: 3x3 convs without bias, BN (2 per channel).
    def unit(cin: int, cout: int) -> int:
        return 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout

    widths = [16, 32, 64]
    total = 9 * 3 * 16
    cin = 16
    for w in widths:
        total += unit(cin, w) + 4 * unit(w, w)
        cin = w
    total += 2 * 64 + 64 * 10 + 10
    assert total == 464_154 == count_parameters(create_model("resnet32"))


def test_num_classes_sets_the_output_layer() -> None:
    assert create_model("resnet32", num_classes=7, image_size=8)(torch.rand(2, 3, 8, 8)).shape == (2, 7)


def test_normalisation_is_not_in_the_state_dict() -> None:
    model = create_model("resnet32")
    assert not any("mean" in k and "running" not in k for k in model.state_dict())
    assert len(model.state_dict()) == 188
    norm = Normalize((0.5, 0.25), (0.5, 2.0))
    x = torch.rand(1, 2, 3, 3)
    expected = torch.stack([(x[0, 0] - 0.5) / 0.5, (x[0, 1] - 0.25) / 2.0])[None]
    torch.testing.assert_close(norm(x), expected)


def test_first_unit_irregularity() -> None:
    torch.manual_seed(1)  # test-only
    unit = ResidualUnit(16, 16, conv_on_raw_input=True).eval()
    x = torch.randn(2, 16, 8, 8)
    h = F.leaky_relu(unit.bn1(x), LEAK)
    expected = unit.conv2(F.leaky_relu(unit.bn2(unit.conv1(x)), LEAK)) + h
    torch.testing.assert_close(unit(x), expected)
    regular = ResidualUnit(16, 16).eval()
    h = F.leaky_relu(regular.bn1(x), LEAK)
    expected = regular.conv2(F.leaky_relu(regular.bn2(regular.conv1(h)), LEAK)) + x
    torch.testing.assert_close(regular(x), expected)


@pytest.mark.parametrize("size", [8, 15])
def test_downsampling_shortcut_pools_and_pads(size: int) -> None:
    unit = ResidualUnit(16, 32, stride=2).eval()
    torch.nn.init.zeros_(unit.conv2.weight)  # isolate the shortcut
    x = torch.randn(1, 16, size, size)
    out = unit(x)
    half = (size + 1) // 2
    assert out.shape == (1, 32, half, half)
    assert out[:, :8].abs().max() == 0 and out[:, 24:].abs().max() == 0
    # The top-left output pixel averages the top-left 2x2 input window.
    torch.testing.assert_close(out[0, 8:24, 0, 0], x[0, :, :2, :2].mean(dim=(1, 2)))


def test_seeded_dropout_is_reproducible_and_always_on() -> None:
    drop = SeededDropout(0.95, always_on=True, rescale=False).eval()
    x = torch.ones(4, 50, 10, 10)
    drop.generator = torch.Generator().manual_seed(3)
    a = drop(x)
    drop.generator = torch.Generator().manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}  # kept values are not rescaled
    assert 0.03 < a.mean().item() < 0.07  # about 5 % kept
    inverted = SeededDropout(0.5).train()
    inverted.generator = torch.Generator().manual_seed(0)
    assert set(inverted(x).unique().tolist()) == {0.0, 2.0}
    assert torch.equal(inverted.eval()(x), x)


def test_dropout_network_is_random_in_eval_mode() -> None:
    model = create_model("resnet32_dropout", filters=24, image_size=8).eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_efficientnet_b0_matches_the_published_size() -> None:
    # 5,288,548 parameters with the 1000-class ImageNet head (Tan & Le 2019: "5.3M").
    assert count_parameters(create_model("efficientnet_b0", num_classes=1000)) == 5_288_548


def test_unknown_model_and_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="available: .*resnet32"):
        create_model("resnet33")
    with pytest.raises(ConfigError, match="invalid arguments"):
        create_model("resnet32", width=3)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("resnet32", num_classes=0)


def test_eval_mode_restores_each_submodules_own_mode() -> None:
    from scfront.models.layers import eval_mode

    inner = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5)).eval()
    inner[2].train()  # mixed modes inside the model
    wrapper = nn.Sequential(inner)
    wrapper.training = True  # a new wrapper around an eval-mode model
    before = [m.training for m in wrapper.modules()]
    with eval_mode(wrapper):
        assert not any(m.training for m in wrapper.modules())
    assert [m.training for m in wrapper.modules()] == before
    with pytest.raises(RuntimeError), eval_mode(wrapper):
        raise RuntimeError("restored on errors too")
    assert [m.training for m in wrapper.modules()] == before
