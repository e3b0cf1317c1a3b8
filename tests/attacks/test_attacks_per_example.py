"""Per-example randomness and early exit, for every registered attack.

With per-example generators (:class:`~scfront.sampling.RowGenerators`) the result of an image
must not depend on its batch: the attack on a batch equals the attack on each half, and on the
batch in another order. Points that are broken leave the working batch (PGD, APGD, FAB, Square),
which must cost fewer model rows and change nothing: PGD and APGD are compared with reference
loops that compute every point for every step.

The model is the toy MLP run one image at a time (:class:`RowByRow`): batched BLAS kernels round
differently for different batch sizes (a row of a 16-image matrix product is not bitwise the row
of a 5-image one), which would hide what these tests check, the attacks' own bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from scfront.attacks import MinimumNormResult, attack_class, available_attacks, create_attack
from scfront.attacks.apgd import MOMENTUM, RHO, checkpoints
from scfront.attacks.blackbox import StartPool
from scfront.attacks.blackbox.stored import StoredAdversarials, StoredAttack, save_adversarials
from scfront.attacks.fab import FAB, _jacobian, project_hyperplane_linf
from scfront.attacks.gradient import loss_and_grad
from scfront.attacks.losses import make_loss
from scfront.attacks.threat import Norm, ThreatModel
from scfront.data import load_synthetic
from scfront.errors import InputError
from scfront.sampling import RowGenerators

N = 12
STORED = "<stored adversarials>"
# Cheap settings at which each attack breaks part (not all) of the toy images; the gradient
# attacks with restarts or targets, so that later runs see subsets of the batch.
SETTINGS: dict[str, dict[str, object]] = {
    "fgsm": dict(eps=0.1), "rfgsm": dict(eps=0.2),
    "pgd-linf": dict(eps=0.08, step_size=0.02, steps=10, restarts=2),
    "cw-linf": dict(eps=0.08, step_size=0.02, steps=10),
    "eot-pgd-linf": dict(eps=0.08, step_size=0.02, steps=10, eot_samples=2),
    "pgd-l2": dict(eps=1.0, steps=10, restarts=2), "pgd-l1": dict(eps=12.0, steps=10),
    "pgd-l1-sparse": dict(eps=6.0, steps=10, quantile=0.95, restarts=2),
    "apgd-ce": dict(eps=0.08, steps=10, restarts=2), "apgd-dlr": dict(eps=0.08, steps=10),
    "apgd-t": dict(eps=0.08, steps=5, n_target_classes=3), "fab": dict(eps=0.08, steps=10, restarts=2),
    "fab-t": dict(eps=0.08, steps=10, n_target_classes=3),
    "square": dict(eps=0.2, queries=60),
    "transfer": dict(eps=0.1, source=STORED),
    "boundary": dict(eps=2.0, steps=60),
    "hopskipjump": dict(eps=2.0, steps=3, init_evals=10, max_evals=20),
    "zoo": dict(eps=1.5, steps=10, binary_search_steps=2, coordinates=32, learning_rate=0.1, initial_const=10.0),
}
NAMES = available_attacks()


class RowByRow(nn.Module):
    """The wrapped model applied to one image at a time; records the size of every batch it gets.

    Attributes:
        calls: (batch size, whether a graph was built) of every forward pass.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((int(x.shape[0]), torch.is_grad_enabled()))
        if x.shape[0] == 0:
            return self.model(x)
        return torch.cat([self.model(x[i:i + 1]) for i in range(x.shape[0])])


@pytest.fixture(scope="module")
def images(toy_data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (N, 3, 8, 8), y (N,), ids (N,)): ``ids`` play the images' dataset indices."""
    x, y = toy_data
    return x[:N], y[:N], torch.arange(500, 500 + N)


@pytest.fixture(scope="module")
def pool() -> StartPool:
    return StartPool(load_synthetic(256, image_size=8, seed=2).images)


@pytest.fixture(scope="module")
def stored_file(tmp_path_factory: pytest.TempPathFactory, toy_model: nn.Module, images) -> Path:
    x, y, _ = images
    adv = create_attack("pgd-linf", eps=0.1, steps=10)(toy_model, x, y, generator=torch.Generator().manual_seed(9))
    stored = StoredAdversarials(torch.arange(N), (x * 255).round().to(torch.uint8), y, y, torch.full((N,), -1),
                                (StoredAttack("pgd-linf", "Linf", 0.1, torch.arange(N), adv.x_adv, adv.success),))
    return save_adversarials(tmp_path_factory.mktemp("transfer") / "adversarials.safetensors", stored)


def _settings(name: str, stored_file: Path) -> dict[str, object]:
    return {k: (str(stored_file) if v == STORED else v) for k, v in SETTINGS[name].items()}


def test_every_registered_attack_is_covered() -> None:
    assert sorted(SETTINGS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_an_images_result_does_not_depend_on_its_batch(name: str, toy_model: nn.Module, images, pool: StartPool,
                                                       stored_file: Path) -> None:
    x, y, ids = images
    model = RowByRow(toy_model)
    attack = create_attack(name, **_settings(name, stored_file))

    def run(rows: torch.Tensor):
        gen = RowGenerators.seeded(11, "attack", name, rows=ids[rows])
        return attack(model, x[rows], y[rows], generator=gen, starts=pool)

    whole = run(torch.arange(N))
    halves = [run(torch.arange(0, N // 2)), run(torch.arange(N // 2, N))]
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0))
    shuffled = run(order)
    fields = ["x_adv", "success"] + (["x_unbounded", "found", "norm"] if isinstance(whole, MinimumNormResult) else [])
    for f in fields:
        value = getattr(whole, f)
        assert torch.equal(value, torch.cat([getattr(h, f) for h in halves])), (name, f)
        assert torch.equal(value[order], getattr(shuffled, f)), (name, f)
    broken = int(whole.success.sum())
    assert 0 < broken < N, (name, broken)  # the halves differ in what breaks: bookkeeping is exercised


def test_a_batch_generator_makes_results_depend_on_the_batch(toy_model: nn.Module, images) -> None:
    """What the test above rules out: one torch.Generator shared by the batch."""
    x, y, _ = images
    attack = create_attack("pgd-linf", **SETTINGS["pgd-linf"])
    whole = attack(RowByRow(toy_model), x, y, generator=torch.Generator().manual_seed(0)).x_adv
    half = attack(RowByRow(toy_model), x[N // 2:], y[N // 2:], generator=torch.Generator().manual_seed(0)).x_adv
    assert not torch.equal(whole[N // 2:], half)


def test_per_example_generators_must_match_the_batch(toy_model: nn.Module, images) -> None:
    x, y, ids = images
    with pytest.raises(InputError, match="one per image"):
        create_attack("pgd-linf", steps=1)(toy_model, x, y, generator=RowGenerators.seeded(0, rows=ids[:3]))


# --------------------------------------------------------------------------- early exit
def _reference_pgd(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen) -> torch.Tensor:
    """PGD computing every point at every step; the first misclassified iterate (after ≥ 1 step)."""
    threat = attack.threat
    loss_fn = make_loss(attack.loss, attack.kappa)
    x_adv = threat.random_start(x, gen)
    found = torch.zeros(x.shape[0], dtype=torch.bool)
    x_found = x_adv.clone()
    for step in range(attack.steps):
        _, grad, logits = loss_and_grad(model, x_adv, y, loss_fn)
        if step > 0:
            new = (logits.argmax(1) != y) & ~found
            x_found[new], found = x_adv[new], found | new
        x_adv = threat.project(x_adv + attack.effective_step_size * attack.direction(grad, x_adv), x)
    return torch.where(found[:, None, None, None], x_found, x_adv)


def _reference_apgd(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen) -> torch.Tensor:
    """APGD (Croce & Hein 2020, Algorithm 1) computing every point at every step."""
    threat, n = attack.threat, x.shape[0]
    loss_fn = make_loss(attack.loss)
    x_cur = threat.random_start(x, gen)
    eta = torch.full((n, 1, 1, 1), 2.0 * attack.eps)
    f_cur, g_cur, logits = loss_and_grad(model, x_cur, y, loss_fn)
    found = logits.argmax(1) != y
    x_found, x_max, f_max, g_max, x_prev = x_cur.clone(), x_cur.clone(), f_cur.clone(), g_cur.clone(), x_cur.clone()
    checks, last, increases = checkpoints(attack.steps), 0, torch.zeros(n, dtype=torch.long)
    eta_check, f_check = eta.clone(), f_max.clone()
    for k in range(attack.steps):
        a = 1.0 if k == 0 else MOMENTUM
        z = threat.project(x_cur + eta * threat.normalize_step(g_cur), x)
        x_next = threat.project(x_cur + a * (z - x_cur) + (1.0 - a) * (x_cur - x_prev), x)
        f_next, g_next, logits = loss_and_grad(model, x_next, y, loss_fn)
        new = (logits.argmax(1) != y) & ~found
        x_found[new], found = x_next[new], found | new
        increases += (f_next > f_cur).long()
        better = f_next > f_max
        x_max[better], f_max[better], g_max[better] = x_next[better], f_next[better], g_next[better]
        x_prev, x_cur, f_cur, g_cur = x_cur, x_next, f_next, g_next
        if k + 1 in checks:
            halve = (increases.double() < RHO * (k + 1 - last)) | ((eta == eta_check).view(n) & (f_max <= f_check))
            eta_check, f_check = eta.clone(), f_max.clone()
            eta[halve] /= 2.0
            x_cur[halve], g_cur[halve], f_cur[halve] = x_max[halve], g_max[halve], f_max[halve]
            increases.zero_()
            last = k + 1
    return torch.where(found[:, None, None, None], x_found, x_max)


def _reference_fab_success(attack: FAB, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Success of FAB run on every point for every step (closest adversarial, projected onto the ball)."""
    n, xf = x.shape[0], x.flatten(1)
    x_cur, best = xf.clone(), xf.clone()
    best_norm = torch.full((n,), float("inf"), dtype=torch.float64)
    rows = torch.arange(n)
    for _ in range(attack.steps):
        logits, jac = _jacobian(model, x_cur.view_as(x))
        diff = logits - logits[rows, y][:, None]
        w = jac - jac[rows, y][:, None, :]
        dist = diff.abs() / (w.abs().sum(dim=2) + 1e-12)
        dist[rows, y] = float("inf")
        s = dist.argmin(dim=1)
        w_s = w[rows, s]
        b_s = diff[rows, s] - (w_s * x_cur).sum(dim=1)
        d_cur, d_orig = project_hyperplane_linf(x_cur, w_s, b_s), project_hyperplane_linf(xf, w_s, b_s)
        n_cur, n_orig = d_cur.abs().amax(dim=1), d_orig.abs().amax(dim=1)
        alpha = torch.clamp(n_cur / (n_cur + n_orig + 1e-12), max=attack.alpha_max)[:, None]
        x_next = ((1 - alpha) * (x_cur + attack.eta * d_cur) + alpha * (xf + attack.eta * d_orig)).clamp(0.0, 1.0)
        with torch.no_grad():
            fooled = model(x_next.view_as(x)).argmax(dim=1) != y
        norm = (x_next.double() - xf.double()).abs().amax(dim=1)
        closer = fooled & (norm < best_norm)
        best[closer], best_norm[closer] = x_next[closer], norm[closer]
        x_cur = torch.where(fooled[:, None], (1 - attack.beta) * xf + attack.beta * x_next, x_next)
    with torch.no_grad():
        return model(attack.threat.project(best.view_as(x), x)).argmax(1) != y


@pytest.mark.parametrize("name", ["pgd-linf", "cw-linf", "pgd-l2", "pgd-l1-sparse"])
def test_pgd_with_early_exit_returns_what_the_full_loop_returns(name: str, toy_model: nn.Module, images) -> None:
    x, y, ids = images
    model = RowByRow(toy_model)
    attack = create_attack(name, **{**SETTINGS[name], "restarts": 1})
    mine = attack.attack_once(model, x, y, RowGenerators.seeded(3, rows=ids))
    grad_rows = sum(size for size, graph in model.calls if graph)
    reference = _reference_pgd(attack, model, x, y, RowGenerators.seeded(3, rows=ids))
    assert torch.equal(mine, reference)
    with torch.no_grad():
        broken = int((toy_model(mine).argmax(1) != y).sum())
    assert broken >= N // 4
    assert grad_rows < N * attack.steps  # broken points were not computed any further


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-dlr"])
def test_apgd_with_early_exit_returns_what_the_full_loop_returns(name: str, toy_model: nn.Module, images) -> None:
    x, y, ids = images
    model = RowByRow(toy_model)
    attack = create_attack(name, **{**SETTINGS[name], "steps": 20, "restarts": 1})
    mine = attack.attack_once(model, x, y, RowGenerators.seeded(4, rows=ids))
    grad_rows = sum(size for size, graph in model.calls if graph)
    reference = _reference_apgd(attack, model, x, y, RowGenerators.seeded(4, rows=ids))
    assert torch.equal(mine, reference)
    with torch.no_grad():
        broken = int((toy_model(mine).argmax(1) != y).sum())
    assert broken >= N // 4
    assert grad_rows < N * (attack.steps + 1)


def test_fab_with_early_exit_breaks_the_same_points(toy_model: nn.Module, images) -> None:
    """FAB stops a point at its first adversarial inside the ball: the robust set is unchanged."""
    x, y, _ = images
    model = RowByRow(toy_model)
    attack = create_attack("fab", **{**SETTINGS["fab"], "restarts": 1})
    assert isinstance(attack, FAB)
    mine = attack.attack_once(model, x, y, None)
    grad_rows = sum(size for size, graph in model.calls if graph)
    assert bool(ThreatModel(Norm.LINF, attack.eps).contains(mine, x).all())
    with torch.no_grad():
        success = model(mine).argmax(1) != y
    assert torch.equal(success, _reference_fab_success(attack, model, x, y))
    assert int(success.sum()) >= N // 4 and grad_rows < N * attack.steps


@pytest.mark.parametrize("name", ["pgd-linf", "apgd-ce", "apgd-t", "fab", "fab-t", "square"])
def test_broken_points_leave_the_working_batch(name: str, toy_model: nn.Module, images) -> None:
    """Within a run the batches only shrink, and fewer rows than N × steps are computed."""
    x, y, ids = images
    model = RowByRow(toy_model)
    settings = {**SETTINGS[name], "restarts": 1} if "restarts" in SETTINGS[name] else dict(SETTINGS[name])
    attack = create_attack(name, **settings)
    result = attack(model, x, y, generator=RowGenerators.seeded(5, rows=ids))
    assert int(result.success.sum()) >= N // 4
    if attack_class(name).black_box:  # queries: the first margin, the search, the final check
        sizes, budget = [size for size, _ in model.calls[1:-1]], int(settings["queries"])
    else:  # the passes that build a graph: the gradients (FAB: Jacobians) of the iterations
        sizes, budget = [size for size, graph in model.calls if graph], int(settings["steps"])
    runs = int(settings.get("n_target_classes", 1))
    assert sum(sizes) < N * budget * runs
    if runs == 1:
        assert all(a >= b for a, b in zip(sizes, sizes[1:])) and sizes[-1] < N
