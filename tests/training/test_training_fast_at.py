"""Adversarial training through the frontend: FGSM-RS, the BPDA gradient of the inner
maximisation, the early-stopping rule and its resumption, the defense_fast_at recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from scfront.attacks.gradient import GradientAttack, loss_and_grad
from scfront.config import TrainConfig, TrainMethod
from scfront.errors import ConfigError
from scfront.frontend import BPDA, use_bpda
from scfront.models import build_model
from scfront.models.saving import find_encoder
from scfront.training import loop
from scfront.training.adversarial import initial_perturbation, inner_attack, training_loss
from scfront.training.early_stop import RECORD_KEY, RobustnessCheck, held_out_split, judge
from scfront.training.loop import LOG_FILE, SUMMARY_FILE, train

from tiny_run import tiny_config  # type: ignore[import-not-found]

EPS = 8 / 255


def _batch(n: int = 16, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, size, size, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _linear() -> torch.nn.Module:
    torch.manual_seed(0)  # test-only: layer init
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))


# --------------------------------------------------------------------------- FGSM-RS
def test_fgsm_rs_is_one_projected_step_of_alpha_from_the_runs_uniform_start() -> None:
    model = _linear()
    x, y = _batch()
    config = TrainConfig(method="fgsm_rs")
    assert config.method is TrainMethod.FGSM_RS and config.fgsm_alpha == 1.25
    attack = inner_attack(config)
    assert attack.steps == 1 and attack.effective_step_size == pytest.approx(1.25 * EPS)
    # the start: the PGD random start drawn from the given (the run's attack) generator
    start = initial_perturbation(config, x, torch.Generator().manual_seed(5))
    same = attack.threat.random_start(x, torch.Generator().manual_seed(5))
    assert torch.equal(start, same)
    assert not torch.equal(start, initial_perturbation(config, x, torch.Generator().manual_seed(6)))
    assert (start - x).abs().max() <= EPS + 1e-7 and (start - x).abs().mean() > EPS / 4
    # one signed step of 1.25 eps from the start, projected onto the ball ∩ [0, 1]
    probe = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(probe), y, reduction="sum"), probe)
    expected = torch.minimum(torch.maximum(start + 1.25 * EPS * grad.sign(), (x - EPS).clamp(min=0)),
                             (x + EPS).clamp(max=1))
    x_adv = attack.ascend(model, x, y, start, keep_first=False)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-6)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # a step longer than the start's distance to the boundary: many coordinates end on it
    assert ((x_adv - x).abs() > EPS - 1e-6).float().mean() > 0.5
    # the training loss is PGD-AT's with one step of alpha (one implementation)
    pgd1 = TrainConfig(method="pgd_at", attack_steps=1, attack_step=1.25 * EPS)
    loss_fast, _ = training_loss(config, model, model, x, y, start)
    loss_pgd1, _ = training_loss(pgd1, model, model, x, y, start)
    assert torch.equal(loss_fast, loss_pgd1)
    assert loss_fast > F.cross_entropy(model(start), y)


def test_fgsm_rs_step_above_one_and_a_quarter_eps_is_refused() -> None:
    assert TrainConfig(method="fgsm_rs", fgsm_alpha=1.0).fgsm_alpha == 1.0
    with pytest.raises(ConfigError, match=r"train.fgsm_alpha must be in \(0, 1.25\], got 2.0"):
        TrainConfig(method="fgsm_rs", fgsm_alpha=2.0)
    with pytest.raises(ConfigError, match="early_stop_drop must be in"):
        TrainConfig(early_stop_drop=1.5)


def test_the_inner_maximisation_differentiates_the_frontend_with_the_models_bpda_rules(monkeypatch) -> None:
    config = tiny_config("defense_fast_at")
    assert (config.frontend.bpda_top_u, config.frontend.bpda_steepness) == (30, 4.0)
    model = build_model(config, generator=torch.Generator().manual_seed(0)).train()
    x, y = _batch(8, 16)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = GradientAttack.gradient

    def spy(self, model_, x_adv, y_, loss_fn):
        loss, grad, logits = original(self, model_, x_adv, y_, loss_fn)
        seen.append((x_adv.detach().clone(), grad))
        return loss, grad, logits

    monkeypatch.setattr(GradientAttack, "gradient", spy)
    start = initial_perturbation(config.train, x, torch.Generator().manual_seed(0))
    training_loss(config.train, model, model, x, y, start)
    monkeypatch.undo()
    assert len(seen) == 1 and torch.equal(seen[0][0], start)
    grad = seen[0][1]
    ce = lambda logits, labels: F.cross_entropy(logits, labels, reduction="none")  # noqa: E731
    with use_bpda(model, BPDA(top_u=30, steepness=4.0)):  # the configured rule, set explicitly
        _, rule, _ = loss_and_grad(model, start, y, ce)
    with use_bpda(model, BPDA(top_u=0, steepness=0.0)):  # another rule: the identity
        _, identity, _ = loss_and_grad(model, start, y, ce)
    torch.testing.assert_close(grad, rule, rtol=0, atol=0)
    assert grad.abs().sum() > 0 and not torch.allclose(grad, identity)
    # The exact gradient is zero: the codes are piecewise constant, the same after a tiny step.
    encoder = find_encoder(model)
    with torch.no_grad():
        assert torch.equal(encoder(start), encoder((start + 1e-6 * grad.sign()).clamp(0, 1)))


# --------------------------------------------------------------------------- the rule
def test_held_out_split_is_fixed_and_disjoint() -> None:
    held, rest = held_out_split(100, 10, seed=3)
    again, _ = held_out_split(100, 10, seed=3)
    assert torch.equal(held, again) and held.shape == (10,) and rest.shape == (90,)
    assert sorted(held.tolist() + rest.tolist()) == list(range(100))
    assert not torch.equal(held, held_out_split(100, 10, seed=4)[0])
    with pytest.raises(ConfigError, match="must be below the 10 training images"):
        held_out_split(10, 10, seed=0)


def _replay(series: list[tuple[float, float]], config: TrainConfig) -> list[dict]:
    verdicts, previous = [], None
    for epoch, (clean, robust) in enumerate(series, start=1):
        previous = judge(previous, epoch, clean, robust, config)
        verdicts.append(previous)
        if previous["stop"]:
            break
    return verdicts


def test_a_collapse_stops_and_names_the_best_epoch() -> None:
    config = TrainConfig(method="fgsm_rs", early_stop_images=10)  # drop 0.2, floor 0.02
    # rises, dips by less than 20 points, then falls 25 points below the best
    out = _replay([(0.3, 0.20), (0.4, 0.35), (0.45, 0.30), (0.5, 0.36), (0.6, 0.11), (0.7, 0.4)], config)
    assert [v["stop"] is None for v in out] == [True, True, True, True, False]
    assert [v["best_epoch"] for v in out] == [1, 2, 2, 4, 4]
    assert "more than 20 points below its best of 36.0 % (epoch 4)" in out[-1]["stop"]
    # exactly 20 points below the best is not a collapse (0.5 - 0.3 is 0.19999... in floats)
    assert _replay([(0.5, 0.5), (0.6, 0.3)], config)[-1]["stop"] is None
    # to ~0 while the clean accuracy rises, even when less than 20 points were lost
    out = _replay([(0.3, 0.12), (0.5, 0.01)], config)
    assert "collapsed to 1.0 %" in out[-1]["stop"] and out[-1]["best_epoch"] == 1
    # ... but not while the clean accuracy falls with it, nor from a best that was ~0 already
    assert _replay([(0.3, 0.12), (0.2, 0.01)], config)[-1]["stop"] is None
    assert _replay([(0.1, 0.01), (0.3, 0.0), (0.4, 0.0)], config)[-1]["stop"] is None


class _Scripted:
    """Stands in for RobustnessCheck.measure: scripted accuracies by epoch, and a copy of the
    weights measured at each epoch."""

    def __init__(self, robust: list[float], fail_at: int | None = None) -> None:
        self.robust, self.fail_at, self.calls = robust, fail_at, 0
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, model, batch_size, ctx):  # a class attribute, not bound: no self of the check
        self.calls += 1
        epoch = len(self.weights) + 1 + self.offset
        if epoch == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt  # killed during epoch `epoch`, after its training
        self.weights[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return 0.1 * epoch, self.robust[epoch - 1]

    offset = 0


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


EARLY = ("train.epochs=4", "train.early_stop_images=32", "data.monitor_images=16", "data.image_size=8",
         "data.train_limit=96")


def test_a_collapsing_run_stops_keeps_the_best_epoch_and_resumes_to_the_same_decision(
        tmp_path: Path, monkeypatch) -> None:
    config = tiny_config("fast_at", EARLY)
    robust = [0.3, 0.5, 0.25, 0.6]  # the best is epoch 2; epoch 3 is 25 points below it
    straight = _Scripted(robust)
    monkeypatch.setattr(RobustnessCheck, "measure", straight)
    summary = train(config, tmp_path / "straight", progress=False)
    history = [json.loads(line) for line in (tmp_path / "straight" / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]  # of 4: epoch 4 is never trained
    assert [r[RECORD_KEY]["stop"] is None for r in history] == [True, True, False]
    assert history[0][RECORD_KEY]["images"] == 32 and history[0][RECORD_KEY]["steps"] == 5
    assert _same(_weights(tmp_path / "straight"), straight.weights[2])  # the best epoch's weights
    stop = summary["early_stop"]
    assert stop["stopped"] and stop["model_epoch"] == 2 and stop["epochs_trained"] == 3
    assert summary["train_loss"] == history[1]["loss"]  # the metrics of the saved epoch
    assert summary["epochs"] == 4 and "more than 20 points" in stop["reason"]
    card = json.loads((tmp_path / "straight" / "model_card.json").read_text())
    assert card["metrics"]["early_stop"]["model_epoch"] == 2

    # Killed after epoch 3's training (before its checkpoint), then the same command again.
    killed = tmp_path / "killed"
    interrupted = _Scripted(robust, fail_at=3)
    monkeypatch.setattr(RobustnessCheck, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, killed, progress=False)
    assert json.loads((killed / "checkpoint.json").read_text())["epoch"] == 2
    resumed = _Scripted(robust)
    resumed.offset = 2
    monkeypatch.setattr(RobustnessCheck, "measure", resumed)
    assert train(config, killed, progress=False)["early_stop"] == stop
    assert sorted(resumed.weights) == [3]  # epoch 3 trained again, epoch 2's weights kept
    assert _same(_weights(killed), _weights(tmp_path / "straight"))

    # Killed after the stopping epoch's checkpoint, before the model was saved: no more training.
    late = tmp_path / "late"
    monkeypatch.setattr(RobustnessCheck, "measure", _Scripted(robust))
    finish = loop._Run.finish

    def killed_finish(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop._Run, "finish", killed_finish)
    with pytest.raises(KeyboardInterrupt):
        train(config, late, progress=False)
    monkeypatch.setattr(loop._Run, "finish", finish)
    never = _Scripted(robust)
    monkeypatch.setattr(RobustnessCheck, "measure", never)
    assert train(config, late, progress=False)["early_stop"] == stop and never.calls == 0
    assert _same(_weights(late), _weights(tmp_path / "straight"))


def test_defense_fast_at_trains_end_to_end(tmp_path: Path) -> None:
    config = tiny_config("defense_fast_at", ("train.early_stop_images=32", "data.monitor_images=16"))
    assert config.frontend.enabled and config.train.method is TrainMethod.FGSM_RS
    summary = train(config, tmp_path / "run", progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    for record in history:
        check = record[RECORD_KEY]
        assert 0 <= check["robust_accuracy"] <= check["clean_accuracy"] <= 1
        assert check["eps"] == EPS and check["step_size"] == pytest.approx(EPS / 4)
    assert summary["early_stop"]["images"] == 32 and summary["method"] == "fgsm_rs"
    assert json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())["history"] == history
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["dataset"]["train_images"] == 128 - 32  # the held-out images are not trained on


def test_without_the_check_nothing_changes_in_the_files(tmp_path: Path) -> None:
    summary = train(tiny_config("natural", ("train.epochs=1",)), tmp_path / "run", progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
    assert RECORD_KEY not in history[0] and "early_stop" not in summary
    assert set(history[0]) == {"epoch", "loss", "train_accuracy", "monitor_accuracy", "lr", "seconds",
                               "images_per_second"}
