"""Attacks through the BPDA rules of a real Encoder, and PGD on the original ResNet-32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scfront.attacks import create_attack
from scfront.attacks.gradient import loss_and_grad
from scfront.attacks.losses import cross_entropy
from scfront.errors import ConfigError
from scfront.frontend import BPDA, use_bpda

encoder_module = pytest.importorskip("scfront.frontend.encoder")


def _defended_toy() -> nn.Module:
    """Encoder (20 random unit atoms 3x4x4, stride 2, T = 3) + a linear classifier, 8x8 input."""
    from scfront.dictionary.core import Dictionary

    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(20, 3, 4, 4, generator=g)
    atoms = atoms / atoms.flatten(1).norm(dim=1)[:, None, None, None]
    encoder = encoder_module.Encoder(Dictionary(atoms), stride=2, top_t=3, bpda=BPDA(top_u=6, steepness=4.0))
    head = nn.Linear(20 * 3 * 3, 10)
    with torch.no_grad():
        head.weight.copy_(0.1 * torch.randn(10, 180, generator=g))
        head.bias.zero_()
    return nn.Sequential(encoder, nn.Flatten(), head).eval()


def test_bpda_rules_change_the_gradient_and_are_restored(toy_data) -> None:
    model = _defended_toy()
    x, y = toy_data
    encoder = model[0]
    before = encoder.bpda

    def grad() -> torch.Tensor:
        return loss_and_grad(model, x, y, cross_entropy)[1]

    default = grad()
    with use_bpda(model, before):
        assert torch.equal(grad(), default)  # the model's own rules: the same gradient
    with use_bpda(model, BPDA(top_u=0, steepness=4.0)):  # identity through top-T
        identity_top = grad()
    with use_bpda(model, BPDA(top_u=6, steepness=0.0)):  # identity through the activation
        identity_act = grad()
    assert encoder.bpda == before
    assert not torch.allclose(identity_top, default)
    assert not torch.allclose(identity_act, default)
    # identity backward everywhere: the code gradient goes straight through the convolution
    with use_bpda(model, BPDA(top_u=0, steepness=0.0)):
        straight = grad()
    codes = encoder(x).detach().requires_grad_(True)
    (code_grad,) = torch.autograd.grad(cross_entropy(model[2](codes.flatten(1)), y).sum(), codes)
    xr = x.clone().requires_grad_(True)
    conv = nn.functional.conv2d(xr, encoder_atoms(encoder), stride=2)
    (expected,) = torch.autograd.grad(conv, xr, grad_outputs=code_grad)
    assert torch.allclose(straight, expected, atol=1e-5)


def encoder_atoms(encoder: nn.Module) -> torch.Tensor:
    for name, value in list(encoder.named_buffers()) + list(encoder.named_parameters()):
        if value.dim() == 4:
            return value.detach()
    raise AssertionError(f"no 4-D atom tensor in the encoder, names: {[n for n, _ in encoder.named_buffers()]}")


def test_attack_bpda_value_reaches_the_gradient(toy_data) -> None:
    model = _defended_toy()
    x, y = toy_data
    kw = dict(eps=0.1, steps=1, step_size=0.1, random_start=False)
    own = create_attack("pgd-linf", **kw)(model, x, y).x_adv
    same = create_attack("pgd-linf", bpda=BPDA(top_u=6, steepness=4.0), **kw)(model, x, y).x_adv
    identity = create_attack("pgd-linf", bpda=BPDA(top_u=0, steepness=0.0), **kw)(model, x, y).x_adv
    assert torch.equal(own, same)  # the model's rules given explicitly: bit-identical
    assert not torch.equal(own, identity)
    assert model[0].bpda == BPDA(top_u=6, steepness=4.0)  # restored after the attack
    # one signed step along the gradient of those rules (points misclassified already stay put)
    with use_bpda(model, BPDA(top_u=0, steepness=0.0)):
        grad = loss_and_grad(model, x, y, cross_entropy)[1]
    with torch.no_grad():
        attacked = model(x).argmax(1) == y
    assert 0 < int(attacked.sum()) and torch.equal(identity[~attacked], x[~attacked])
    assert torch.equal(identity[attacked], (x + 0.1 * grad.sign()).clamp(0, 1)[attacked])


def test_bpda_on_a_model_without_encoder_is_an_error_and_must_be_a_value(toy_model, toy_data) -> None:
    x, y = toy_data
    with pytest.raises(ConfigError, match="Encoder"):
        create_attack("fgsm", bpda=BPDA(top_u=30))(toy_model, x[:2], y[:2])
    with pytest.raises(ConfigError, match="bpda"):
        create_attack("pgd-linf", bpda={"top_u": 0})
    with pytest.raises(ConfigError, match="no parameter"):
        create_attack("pgd-linf", top_u=0)  # the old fields are gone: one BPDA value


def test_pgd_linf_breaks_the_original_natural_resnet32(reference_dir, data_root) -> None:
    from scfront.data import eval_subset, load_cifar10
    from scfront.models import import_original_resnet32

    model = import_original_resnet32(reference_dir / "checkpoints" / "resnet32_natural.pt")
    x, y = eval_subset(load_cifar10(data_root / "cifar10", "test"), 16, seed=0)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert clean >= 0.8
    attack = create_attack("pgd-linf", steps=10)  # a natural model falls in a few steps
    result = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    assert bool(attack.threat.contains(result.x_adv, x).all())
    assert bool(result.success.all())  # robust accuracy 0
