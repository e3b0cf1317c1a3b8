"""Black-box attacks on the trained toy MLP: beyond the registry-generated checks, each attack's own
behaviour (beats random noise, minimum-norm walks get closer, start pools, transfer files)."""

from __future__ import annotations

import math

import pytest
import torch

from scfront.attacks import MinimumNormAttack, MinimumNormResult, ThreatModel, create_attack
from scfront.attacks.blackbox import StartPool
from scfront.attacks.blackbox.stored import StoredAdversarials, StoredAttack, load_adversarials, save_adversarials
from scfront.errors import ConfigError


def _correct(model, x, y):
    keep = model(x).argmax(1) == y
    return x[keep], y[keep]


def _noise_accuracy(model, x, y, threat, gen):
    """Accuracy under random vertices of the ball: the baseline a search must beat."""
    if threat.norm.value == "Linf":
        delta = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -threat.eps, threat.eps)
    else:
        delta = torch.randn(x.shape, generator=gen)
        delta = delta / delta.flatten(1).norm(dim=1)[:, None, None, None] * threat.eps
    return float((model((x + delta).clamp(0, 1)).argmax(1) == y).float().mean())


@pytest.mark.parametrize("norm,eps", [("Linf", 0.15), ("L2", 2.0)])
def test_square_lowers_accuracy_and_stays_in_ball(toy_model, toy_data, norm, eps):
    x, y = _correct(toy_model, *toy_data)
    attack = create_attack("square", norm=norm, eps=eps, queries=150)
    result = attack(toy_model, x, y, generator=torch.Generator().manual_seed(0))
    threat = ThreatModel(norm, eps)
    assert threat.contains(result.x_adv, x).all()
    assert ((result.x_adv >= 0) & (result.x_adv <= 1)).all()
    accuracy = 1 - float(result.success.float().mean())
    baseline = _noise_accuracy(toy_model, x, y, threat, torch.Generator().manual_seed(1))
    assert accuracy < baseline - 0.1, (accuracy, baseline)
    # success is what the model says on the returned points
    assert torch.equal(result.success, toy_model(result.x_adv).argmax(1) != y)


@pytest.mark.parametrize("name,options", [
    ("boundary", {"steps": 150}),
    ("hopskipjump", {"steps": 4, "init_evals": 20, "max_evals": 40}),
    ("hopskipjump", {"norm": "Linf", "eps": 0.1, "steps": 3, "init_evals": 20, "max_evals": 40}),
    ("zoo", {"steps": 30, "binary_search_steps": 2, "coordinates": 64, "learning_rate": 0.1,
             "initial_const": 10.0}),
])
def test_minimum_norm_attacks(toy_model, toy_data, name, options):
    x, y = _correct(toy_model, *toy_data)
    x, y = x[:16], y[:16]
    gen_pool = torch.Generator().manual_seed(7)
    pool = StartPool(torch.rand(200, 3, 8, 8, generator=gen_pool))
    attack = create_attack(name, **options)
    assert isinstance(attack, MinimumNormAttack) and attack.uses_starts == (name != "zoo")
    result = attack(toy_model, x, y, generator=torch.Generator().manual_seed(0), starts=pool)
    assert isinstance(result, MinimumNormResult)
    threat = attack.threat
    # decision-based attacks start adversarial and never leave the adversarial side
    if attack.uses_starts:
        assert result.found.all()
        dist = torch.cdist(x.flatten(1), pool.images.flatten(1))
        dist[toy_model(pool.images).argmax(1)[None, :] == y[:, None]] = float("inf")
        start_dist = dist.min(1).values  # the nearest pool image of another label
        if threat.norm.value == "L2":
            assert (result.norm <= start_dist.double() + 1e-5).all()
            # the Boundary walk is slow (1 % of the distance per successful step)
            assert result.norm.median() < (0.9 if name == "boundary" else 0.8) * start_dist.median()
    else:
        assert result.found.float().mean() > 0.5
    assert threat.contains(result.x_adv, x).all()
    assert torch.allclose(result.x_adv, threat.project(result.x_unbounded, x))
    # the start pool is data given at call time: without it, noise starts (a different walk)
    if attack.uses_starts:
        noise = attack(toy_model, x, y, generator=torch.Generator().manual_seed(0))
        assert noise.found.all() and not torch.equal(noise.x_unbounded, result.x_unbounded)


def test_params_hold_hyperparameters_only_and_resolve_eps():
    params = create_attack("boundary").params()
    assert not {"pool", "unconstrained"} & set(params) and params["eps"] == pytest.approx(0.6)
    assert create_attack("square").params()["eps"] == pytest.approx(8 / 255)
    assert create_attack("hopskipjump", norm="Linf").threat == ThreatModel("Linf", 8 / 255)


def test_square_p_schedule_rescaled_or_autoattacks() -> None:
    """Rescaled (default) the nine halvings spread over the budget; AutoAttack's unscaled
    schedule halves at iterations 10, 50, ..., 4000 and never reaches 6000 or 8000 of 5,000."""
    from scfront.attacks.blackbox.square import p_at

    halvings = {it: round(math.log2(0.8 / p_at(0.8, it, 5000, rescale=False))) for it in range(5000)}
    changes = [it for it in range(1, 5000) if halvings[it] != halvings[it - 1]]
    assert changes == [11, 51, 201, 501, 1001, 2001, 4001] and halvings[4999] == 7
    rescaled = [it for it in range(1, 5000) if p_at(0.8, it, 5000) != p_at(0.8, it - 1, 5000)]
    assert len(rescaled) == 9 and rescaled[0] == 6 and p_at(0.8, 4999, 5000) == pytest.approx(0.8 / 512)
    assert p_at(0.8, 4999, 10000, rescale=False) == p_at(0.8, 4999, 10000)  # the same at 10,000 queries


def test_square_without_rescaled_schedule_is_another_search(toy_model, toy_data) -> None:
    x, y = _correct(toy_model, toy_data[0][:16], toy_data[1][:16])
    runs = {flag: create_attack("square", eps=0.1, queries=80, p_init=0.8, rescale_schedule=flag)(
        toy_model, x, y, generator=torch.Generator().manual_seed(0)) for flag in (True, False)}
    assert not torch.equal(runs[True].x_adv, runs[False].x_adv)
    for result in runs.values():
        assert bool(ThreatModel("Linf", 0.1).contains(result.x_adv, x).all())
    with pytest.raises(ConfigError, match="rescale_schedule"):
        create_attack("square", rescale_schedule="no")


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="norm"):
        create_attack("square", norm="L1")
    with pytest.raises(ConfigError, match="norm"):
        create_attack("boundary", norm="Linf")
    with pytest.raises(ConfigError, match="source"):
        create_attack("transfer")
    with pytest.raises(ConfigError, match="no parameter"):
        create_attack("boundary", pool=StartPool(torch.rand(3, 3, 4, 4)))  # data go to the call
    with pytest.raises(ConfigError, match="queries"):
        create_attack("square", queries=-1)
    with pytest.raises(ConfigError, match="max_evals"):
        create_attack("hopskipjump", init_evals=50, max_evals=10)


def test_transfer_from_stored_file(tmp_path, toy_model, toy_data):
    x, y = _correct(toy_model, *toy_data)
    x = (x * 255).round() / 255  # stored files match 8-bit images
    y = toy_model(x).argmax(1)
    source = create_attack("pgd-linf", eps=0.1, steps=10, step_size=0.02)
    adv = source(toy_model, x, y, generator=torch.Generator().manual_seed(0))
    n = x.shape[0]
    stored = StoredAdversarials(
        torch.arange(n), (x * 255).round().to(torch.uint8), y, y, torch.full((n,), -1),
        (StoredAttack("pgd-linf", "Linf", 0.1, torch.arange(n), adv.x_adv, adv.success),))
    path = save_adversarials(tmp_path / "adversarials.safetensors", stored)
    back = load_adversarials(path)
    assert torch.equal(back.attack("pgd-linf").x_adv, adv.x_adv)
    transfer = create_attack("transfer", source=str(path), eps=0.1)
    result = transfer(toy_model, x, y, generator=torch.Generator())
    # same model: the stored adversarials transfer perfectly, and are returned unchanged
    assert torch.equal(result.success, adv.success)
    assert torch.allclose(result.x_adv, adv.x_adv)
    # a smaller ball: projected, still inside
    small = create_attack("transfer", source=str(path), eps=0.02)(toy_model, x, y)
    assert ThreatModel("Linf", 0.02).contains(small.x_adv, x).all()
