"""Checks generated from the attack registry: every registered attack gets them automatically.

For each name of ``available_attacks()``: the result lies in the attack's ε-ball and in [0, 1],
``success`` is what the model says, a natural (undefended) model loses accuracy, the same
generator gives the same result, the docstring follows the template, the declared class
attributes are consistent, black-box attacks never ask for a gradient, and minimum-norm attacks
return a consistent :class:`~scfront.attacks.base.MinimumNormResult`.

A new attack must add its cheap toy-model settings to :data:`CHEAP`, or
``test_every_registered_attack_has_cheap_settings`` fails.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from scfront.attacks import (AttackResult, FixedBudgetAttack, MinimumNormAttack, MinimumNormResult, ThreatModel,
                             attack_class, available_attacks, create_attack)
from scfront.attacks.base import Attack
from scfront.attacks.blackbox import StartPool
from scfront.attacks.blackbox.stored import StoredAdversarials, StoredAttack, save_adversarials
from scfront.data import load_synthetic

STORED = "<stored adversarials of the toy model>"  # replaced by the file the fixture writes

# Settings at which each attack runs in well under a second on 16 toy images (8x8, 10 classes,
# clean accuracy 1.0) and, with its own budget, breaks a good part of them.
CHEAP: dict[str, dict[str, object]] = {
    "fgsm": dict(eps=0.1), "rfgsm": dict(eps=0.2),
    "pgd-linf": dict(eps=0.1, steps=10), "cw-linf": dict(eps=0.1, steps=10),
    "eot-pgd-linf": dict(eps=0.1, steps=10, eot_samples=2),
    "pgd-l2": dict(eps=1.5, steps=10),
    "pgd-l1": dict(eps=12.0, steps=20),  # the faithful dense L1 step is weak by design: a larger ball
    "pgd-l1-sparse": dict(eps=6.0, steps=10, quantile=0.95),  # 192 pixels: the top 5 % per step
    "apgd-ce": dict(eps=0.1, steps=10), "apgd-dlr": dict(eps=0.1, steps=10),
    "apgd-t": dict(eps=0.1, steps=5, n_target_classes=2), "fab": dict(eps=0.1, steps=10),
    "fab-t": dict(eps=0.1, steps=10, n_target_classes=2),
    "square": dict(eps=0.2, queries=100),
    "transfer": dict(eps=0.1, source=STORED),
    "boundary": dict(eps=3.0, steps=100),
    "hopskipjump": dict(eps=2.0, steps=3, init_evals=20, max_evals=40),
    "zoo": dict(eps=2.0, steps=20, binary_search_steps=2, coordinates=64, learning_rate=0.1, initial_const=10.0),
}
NAMES = available_attacks()
N_IMAGES = 16


@pytest.fixture(scope="module")
def pool() -> StartPool:
    """Natural (synthetic) images of every class, the start pool of the decision-based attacks."""
    return StartPool(load_synthetic(256, image_size=8, seed=2).images)


@pytest.fixture(scope="module")
def stored_file(tmp_path_factory: pytest.TempPathFactory, toy_model: nn.Module,
                toy_data: tuple[torch.Tensor, torch.Tensor]) -> Path:
    """pgd-linf adversarials of the toy model itself, as ``scfront evaluate`` stores them."""
    x, y = toy_data[0][:N_IMAGES], toy_data[1][:N_IMAGES]
    adv = create_attack("pgd-linf", eps=0.1, steps=10)(toy_model, x, y, generator=torch.Generator().manual_seed(9))
    n = x.shape[0]
    stored = StoredAdversarials(torch.arange(n), (x * 255).round().to(torch.uint8), y, y, torch.full((n,), -1),
                                (StoredAttack("pgd-linf", "Linf", 0.1, torch.arange(n), adv.x_adv, adv.success),))
    return save_adversarials(tmp_path_factory.mktemp("transfer") / "adversarials.safetensors", stored)


@pytest.fixture(scope="module")
def run(toy_model: nn.Module, toy_data: tuple[torch.Tensor, torch.Tensor], pool: StartPool, stored_file: Path):
    """``run(name, seed)``: (attack, x, y, result) with the CHEAP settings, computed once per key."""
    x, y = toy_data[0][:N_IMAGES], toy_data[1][:N_IMAGES]

    @functools.lru_cache(maxsize=None)
    def attack_and_result(name: str, seed: int = 0) -> tuple[Attack, torch.Tensor, torch.Tensor, AttackResult]:
        settings = {k: (str(stored_file) if v == STORED else v) for k, v in CHEAP[name].items()}
        attack = create_attack(name, **settings)
        result = attack(toy_model, x, y, generator=torch.Generator().manual_seed(seed), starts=pool)
        return attack, x, y, result

    return attack_and_result


def test_every_registered_attack_has_cheap_settings() -> None:
    missing = sorted(set(NAMES) - set(CHEAP))
    assert not missing, f"add toy-model settings for {missing} to CHEAP in {Path(__file__).name}"
    assert not sorted(set(CHEAP) - set(NAMES)), "CHEAP lists attacks that are not registered"
    assert {"pgd-linf", "apgd-ce", "square", "boundary", "zoo", "transfer"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_result_lies_in_the_ball_and_the_box(name: str, run, toy_model: nn.Module) -> None:
    attack, x, y, result = run(name)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert bool(attack.threat.contains(result.x_adv, x).all())
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    assert result.success.shape == y.shape and result.success.dtype == torch.bool
    with torch.no_grad():  # success is what the model says on the returned points
        assert torch.equal(result.success, toy_model(result.x_adv).argmax(1) != y)
    assert torch.allclose(result.extra["distance"], attack.threat.distance(result.x_adv, x))


@pytest.mark.parametrize("name", NAMES)
def test_lowers_the_accuracy_of_a_natural_model(name: str, run, toy_model: nn.Module) -> None:
    _, x, y, result = run(name)
    with torch.no_grad():
        clean = float((toy_model(x).argmax(1) == y).float().mean())
    robust = 1.0 - float(result.success.float().mean())
    assert clean == 1.0
    assert robust <= clean - 0.25, (name, clean, robust)


@pytest.mark.parametrize("name", NAMES)
def test_same_generator_same_result(name: str, run) -> None:
    _, _, _, first = run(name, 0)
    _, _, _, again = run.__wrapped__(name, 0)  # a fresh run, not the cached one
    assert torch.equal(first.x_adv, again.x_adv) and torch.equal(first.success, again.success)
    if isinstance(first, MinimumNormResult):
        assert isinstance(again, MinimumNormResult) and torch.equal(first.x_unbounded, again.x_unbounded)


@pytest.mark.parametrize("name", NAMES)
def test_docstring_follows_the_template(name: str) -> None:
    """Paper or idea on the first line; norm, defaults, shapes, the range [0, 1], an example."""
    doc = attack_class(name).__doc__ or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    cited = re.search(r"\b(19|20)\d\d\b", first) or name.split("-")[0].lower() in first.lower()
    assert first and cited, f"{name}: the first line must name the paper (author, year) or the idea"
    for needed in ("norm", "default", "(N, C, H, W)", "[0, 1]", "Example"):
        assert needed.lower() in doc.lower(), f"{name}: docstring lacks {needed!r}"


@pytest.mark.parametrize("name", NAMES)
def test_declared_kind_and_attributes(name: str, run) -> None:
    attack, _, _, result = run(name)
    cls = type(attack)
    assert isinstance(attack, FixedBudgetAttack) != isinstance(attack, MinimumNormAttack)
    assert isinstance(result, MinimumNormResult) == isinstance(attack, MinimumNormAttack)
    for flag in (cls.black_box, cls.randomized, cls.uses_starts):
        assert isinstance(flag, bool)
    assert isinstance(attack.threat, ThreatModel) and attack.threat.eps == pytest.approx(CHEAP[name]["eps"])
    assert isinstance(attack.eot_samples, int) and attack.eot_samples >= 1
    assert attack.bpda is None  # the cheap settings keep the model's own rules
    params = attack.params()
    json.dumps(params)  # results files hold them
    assert params["eps"] == pytest.approx(attack.threat.eps)
    if cls.randomized:  # built for random models: averages their randomness by default
        assert create_attack(name).eot_samples > 1


@pytest.mark.parametrize("name", [n for n in NAMES if attack_class(n).black_box])
def test_black_box_attacks_never_ask_for_a_gradient(name: str, toy_model: nn.Module, toy_data, pool: StartPool,
                                                    stored_file: Path) -> None:
    x, y = toy_data[0][:4], toy_data[1][:4]
    graphs: list[bool] = []
    hook = toy_model.register_forward_hook(lambda m, args, out: graphs.append(out.requires_grad))
    try:
        settings = {k: (str(stored_file) if v == STORED else v) for k, v in CHEAP[name].items()}
        create_attack(name, **settings)(toy_model, x, y, generator=torch.Generator().manual_seed(0), starts=pool)
    finally:
        hook.remove()
    assert graphs and not any(graphs)


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(attack_class(n), MinimumNormAttack)])
def test_minimum_norm_result_is_consistent(name: str, run, toy_model: nn.Module) -> None:
    attack, x, y, result = run(name)
    assert isinstance(result, MinimumNormResult)
    free, found, norm = result.x_unbounded, result.found, result.norm
    assert free.shape == x.shape and float(free.min()) >= 0.0 and float(free.max()) <= 1.0
    assert norm.dtype == torch.float64 and found.dtype == torch.bool
    with torch.no_grad():
        assert torch.equal(found, toy_model(free).argmax(1) != y)
    assert torch.equal(torch.isfinite(norm), found)  # inf exactly where nothing was found
    assert torch.allclose(norm[found], attack.threat.distance(free, x)[found])
    assert torch.equal(result.x_adv, attack.threat.project(free, x))  # the ε-constrained verdict
    assert bool(found.any())
