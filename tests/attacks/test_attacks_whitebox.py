"""White-box attacks on a tiny trained MLP: defaults, steps, restarts, determinism, EOT, losses.

The properties every attack has (ball, box, strength, determinism, docstring) are generated from
the registry in test_attacks_registry.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scfront.attacks import AttackResult, Norm, create_attack
from scfront.attacks.base import frozen_parameters
from scfront.attacks.gradient import keep_worst, loss_and_grad
from scfront.attacks.losses import cross_entropy, cw_margin, dlr, dlr_targeted, make_loss
from scfront.errors import ConfigError, InputError

# Budgets at which the toy model is partly robust (clean accuracy 1.0 on the held-out images).
BUDGET = {
    "fgsm": dict(eps=0.1), "rfgsm": dict(eps=0.2),
    "pgd-linf": dict(eps=0.1, step_size=0.01, steps=20), "cw-linf": dict(eps=0.1, step_size=0.01, steps=20),
    "eot-pgd-linf": dict(eps=0.1, step_size=0.01, steps=10, eot_samples=2),
    "pgd-l2": dict(eps=1.0, step_size=0.15, steps=20), "pgd-l1": dict(eps=6.0, step_size=0.75, steps=20),
    # 192-pixel toy images: the top 5 % (10 coordinates) per step; CIFAR-10 uses the top 1 %
    "pgd-l1-sparse": dict(eps=6.0, step_size=0.75, steps=20, quantile=0.95),
    "apgd-ce": dict(eps=0.1, steps=20), "apgd-dlr": dict(eps=0.1, steps=20),
    "apgd-t": dict(eps=0.1, steps=10, n_target_classes=3), "fab": dict(eps=0.1, steps=20),
}


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0, **kw) -> AttackResult:
    return create_attack(name, **{**BUDGET[name], **kw})(model, x, y, generator=torch.Generator().manual_seed(seed))


def test_paper_defaults() -> None:
    pgd = create_attack("pgd-linf")
    assert (pgd.eps, pgd.steps, pgd.random_start, pgd.restarts, pgd.bpda) == (8 / 255, 40, True, 1, None)
    cw = create_attack("cw-linf")
    assert (cw.eps, cw.effective_step_size, cw.steps, cw.loss.value, cw.kappa) == (8 / 255, 1 / 255, 40, "cw", 50.0)
    l2, l1 = create_attack("pgd-l2"), create_attack("pgd-l1")
    assert (l2.eps, l2.steps, l2.threat.norm) == (0.6, 40, Norm.L2)
    assert (l1.eps, l1.steps, l1.threat.norm, l1.projection.value) == (30.0, 40, Norm.L1, "radial")
    apgd = create_attack("apgd-t")
    assert (apgd.steps, apgd.n_target_classes, apgd.eps) == (100, 9, 8 / 255)
    assert create_attack("eot-pgd-linf").eot_samples > 1
    assert create_attack("rfgsm").alpha is None  # = eps / 2


def test_steps_are_relative_to_eps_and_exactly_the_papers_at_its_radii() -> None:
    """ε/8 everywhere: the paper's 1/255 at 8/255, 0.075 at 0.6 and 3.75 at 30, to the last bit."""
    exact = {"pgd-linf": 1.0 / 255.0, "cw-linf": 1.0 / 255.0, "eot-pgd-linf": 1.0 / 255.0, "pgd-l2": 0.075,
             "pgd-l1": 3.75, "pgd-l1-sparse": 3.75}
    for name, step in exact.items():
        attack = create_attack(name)
        assert (attack.rel_step_size, attack.step_size) == (1 / 8, None)
        assert attack.effective_step_size == step, name  # bit-identical to the old absolute defaults
        assert attack.params()["step_size"] == step
    assert create_attack("pgd-linf", eps=4 / 255).effective_step_size == 0.5 / 255  # --eps scales the step
    assert create_attack("pgd-linf", eps=4 / 255, rel_step_size=0.25).effective_step_size == 1 / 255
    assert create_attack("pgd-linf", eps=4 / 255, step_size=0.01).effective_step_size == 0.01  # absolute wins
    for bad in (dict(rel_step_size=0.0), dict(step_size=-1.0), dict(rel_step_size=float("nan"))):
        with pytest.raises(ConfigError, match="step_size"):
            create_attack("pgd-linf", **bad)


def test_default_step_equals_the_same_absolute_step(toy_model, toy_data) -> None:
    x, y = toy_data
    relative = _attack("pgd-linf", toy_model, x, y, eps=8 / 255, step_size=None, steps=5)
    absolute = _attack("pgd-linf", toy_model, x, y, eps=8 / 255, step_size=1 / 255, steps=5)
    assert torch.equal(relative.x_adv, absolute.x_adv)


def test_fgsm_is_one_signed_gradient_step_and_one_pgd_step(toy_model, toy_data) -> None:
    x, y = toy_data
    eps = 0.05
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(toy_model(xr), y, reduction="sum"), xr)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    fgsm = create_attack("fgsm", eps=eps)(toy_model, x, y)
    attacked = _accuracy(toy_model, x, y) == 1.0  # every point is attacked (none pre-fooled)
    assert attacked and torch.allclose(fgsm.x_adv, expected, atol=1e-6)
    pgd = create_attack("pgd-linf", eps=eps, step_size=eps, steps=1, random_start=False)(toy_model, x, y)
    assert torch.equal(pgd.x_adv, fgsm.x_adv)


def test_rfgsm_takes_a_random_step_then_a_shorter_gradient_step(toy_model, toy_data) -> None:
    x, y = toy_data
    r = _attack("rfgsm", toy_model, x, y)
    d = (r.x_adv - x).abs()
    interior = (x > 0.3) & (x < 0.7)  # far from the box: |δ| ∈ {0, eps} (eps/2 random + eps/2 signed)
    d = d[interior]
    assert bool(((d < 1e-6) | ((d - 0.2).abs() < 1e-6)).all())
    assert 0.3 < float((d > 0.1).float().mean()) < 0.7  # the random signs agree half of the time


def test_deterministic_with_a_seeded_generator(toy_model, toy_data) -> None:
    x, y = toy_data
    x, y = x[:16], y[:16]
    for name in ("pgd-linf", "apgd-ce", "pgd-l1-sparse"):
        a = _attack(name, toy_model, x, y, seed=7).x_adv
        b = _attack(name, toy_model, x, y, seed=7).x_adv
        c = _attack(name, toy_model, x, y, seed=8).x_adv
        assert torch.equal(a, b) and not torch.equal(a, c), name


def test_restarts_keep_the_per_example_worst_case(toy_model, toy_data) -> None:
    x, y = toy_data
    kw = dict(eps=0.1, step_size=0.02, steps=3)  # weak enough that restarts matter
    single = _attack("pgd-linf", toy_model, x, y, seed=3, **kw).success
    many = _attack("pgd-linf", toy_model, x, y, seed=3, restarts=4, **kw).success
    # the first restart sees the same randomness: every point it fools stays fooled
    assert bool((many | ~single).all())
    assert int(many.sum()) > int(single.sum())


def test_keep_worst_takes_first_success_else_smallest_margin() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # logits = x
    x = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])  # keep_worst is shape-agnostic
    y = torch.tensor([0, 0, 0, 0])  # the last point is already misclassified
    runs_seen = []

    def run(points: list[list[float]]):
        def f(rows: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, gen) -> torch.Tensor:
            assert torch.equal(xs, x[rows]) and torch.equal(ys, y[rows])
            runs_seen.append(xs.shape[0])
            return torch.tensor(points)[: xs.shape[0]]
        return f

    out = keep_worst(model, x, y, [
        run([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]]),  # margins 0.2, fooled, 0.6
        run([[0.7, 0.3], [0.7, 0.3]]),  # points 0 and 2 only: margin 0.4 (worse for 0, better for 2)
        run([[0.4, 0.6], [0.75, 0.25]]),  # fools point 0; margin 0.5 for point 2 (worse)
    ])
    assert runs_seen == [3, 2, 2]
    expected = torch.tensor([[0.4, 0.6], [0.3, 0.7], [0.7, 0.3], [0.2, 0.8]])
    assert torch.allclose(out, expected)  # point 3 was misclassified already: never attacked


def test_apgd_is_at_least_as_strong_as_pgd(toy_model, toy_data) -> None:
    x, y = toy_data
    pgd = _attack("pgd-linf", toy_model, x, y, eps=0.08, step_size=0.008, steps=20).success
    apgd = _attack("apgd-ce", toy_model, x, y, eps=0.08, steps=20).success
    assert 0 < int(pgd.sum()) < x.shape[0]
    assert int(apgd.sum()) >= int(pgd.sum())


def test_sparse_l1_is_stronger_than_the_faithful_l1(toy_model, toy_data) -> None:
    x, y = toy_data
    weak = _attack("pgd-l1", toy_model, x, y).success
    sparse = _attack("pgd-l1-sparse", toy_model, x, y).success
    assert int(sparse.sum()) > int(weak.sum())


def test_sparse_l1_direction_is_sparse_unit_and_box_aware() -> None:
    attack = create_attack("pgd-l1-sparse", quantile=0.9)
    g = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_adv = torch.full_like(g, 0.5)
    x_adv[0].view(-1)[g[0].abs().view(-1).argmax()] = 1.0 if g[0].view(-1)[g[0].abs().view(-1).argmax()] > 0 else 0.0
    d = attack.direction(g, x_adv).flatten(1)
    assert torch.allclose(d.abs().sum(dim=1), torch.ones(2))
    assert int((d[1] != 0).sum()) == 5  # ceil(0.1 · 48)
    assert float(d[0].view(-1)[g[0].abs().view(-1).argmax()]) == 0.0  # blocked by the box face
    assert bool((torch.sign(d) * torch.sign(g.flatten(1)) >= 0).all())


def test_losses_match_their_formulas() -> None:
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    t = torch.tensor([1, 2, 3, 4, 0, 4])
    for i in range(6):
        zi, yi = z[i].tolist(), int(y[i])
        other = max(v for j, v in enumerate(zi) if j != yi)
        s = sorted(zi, reverse=True)
        assert float(cw_margin(z, y, 50.0)[i]) == pytest.approx(-max(zi[yi] - other + 50.0, 0.0), abs=1e-5)
        assert float(cw_margin(z, y, 0.0)[i]) == pytest.approx(-max(zi[yi] - other, 0.0), abs=1e-5)
        assert float(dlr(z, y)[i]) == pytest.approx(-(zi[yi] - other) / (s[0] - s[2] + 1e-12), rel=1e-5)
        target = int(t[i])
        assert float(dlr_targeted(z, y, t)[i]) == pytest.approx(
            -(zi[yi] - zi[target]) / (s[0] - 0.5 * (s[2] + s[3]) + 1e-12), rel=1e-5)
    assert torch.allclose(cross_entropy(z, y), -torch.log_softmax(z, 1)[torch.arange(6), y])
    assert make_loss("cw")(z, y).shape == (6,)


class _RandomMaskModel(nn.Module):
    """A randomised model: a linear layer on the input times a Bernoulli mask from its own generator."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(12, 3)
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (torch.rand(x.shape, generator=self.generator) > 0.5).to(x.dtype)
        return self.linear((x * mask).flatten(1))


def test_eot_averages_the_gradient_over_samples() -> None:
    model = _RandomMaskModel()
    x = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0])
    state = model.generator.get_state()
    singles = [loss_and_grad(model, x, y, cross_entropy, 1) for _ in range(5)]
    model.generator.set_state(state)
    loss, grad, logits = loss_and_grad(model, x, y, cross_entropy, 5)
    assert torch.allclose(grad, torch.stack([g for _, g, _ in singles]).mean(0), atol=1e-6)
    assert torch.allclose(loss, torch.stack([l for l, _, _ in singles]).mean(0), atol=1e-6)
    assert torch.allclose(logits, torch.stack([z for _, _, z in singles]).mean(0), atol=1e-6)
    assert not torch.allclose(singles[0][1], singles[1][1])  # the model really is random


def test_eot_with_one_sample_equals_the_plain_attack(toy_model, toy_data) -> None:
    x, y = toy_data
    plain = _attack("pgd-linf", toy_model, x, y, seed=2)
    eot1 = _attack("eot-pgd-linf", toy_model, x, y, seed=2, eot_samples=1, steps=20)
    assert torch.equal(plain.x_adv, eot1.x_adv)
    # on a deterministic model more samples average identical gradients
    eot3 = _attack("eot-pgd-linf", toy_model, x, y, seed=2, eot_samples=3, steps=20)
    assert torch.allclose(plain.x_adv, eot3.x_adv, atol=1e-6)


def test_model_mode_and_parameters_are_left_alone(toy_model, toy_data) -> None:
    x, y = toy_data
    toy_model.train()
    try:
        before = [p.detach().clone() for p in toy_model.parameters()]
        _attack("apgd-ce", toy_model, x[:8], y[:8])
        assert toy_model.training  # restored
        assert all(p.grad is None for p in toy_model.parameters())
        assert all(torch.equal(a, b) for a, b in zip(before, toy_model.parameters()))
    finally:
        toy_model.eval()


def test_parameters_are_frozen_during_the_attack_and_restored(toy_model, toy_data) -> None:
    """Custom autograd functions then skip weight gradients; flags come back as they were."""
    x, y = toy_data
    seen: list[bool] = []  # per forward pass that builds a graph: does any parameter require grad?
    hook = toy_model.register_forward_pre_hook(
        lambda m, args: seen.append(any(p.requires_grad for p in m.parameters())) if torch.is_grad_enabled() else None)
    first = next(toy_model.parameters())
    first.requires_grad_(False)  # a user's own frozen parameter stays frozen
    try:
        _attack("pgd-linf", toy_model, x[:8], y[:8])
        assert seen and not any(seen)
        flags = [p.requires_grad for p in toy_model.parameters()]
        assert flags[0] is False and all(flags[1:])
        with pytest.raises(ZeroDivisionError):
            with frozen_parameters(toy_model):
                1 / 0
        assert [p.requires_grad for p in toy_model.parameters()] == flags
    finally:
        hook.remove()
        first.requires_grad_(True)


def test_bad_inputs_and_settings_raise_one_clear_error(toy_model, toy_data) -> None:
    x, y = toy_data
    attack = create_attack("fgsm")
    with pytest.raises(InputError, match=r"\[0.0, 1.0\]"):
        attack(toy_model, x * 2, y)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        attack(toy_model, nan, y)
    with pytest.raises(InputError, match="y must be"):
        attack(toy_model, x, y[:3])
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        attack(toy_model, x.flatten(1), y)
    with pytest.raises(ConfigError, match="unknown attack"):
        create_attack("pgd-l7")
    with pytest.raises(ConfigError, match="no parameter"):
        create_attack("pgd-linf", stepsize=0.1)
    with pytest.raises(ConfigError, match="steps"):
        create_attack("pgd-linf", steps=0)
    with pytest.raises(ConfigError, match="loss"):
        create_attack("pgd-linf", loss="hinge")
    with pytest.raises(ConfigError, match="norm"):
        create_attack("apgd-ce", norm="L1")
