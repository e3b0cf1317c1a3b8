"""The attack-time fast model: BatchNorm folded where it reads a convolution's output, verified.

Every model here has non-trivial BatchNorm statistics (random running mean/variance and affine
parameters), so a fold with a wrong formula, into the wrong convolution or across a residual
sum changes the logits far beyond the 1e-4 bound.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import scfront
from scfront.config import DecoderName, FrontendConfig
from scfront.dictionary.core import Dictionary
from scfront.frontend import BPDA, build_frontend, use_bpda
from scfront.models import create_model
from scfront.models import fast as fast_module
from scfront.models.defended import DefendedModel
from scfront.models.efficientnet import EfficientNet
from scfront.models.fast import (LOGIT_TOLERANCE, FoldedBatchNorm, compare_models, fold_batchnorm,
                                 prepare_for_attack, relative_errors)
from scfront.models.layers import SeededDropout
from scfront.models.preact_resnet import PreActResNet

GRAD_TOLERANCE = 1e-4  # per-image relative L2 error of the input gradient, median over images


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters in every BatchNorm2d (in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=gen) * 2.0 + 0.2)
                module.weight.copy_(torch.randn(n, generator=gen) * 0.5 + 1.0)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.3)
    return model


def images(n: int, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def logits_and_gradient(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    labels = torch.arange(logits.shape[0]) % logits.shape[1]
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, labels), xr)
    return logits.detach(), grad


def assert_matches(fast: nn.Module, plain: nn.Module, x: torch.Tensor) -> None:
    """Logits within 1e-4 relative; input gradients within GRAD_TOLERANCE (median per image)."""
    ref_logits, ref_grad = logits_and_gradient(plain, x)
    logits, grad = logits_and_gradient(fast, x)
    rel = float((logits - ref_logits).abs().max() / ref_logits.abs().max())
    assert rel <= LOGIT_TOLERANCE, rel
    assert float(relative_errors(grad, ref_grad).median()) <= GRAD_TOLERANCE
    # the gradient comes back in the plain model's layout (NCHW for scfront's classifiers)
    assert grad.is_contiguous() == ref_grad.is_contiguous()


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


def assert_unchanged(model: nn.Module, before: tuple[dict[str, torch.Tensor], list[bool], list[bool]]) -> None:
    state, modes, flags = before
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not any(isinstance(m, FoldedBatchNorm) for m in model.modules())


def test_resnet32_folds_the_conv_bn_pairs_only_and_leaves_the_original_alone() -> None:
    model = randomize_batchnorm(create_model("resnet32"))
    model.train()  # the original's own mode must survive (the copy is in eval mode)
    before = snapshot(model)
    x = images(6)
    fast = prepare_for_attack(model, x)
    prep = fast.attack_preparation
    assert prep.mode == "fold" and prep.fallback is None and prep.agreement.ok
    # pre-activation units: only conv1 -> bn2 of each of the 15 units reads a convolution;
    # bn1 (after the residual sum, or on the raw stem output that conv1 also reads) and the
    # final bn1 stay
    assert len(prep.folded) == 15
    assert all(c.endswith(".conv1") and b.endswith(".bn2") for c, b in prep.folded)
    assert ("block1.0.conv1", "block1.0.bn2") in prep.folded
    assert len(prep.unfolded) == 16 and "bn1" in prep.unfolded and "block2.0.bn1" in prep.unfolded
    assert isinstance(fast.block3[4].bn2, FoldedBatchNorm)
    assert not fast.training and not any(m.training for m in fast.modules())
    assert not any(p.requires_grad for p in fast.parameters())
    assert fast.block1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert_unchanged(model, before)
    assert_matches(fast, model.eval(), x)
    assert logits_and_gradient(fast, x)[1].is_contiguous()


def test_preact_resnet_folds_into_conv_including_the_stem() -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = randomize_batchnorm(PreActResNet(depths=(1, 1, 1, 1), widths=(8, 8, 8, 8))).eval()
    x = images(4, size=16)
    fast = prepare_for_attack(model, x)
    folded = set(fast.attack_preparation.folded)
    # conv1 -> bn2 and conv2 -> bn3 in each unit; the stem conv feeds only the first unit's bn1
    # (that unit's shortcut is a conv of the activated input)
    assert ("conv1", "stages.0.0.bn1") in folded and len(folded) == 9
    assert set(fast.attack_preparation.unfolded) == {"stages.1.0.bn1", "stages.2.0.bn1", "stages.3.0.bn1", "bn"}
    assert_matches(fast, model, x)


def test_efficientnet_folds_every_batchnorm() -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = randomize_batchnorm(EfficientNet(stem_stride=1, stages=((1, 3, 1, 16, 1), (6, 3, 2, 24, 2)))).eval()
    x = images(3, size=16)
    fast = prepare_for_attack(model, x)
    assert fast.attack_preparation.unfolded == ()
    assert len(fast.attack_preparation.folded) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert_matches(fast, model, x)


def random_dictionary(seed: int) -> Dictionary:
    atoms = torch.randn(500, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return Dictionary(atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1))


def test_defended_model_keeps_its_encoder_and_bpda_rules() -> None:
    torch.manual_seed(0)  # test-only: layer init
    frontend = build_frontend(FrontendConfig(decoder=DecoderName.SMALL), 32, random_dictionary(3))
    model = DefendedModel(frontend, randomize_batchnorm(create_model("resnet32"))).eval()
    before = snapshot(model)
    x = images(4)
    fast = prepare_for_attack(model, x)
    assert len(fast.attack_preparation.folded) == 15
    assert all(c.startswith("classifier.") for c, _ in fast.attack_preparation.folded)
    assert type(fast) is DefendedModel and fast.encoder is not model.encoder
    assert fast.encoder.generator is model.encoder.generator  # random streams are shared
    assert_matches(fast, model, x)  # the default rule, BPDA(top_u=30, steepness=4)
    identity = BPDA(top_u=0, steepness=0.0)
    with use_bpda(fast, identity), use_bpda(model, identity):
        assert_matches(fast, model, x)
        _, identity_grad = logits_and_gradient(fast, x)
    _, default_grad = logits_and_gradient(fast, x)
    assert float(relative_errors(identity_grad, default_grad).median()) > 1e-2  # the rules still act
    assert model.encoder.bpda == BPDA() and fast.encoder.bpda == BPDA()
    assert_unchanged(model, before)


class UserNet(nn.Module):
    """A user's network: Sequential conv -> bn -> relu, a conv whose output a BatchNorm and a
    residual sum both read, a BatchNorm after a pooling layer, and a data-dependent branch that
    torch.fx cannot trace (so its parts are analysed one by one)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pool_bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        y = self.conv(h)
        h = F.relu(self.bn(y) + y)
        if float(h.detach().mean()) > 1e3:  # data-dependent control flow
            h = h / 2
        h = self.pool_bn(F.max_pool2d(h, 2))
        return self.head(h.mean(dim=(2, 3)))


class Traceable(nn.Module):
    """Traceable: conv -> bn read by the residual sum too (unfoldable), then conv -> Identity -> bn."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.skip, self.bn2 = nn.Conv2d(8, 8, 1), nn.Identity(), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        h = F.relu(self.bn1(y) + y)
        h = self.bn2(self.skip(self.conv2(h)))
        return self.head(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("net, folded, unfolded", [
    (UserNet, {("features.0", "features.1")}, {"bn", "pool_bn"}),
    (Traceable, {("conv2", "bn2")}, {"bn1"}),
])
def test_user_models_fold_what_can_be_folded(net: type[nn.Module], folded: set, unfolded: set) -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = randomize_batchnorm(net()).eval()
    before = snapshot(model)
    x = images(4, size=8)
    fast = prepare_for_attack(model, x)
    assert set(fast.attack_preparation.folded) == folded
    assert set(fast.attack_preparation.unfolded) == unfolded
    # NCHW model: its weights keep their layout (a channels-last weight would change the
    # layout of its activations and input gradient)
    assert fast.attack_preparation.channels_last == ()
    assert_matches(fast, model, x)
    assert_unchanged(model, before)


def test_model_without_batchnorm_is_returned_working() -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    x = images(3, size=8)
    fast = prepare_for_attack(model, x)
    assert fast is not model and fast.attack_preparation.folded == () and fast.attack_preparation.mode == "fold"
    assert torch.equal(fast(x), model(x))
    assert_matches(fast, model, x)


def test_a_wrong_fold_is_caught_by_the_check(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    model = randomize_batchnorm(create_model("resnet32")).eval()
    x = images(4)
    real_fold = fast_module.fold_into

    def wrong_fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        real_fold(conv, bn)
        with torch.no_grad():
            conv.bias.add_(0.05)  # a small error in the folded shift

    monkeypatch.setattr(fast_module, "fold_into", wrong_fold)
    with caplog.at_level(logging.WARNING, logger="scfront.models.fast"):
        fast = prepare_for_attack(model, x)
    prep = fast.attack_preparation
    assert prep.mode == "plain" and prep.requested == "auto" and prep.folded == ()
    assert "fold: logits differ" in prep.fallback and "falling back to 'plain'" in caplog.text
    assert torch.equal(fast(x), model(x))  # the plain copy computes exactly what the model does
    with pytest.raises(RuntimeError, match="does not match the plain one"):
        prepare_for_attack(model, x, on_mismatch="raise")
    agreement = compare_models(fold_batchnorm(model, x)[0], model, x)
    assert not agreement.ok and agreement.logits > LOGIT_TOLERANCE


def test_folded_copy_refuses_training_and_random_layers_share_generators() -> None:
    model = randomize_batchnorm(create_model("resnet32_dropout")).eval()
    generator = torch.Generator().manual_seed(5)
    dropout = next(m for m in model.modules() if isinstance(m, SeededDropout))
    dropout.generator = generator
    state = generator.get_state()
    x = images(4)
    fast = prepare_for_attack(model, x)  # the check runs both models on the same random draws
    assert fast.attack_preparation.mode == "fold" and fast.attack_preparation.agreement.ok
    assert torch.equal(generator.get_state(), state)  # preparing draws nothing for good
    assert next(m for m in fast.modules() if isinstance(m, SeededDropout)).generator is generator
    with torch.no_grad():
        first = fast(x)
        generator.set_state(state)
        assert torch.allclose(model(x), first, rtol=0, atol=1e-4 * float(first.abs().max()))
    fast.train()
    with pytest.raises(RuntimeError, match="folded into the preceding convolution"):
        fast(x)


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_jit_mode_scripts_inference_and_keeps_eager_gradients() -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))).eval()
    model.register_forward_pre_hook(lambda _m, args: (args[0] * 0.5,))  # e.g. an input check
    x = images(4, size=8)
    fast = prepare_for_attack(model, x, mode="jit")
    prep = fast.attack_preparation
    assert prep.mode == "jit" and prep.compiled == ("",) and prep.folded == (("0", "1"),)
    assert isinstance(fast.fast, torch.jit.ScriptModule)
    eager_calls: list[bool] = []
    fast.eager.register_forward_pre_hook(lambda _m, _a: eager_calls.append(torch.is_grad_enabled()))
    with torch.inference_mode():
        rel = float((fast(x) - model(x)).abs().max() / model(x).abs().max())
    # inference ran the frozen trace, and the model's hook (which a trace drops) ran too
    assert rel <= LOGIT_TOLERANCE and eager_calls == []
    assert_matches(fast, model, x)
    assert eager_calls == [True]  # the gradient call ran the folded eager module


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        prepare_for_attack(nn.Linear(2, 2), torch.zeros(1, 2), mode="fastest")  # type: ignore[arg-type]


def test_original_pgd_at_checkpoint(reference_dir: Path) -> None:
    model = scfront.load(reference_dir / "checkpoints" / "resnet32_pgd_at.pt")
    x = images(6)
    fast = prepare_for_attack(model, x)
    assert fast.attack_preparation.mode == "fold" and len(fast.attack_preparation.folded) == 15
    assert_matches(fast, model, x)
