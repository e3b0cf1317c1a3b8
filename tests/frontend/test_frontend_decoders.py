"""Decoders: the paper's parameter counts, shapes and range, and the sparse path vs the dense one."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from scfront.config import DecoderName, FrontendConfig
from scfront.dictionary.core import Dictionary
from scfront.errors import ConfigError
from scfront.frontend import BPDA, Frontend, build_decoder, build_frontend

PAPER_PARAMS = {  # docs/method.md §3, CIFAR-10 with 500 atoms
    DecoderName.DEFAULT: 2_673_103,
    DecoderName.SMALL: 243_013,
    DecoderName.DEEP: 2_700_413,
    DecoderName.RESIZE: 1_623_103,
    DecoderName.IDENTITY: 0,
}


@pytest.mark.parametrize("name", list(DecoderName))
def test_parameter_counts_match_paper(name: DecoderName) -> None:
    decoder = build_decoder(name, 500, 32, 4, 2)
    assert sum(p.numel() for p in decoder.parameters()) == PAPER_PARAMS[name]


def test_first_layer_mirrors_the_encoder() -> None:
    first = build_decoder("default", 500, 32, 4, 2).convs[0]
    assert (first.kernel_size, first.stride, first.out_channels) == ((4, 4), (2, 2), 300)
    imagenette = build_decoder("small", 1000, 224, 8, 4)
    assert imagenette(torch.zeros(1, 1000, 55, 55)).shape == (1, 3, 224, 224)


@pytest.mark.parametrize("name", list(DecoderName))
def test_frontend_output_shape_and_range(name: DecoderName, cifar_dictionary: Dictionary,
                                         cifar_images: torch.Tensor) -> None:
    frontend = build_frontend(FrontendConfig(decoder=name), 32, cifar_dictionary)
    with torch.no_grad():
        out = frontend(cifar_images[:2])
    if name is DecoderName.IDENTITY:
        assert out.shape == (2, 500, 15, 15)
    else:
        assert out.shape == (2, 3, 32, 32)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert float(out.max()) > 0.0


def test_decoder_layers_compose_as_the_paper_says() -> None:
    """Default decoder = ReLU(ConvT) ×3, center crop 36 → 32, clamp: re-computed by hand."""
    decoder = build_decoder("default", 6, 8, 4, 2)
    codes = torch.randn(2, 6, 3, 3, generator=torch.Generator().manual_seed(0))
    h = codes
    for conv in decoder.convs:
        h = torch.relu(nn.functional.conv_transpose2d(h, conv.weight, conv.bias, conv.stride))
    assert h.shape[-1] == 12
    torch.testing.assert_close(decoder(codes), h[:, :, 2:10, 2:10].clamp(0, 1))


def test_unusable_geometry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown decoder"):
        build_decoder("huge", 500, 32, 4, 2)
    with pytest.raises(ConfigError, match="smaller than"):
        build_decoder("default", 500, 2, 4, 2)


def _pair(dictionary: Dictionary, name: DecoderName, dtype: torch.dtype, **cfg: object) -> tuple[Frontend, Frontend]:
    config = dataclasses.replace(FrontendConfig(decoder=name), **cfg)
    torch.manual_seed(0)  # test-only: the decoder's default init
    fast = build_frontend(config, 32, dictionary, fast=True).to(dtype)
    dense = build_frontend(config, 32, dictionary, fast=False).to(dtype)
    dense.load_state_dict(fast.state_dict())
    return fast, dense


@pytest.mark.parametrize("name", [DecoderName.DEFAULT, DecoderName.SMALL, DecoderName.RESIZE])
def test_sparse_path_forward_equals_dense(name: DecoderName, cifar_dictionary: Dictionary,
                                          cifar_images: torch.Tensor) -> None:
    fast, dense = _pair(cifar_dictionary, name, torch.float32)
    with torch.no_grad():
        a, b = fast(cifar_images[:4]), dense(cifar_images[:4])
    assert float((a - b).abs().max()) <= 1e-4
    assert float(a.std()) > 0


@pytest.mark.parametrize("name, bpda_rule", [
    (DecoderName.DEFAULT, BPDA()), (DecoderName.SMALL, BPDA(top_u=20, steepness=2.0)),
    (DecoderName.SMALL, BPDA(top_u=0, steepness=0.0)),
])
def test_sparse_path_gradients_equal_dense(name: DecoderName, bpda_rule: BPDA,
                                           cifar_dictionary: Dictionary, cifar_images: torch.Tensor) -> None:
    # float64: in float32 a ReLU/clamp whose input is within rounding of 0 may flip between the two
    # summation orders, which moves a gradient by a whole unit's contribution
    fast, dense = _pair(cifar_dictionary, name, torch.float64)
    x = cifar_images[:2].double()
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = []
    for model in (fast, dense):
        model.encoder.bpda = bpda_rule
        model.zero_grad()
        xg = x.clone().requires_grad_()
        loss = (model(xg) - target).square().sum()
        loss.backward()
        grads.append([xg.grad] + [p.grad for p in model.parameters()])
    for g_fast, g_dense in zip(*grads):
        assert float(g_dense.abs().max()) > 0
        assert float((g_fast - g_dense).abs().max()) <= 1e-4 * max(1.0, float(g_dense.abs().max()))


def test_fast_path_is_chosen_when_codes_are_sparse(cifar_dictionary: Dictionary) -> None:
    frontend = build_frontend(FrontendConfig(decoder=DecoderName.SMALL), 32, cifar_dictionary)
    assert frontend._sparse()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = frontend(x)
    frontend.encoder.bpda = BPDA(top_u=0)  # the path never depends on the rule: same forward
    assert frontend._sparse() and torch.equal(frontend(x.requires_grad_()), before)
    no_top = build_frontend(FrontendConfig(decoder=DecoderName.SMALL, top_t=None), 32, cifar_dictionary)
    assert not no_top._sparse()
    many = build_frontend(FrontendConfig(decoder=DecoderName.SMALL, top_t=200), 32, cifar_dictionary)
    assert not many._sparse()
    with pytest.raises(ConfigError, match="fast path"):
        build_frontend(FrontendConfig(top_t=None), 32, cifar_dictionary, fast=True)
