"""BPDA gradients against the closed forms of docs/method.md §6, and the attack-time switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scfront.dictionary.core import Dictionary
from scfront.errors import ConfigError
from scfront.frontend import BPDA, Encoder, use_bpda

T, BETA, EPS = 2, 3.0, 8 / 255
JUMP = BETA * EPS


def closed_form_code_grad(x: torch.Tensor, atoms: torch.Tensor, weights: torch.Tensor,
                          top_u: int, steepness: float, stride: int = 1, top_t: int = T) -> torch.Tensor:
    """∂/∂z of Σ weights·codes under the BPDA rules, written out by hand."""
    z = F.conv2d(x, atoms, stride=stride)
    l1 = atoms.abs().sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
    rank = torch.argsort(torch.argsort(z.abs(), dim=1, descending=True), dim=1)  # 0 = largest
    kept = torch.where(rank < top_t, z, torch.zeros(()))
    grad_z = weights.clone()
    if steepness > 0:  # derivative of 0.5[tanh(s(u−j)) + tanh(s(u+j))] at u = kept/‖d‖₁
        u = kept / l1
        grad_z = grad_z * 0.5 * steepness * (torch.cosh(steepness * (u - JUMP)) ** -2
                                             + torch.cosh(steepness * (u + JUMP)) ** -2)
    if top_u > 0:  # 0: identity through top-T
        grad_z = grad_z * (rank < top_u)
    return grad_z


def closed_form_input_grad(x: torch.Tensor, atoms: torch.Tensor, weights: torch.Tensor,
                           top_u: int, steepness: float) -> torch.Tensor:
    """∂/∂x of Σ weights·codes (stride 1): the transposed convolution of ∂/∂z."""
    return F.conv_transpose2d(closed_form_code_grad(x, atoms, weights, top_u, steepness), atoms)


@pytest.fixture()
def setup(small_dictionary: Dictionary) -> tuple[Encoder, torch.Tensor, torch.Tensor]:
    encoder = Encoder(small_dictionary, stride=1, top_t=T, beta=BETA, assumed_eps=EPS).double()
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64)
    weights = torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64)
    return encoder, x, weights


def input_grad(encoder: Encoder, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad((encoder(x) * weights).sum(), x)
    return grad


@pytest.mark.parametrize("top_u, steepness", [(4, 4.0), (1, 4.0), (8, 10.0), (0, 4.0), (4, 0.0), (0, 0.0)])
def test_gradient_matches_closed_form(setup: tuple, top_u: int, steepness: float) -> None:
    encoder, x, weights = setup
    encoder.bpda = BPDA(top_u=top_u, steepness=steepness)
    expected = closed_form_input_grad(x, encoder.atoms, weights, top_u, steepness)
    assert float(expected.abs().max()) > 0
    torch.testing.assert_close(input_grad(encoder, x, weights), expected, rtol=1e-10, atol=1e-12)


def test_identity_rules_pass_gradient_unchanged(setup: tuple) -> None:
    encoder, x, weights = setup
    encoder.bpda = BPDA(top_u=0, steepness=0.0)
    z = F.conv2d(x.clone().requires_grad_(), encoder.atoms)
    codes = torch.autograd.functional.vjp(lambda t: encoder._activate(t, encoder.l1_norms().view(1, -1, 1, 1)),
                                          z, weights)[1]
    assert torch.equal(codes, weights)  # straight through the activation
    torch.testing.assert_close(input_grad(encoder, x, weights), F.conv_transpose2d(weights, encoder.atoms),
                               rtol=1e-12, atol=1e-12)


def test_rules_change_gradient_not_forward(setup: tuple) -> None:
    encoder, x, weights = setup
    model = nn.Sequential(nn.Identity(), nn.Sequential(encoder))
    forward, grad = encoder(x), input_grad(encoder, x, weights)
    seen = []
    for top_u, steepness in [(3, 4.0), (0, 8.0), (4, 1.0), (4, 0.0)]:
        with use_bpda(model, BPDA(top_u, steepness)) as changed:
            assert changed == [encoder] and encoder.bpda == BPDA(top_u, steepness)
            assert torch.equal(model(x), forward)
            seen.append(input_grad(encoder, x, weights))
        assert encoder.bpda == BPDA()  # restored
    for other in seen:
        assert not torch.allclose(other, grad)
    # every encoder of the model gets the rules, each gets its own previous rule back
    second = Encoder(encoder.dictionary(), stride=1, top_t=T, beta=BETA, assumed_eps=EPS,
                     bpda=BPDA(top_u=5, steepness=1.0)).double()
    pair = nn.Sequential(encoder, nn.Sequential(second))
    with use_bpda(pair, BPDA(top_u=0, steepness=0.0)) as changed:
        assert changed == [encoder, second]
        assert encoder.bpda == second.bpda == BPDA(top_u=0, steepness=0.0)
    assert encoder.bpda == BPDA() and second.bpda == BPDA(top_u=5, steepness=1.0)


def test_rules_restored_after_error_and_no_encoder_is_an_error(setup: tuple) -> None:
    encoder, _, _ = setup
    with pytest.raises(RuntimeError, match="boom"):
        with use_bpda(encoder, BPDA(top_u=0)):
            raise RuntimeError("boom")
    assert encoder.bpda == BPDA()
    with pytest.raises(ConfigError, match="no sparse coding Encoder"):
        with use_bpda(nn.Linear(2, 2), BPDA(top_u=3)):
            pass
    with pytest.raises(ConfigError, match="BPDA value"):
        with use_bpda(encoder, {"top_u": 3}):  # type: ignore[arg-type]
            pass
    assert encoder.bpda == BPDA()


def test_zero_means_identity_and_none_is_refused() -> None:
    """``0`` is the identity for both rules, as on the command line; ``None`` points to 0."""
    assert BPDA(top_u=0, steepness=0).steepness == 0.0
    with pytest.raises(ConfigError, match="top_u=0"):
        BPDA(top_u=None)  # type: ignore[arg-type]
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="top_u"):
            BPDA(top_u=bad)  # type: ignore[arg-type]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="steepness"):
            BPDA(steepness=bad)


def test_sparse_slot_gradients_on_cifar(cifar_dictionary: Dictionary, cifar_images: torch.Tensor) -> None:
    """500 atoms, U = 30: the image and atom gradients go through the 30 kept slots only."""
    encoder = Encoder(cifar_dictionary, learnable=True).double()
    x = cifar_images[:2].double().requires_grad_()
    weights = torch.randn(2, 500, 15, 15, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grad_x, grad_atoms = torch.autograd.grad((encoder(x) * weights).sum(), (x, encoder.atoms))
    atoms = encoder.atoms.detach()
    grad_z = closed_form_code_grad(x.detach(), atoms, weights, 30, 4.0, stride=2, top_t=15)
    torch.testing.assert_close(grad_x, F.conv_transpose2d(grad_z, atoms, stride=2), rtol=1e-9, atol=1e-12)
    expected_atoms = torch.nn.grad.conv2d_weight(x.detach(), atoms.shape, grad_z, stride=2)
    torch.testing.assert_close(grad_atoms, expected_atoms, rtol=1e-9, atol=1e-12)
