"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"; the AutoAttack flags) as objects in a registry.

A check is a class registered with :func:`register_check`. It has a :meth:`~Check.verdict` that
judges a raw record against the evaluation's results, and a ``run`` that produces the record:

- a :class:`ModelCheck` runs on the model and the first ``check_images`` images of the subset
  (:class:`CheckInputs`); its record is stored in ``state/checks/<name>.json`` as soon as it is
  done, so a killed run keeps the finished checks;
- a :class:`ResultsCheck` is computed from the collected results of the evaluation alone
  (:class:`~scfront.evaluation.results.Collected`), when the results are written.

Which kind a check is, is declared by its class (:attr:`Check.from_results`); no code anywhere
treats a check differently because of its name. The registered checks, in report order:

- ``large-eps``: PGD-Linf from the clean image (no random start, so that noise alone cannot
  succeed) at ε = 128/255, 100 steps of 2.5ε/100. Half the pixel range lets an attacker paint
  the image grey; an attack that works drives accuracy to ≈ 0. Passes if accuracy ≤ 1 %.
  (At 64/255 a strong model can keep a few percent: the paper's own defense kept 6.25 %.)
- ``more-steps``: the suite's first white-box attack with a ``steps`` parameter (else pgd-linf),
  run with its steps and with twice as many on the same seed; passes if doubling the steps lowers
  accuracy by at most 1 point (more steps must not keep finding new adversarials).
- ``gradients-nonzero``: fraction of correctly classified check images whose input gradient of
  the margin ``z_y − max_{j≠y} z_j`` is exactly zero (a zero-gradient front, saturation);
  passes if ≤ 1 %.
- ``deterministic``: two forward passes give identical logits, or every gradient attack of the
  suite averages gradients over EOT samples (``eot_samples > 1``).
- ``blackbox-vs-whitebox`` (from the results): images broken by a black-box attack although
  every white-box attack of the same norm and at least the same ε ran on them and failed, in
  whichever column those attacks are (so a Table 1 row compares its Square column with its
  PGD and APGD columns). Black-box attacks should not beat gradients; passes if such images are
  ≤ 1 % of the subset (noise: random search does find a few points near the boundary that PGD
  misses).
- ``bpda-variants`` (models with a sparse coding frontend only): PGD-Linf with other BPDA rules
  (identity through top-T, identity through the activation, both, wider top-U, steeper tanh);
  passes if none of them leaves the check images more than 1 point less accurate than the
  suite's per-example worst case on the same images.

Every check that runs attacks draws from per-image streams keyed by the seed, ``"check"``, its
name and the image's dataset index (:func:`~scfront.evaluation.spec.unit_generators`), so its
record is the same in every run and every shard.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

from scfront.attacks.base import Attack, predict
from scfront.attacks.losses import margin
from scfront.attacks.registry import create_attack
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError
from scfront.evaluation.results import Collected
from scfront.naming import NameRegistry
from scfront.evaluation.spec import EvalSpec, unit_generators
from scfront.evaluation.state import StateStore
from scfront.attacks.registry import with_params
from scfront.frontend.bpda import BPDA
from scfront.frontend.encoder import Encoder
from scfront.sampling import RowGenerators, rows_of

__all__ = ["BPDA_VARIANTS", "Check", "CheckInputs", "ModelCheck", "ResultsCheck", "Verdict",
           "available_checks", "check_class", "checks_complete", "create_checks", "judge_checks",
           "register_check", "run_checks"]

log = logging.getLogger(__name__)

LARGE_EPS = 128.0 / 255.0
LARGE_EPS_STEPS = 100
LARGE_EPS_MAX_ACCURACY = 0.01
MORE_STEPS_TOLERANCE = 0.01
ZERO_GRADIENT_MAX_FRACTION = 0.01
BLACKBOX_NOISE = 0.01
BPDA_TOLERANCE = 0.01
# (top_u, steepness) at attack time: 0 = identity (docs/method.md §6; the paper's rule is (30, 4)).
BPDA_VARIANTS = ((30, 4.0), (0, 4.0), (30, 0.0), (0, 0.0), (60, 4.0), (30, 16.0))
NOT_RUN = "not run (the shard that owns batch 0 has not finished its checks)"


# --------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Verdict:
    """A check's judgement.

    Attributes:
        passed: whether the check passed. detail: one sentence with the numbers it rests on.
        values: the numbers themselves (JSON values), e.g. ``{"accuracy": 0.0}``.
    """

    passed: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"passed", **values, "detail"}``: the entry of results.json ``checks``."""
        return {"passed": self.passed, **self.values, "detail": self.detail}


@dataclass(frozen=True)
class CheckInputs:
    """What a :class:`ModelCheck` runs on.

    Attributes:
        model: maps (k, C, H, W) float in [0, 1] to logits, in eval mode on ``x``'s device.
        x: (k, C, H, W) float in [0, 1]: the first ``check_images`` images of the subset.
        y: (k,) int64 true labels. attacks: the evaluation's suite, in order.
        seed: the evaluation's base seed (:attr:`EvalSpec.seed`).
        indices: (k,) int64 dataset indices of the images (``None``: 0, ..., k − 1).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    attacks: tuple[Attack, ...]
    seed: int
    indices: torch.Tensor | None = None

    def generator(self, check: str) -> RowGenerators:
        """Fresh per-image streams of check ``check``: ``unit_generators(seed, indices, "check", check)``."""
        images = torch.arange(self.x.shape[0]) if self.indices is None else self.indices
        return unit_generators(self.seed, images, "check", check, device=self.x.device)


class Check(abc.ABC):
    """A gradient-masking check; subclass :class:`ModelCheck` or :class:`ResultsCheck`."""

    #: Registry name, the key of results.json ``checks``.
    name: ClassVar[str]
    #: Computed from the evaluation's collected results alone (nothing runs on the model and
    #: nothing is stored); otherwise the check runs on the model and its record is stored.
    from_results: ClassVar[bool]

    @abc.abstractmethod
    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        """Judge ``record`` (what ``run`` returned) against the evaluation's results ``col``."""


class ModelCheck(Check):
    """A check that runs on the model (stored in ``state/checks/<name>.json``)."""

    from_results: ClassVar[bool] = False

    @abc.abstractmethod
    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        """The raw record (JSON values; ``"n"``: the number of images it is over)."""


class ResultsCheck(Check):
    """A check computed from the collected results of the evaluation (never stored)."""

    from_results: ClassVar[bool] = True

    @abc.abstractmethod
    def run(self, col: Collected) -> dict[str, Any]:
        """The raw record (JSON values) from the evaluation's results."""


_REGISTRY: NameRegistry[type[Check]] = NameRegistry("check")
C = TypeVar("C", bound=type[Check])


def register_check(cls: C) -> C:
    """Class decorator: register ``cls`` under its own ``name`` (unique); report order = registration."""
    return _REGISTRY.register(cls)


def available_checks() -> list[str]:
    """The registered check names, in report order."""
    return _REGISTRY.names()


def check_class(name: str) -> type[Check]:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    return _REGISTRY.get(name)


def create_checks() -> list[Check]:
    """One instance of every registered check, in report order."""
    return [cls() for cls in _REGISTRY]


# --------------------------------------------------------------------------- helpers
def _white_box(attacks: Sequence[Attack]) -> list[Attack]:
    return [a for a in attacks if not a.black_box]


def _gradient_settings(attacks: Sequence[Attack]) -> dict[str, Any]:
    """BPDA and EOT of the suite's first white-box Linf attack (the checks attack alike)."""
    for attack in _white_box(attacks):
        if attack.threat.norm is Norm.LINF:
            return {"bpda": attack.bpda, "eot_samples": attack.eot_samples}
    return {}


def _robust(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
            generator: RowGenerators) -> torch.Tensor:
    """(n,) bool: correctly classified and not broken by ``attack`` (``generator``: one stream per image)."""
    correct = predict(model, x) == y
    out = correct.clone()
    idx = correct.nonzero().squeeze(1)
    if idx.numel():
        out[idx] = ~attack(model, x[idx], y[idx], generator=rows_of(generator, idx)).success
    return out


# --------------------------------------------------------------------------- the checks
@register_check
class LargeEps(ModelCheck):
    """PGD-Linf at ε = 128/255 from the clean image must bring the accuracy to ≤ 1 %."""

    name = "large-eps"

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        attack = create_attack("pgd-linf", eps=LARGE_EPS, steps=LARGE_EPS_STEPS,
                               step_size=2.5 * LARGE_EPS / LARGE_EPS_STEPS, random_start=False,
                               **_gradient_settings(inputs.attacks))
        robust = _robust(inputs.model, attack, inputs.x, inputs.y, inputs.generator(self.name))
        return {"n": int(inputs.x.shape[0]), "eps": LARGE_EPS, "robust": int(robust.sum())}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        n = max(int(record["n"]), 1)
        acc = record["robust"] / n
        return Verdict(acc <= LARGE_EPS_MAX_ACCURACY,
                       f"PGD-Linf at eps={record['eps'] * 255:.0f}/255 from the clean image: accuracy "
                       f"{acc:.2%} on {n} images (must be <= {LARGE_EPS_MAX_ACCURACY:.0%})",
                       {"accuracy": acc})


@register_check
class MoreSteps(ModelCheck):
    """Twice the steps of the suite's first iterative white-box attack must not lower the
    accuracy by more than 1 point."""

    name = "more-steps"

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        base = next((a for a in _white_box(inputs.attacks) if "steps" in a.params()), None)
        if base is None:
            base = create_attack("pgd-linf", **_gradient_settings(inputs.attacks))
        steps = int(base.params()["steps"])
        doubled = with_params(base, steps=2 * steps)
        one = _robust(inputs.model, base, inputs.x, inputs.y, inputs.generator(self.name))
        two = _robust(inputs.model, doubled, inputs.x, inputs.y, inputs.generator(self.name))
        return {"n": int(inputs.x.shape[0]), "attack": base.name, "steps": steps,
                "robust_1x": int(one.sum()), "robust_2x": int(two.sum())}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        n = max(int(record["n"]), 1)
        a1, a2 = record["robust_1x"] / n, record["robust_2x"] / n
        return Verdict(a1 - a2 <= MORE_STEPS_TOLERANCE + 1e-12,
                       f"{record['attack']}: {record['steps']} steps {a1:.2%}, {2 * record['steps']} steps "
                       f"{a2:.2%} on {n} images (drop must be <= {MORE_STEPS_TOLERANCE:.0%})",
                       {"accuracy_1x": a1, "accuracy_2x": a2})


@register_check
class GradientsNonzero(ModelCheck):
    """At most 1 % of the correctly classified images may have an all-zero margin gradient."""

    name = "gradients-nonzero"

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        model, x, y = inputs.model, inputs.x, inputs.y
        correct = predict(model, x) == y
        xs = x[correct].clone().requires_grad_(True)
        zero = 0
        if xs.shape[0]:
            with torch.enable_grad():
                loss = margin(model(xs), y[correct]).sum()
                (grad,) = torch.autograd.grad(loss, xs)
            zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
        return {"n": int(correct.sum()), "zero": zero}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        m = int(record["n"])
        frac = record["zero"] / m if m else 0.0
        return Verdict(frac <= ZERO_GRADIENT_MAX_FRACTION,
                       f"{record['zero']} of {m} correctly classified images have an all-zero margin "
                       f"gradient (allowed: {ZERO_GRADIENT_MAX_FRACTION:.0%})",
                       {"zero_fraction": frac})


@register_check
class Deterministic(ModelCheck):
    """Two forward passes must agree exactly, unless every gradient attack uses EOT."""

    name = "deterministic"

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        with torch.inference_mode():
            a, b = inputs.model(inputs.x), inputs.model(inputs.x)
        eot = [attack.eot_samples for attack in _white_box(inputs.attacks)]
        return {"n": int(inputs.x.shape[0]), "max_abs_diff": float((a - b).abs().max()),
                "eot_on": bool(eot) and all(e > 1 for e in eot)}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        same = record["max_abs_diff"] == 0.0
        return Verdict(same or record["eot_on"],
                       "two forward passes agree exactly" if same else
                       f"two forward passes differ (max |logit diff| {record['max_abs_diff']:.3g}); "
                       + ("EOT is on in every gradient attack" if record["eot_on"]
                          else "no EOT: set eot_samples > 1 on the gradient attacks"))


@register_check
class BlackboxVsWhitebox(ResultsCheck):
    """Black-box attacks must not break more than 1 % of the images that every white-box attack
    of their threat model (any column) ran on and failed."""

    name = "blackbox-vs-whitebox"

    def run(self, col: Collected) -> dict[str, Any]:
        spec = col.spec
        white = [j for j, a in enumerate(spec.attacks) if not a.black_box]
        suspicious = torch.zeros_like(col.labels, dtype=torch.bool)
        pairs: dict[str, list[str]] = {}
        for i, a in enumerate(spec.attacks):
            if not a.black_box:
                continue
            peers = [j for j in white if spec.attacks[j].norm == a.norm
                     and (spec.attacks[j].eps or 0) >= (a.eps or 0) - 1e-12]
            if not peers:
                continue
            pairs[a.name] = [spec.attacks[j].name for j in peers]
            all_failed = torch.ones_like(suspicious)
            for j in peers:
                all_failed &= col.attacks[j].ran & ~col.attacks[j].success
            suspicious |= col.attacks[i].success & all_failed
        return {"n": spec.n_images, "pairs": pairs, "suspicious": int(suspicious.sum())}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        n, count, pairs = int(record["n"]), int(record["suspicious"]), record["pairs"]
        if not pairs:
            return Verdict(True, "not applicable: no black-box attack with a white-box attack of the same "
                                 "threat model", {"applicable": False})
        return Verdict(count <= BLACKBOX_NOISE * n,
                       f"{count} of {n} images broken by {', '.join(pairs)} but by no white-box "
                       f"attack of the same threat model (allowed: {BLACKBOX_NOISE:.0%})",
                       {"applicable": True, "suspicious": count})


@register_check
class BpdaVariants(ModelCheck):
    """No other BPDA rule may leave the check images more than 1 point less accurate than the
    suite (models with a sparse coding frontend only)."""

    name = "bpda-variants"

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        k = int(inputs.x.shape[0])
        if not any(isinstance(m, Encoder) for m in inputs.model.modules()):
            return {"n": k, "applicable": False}
        eps = next((a.threat.eps for a in inputs.attacks if a.threat.norm is Norm.LINF), 8.0 / 255.0)
        eot = _gradient_settings(inputs.attacks).get("eot_samples", 1)
        variants = []
        for top_u, steepness in BPDA_VARIANTS:
            attack = create_attack("pgd-linf", eps=eps, bpda=BPDA(top_u=top_u, steepness=steepness),
                                   eot_samples=eot)
            robust = _robust(inputs.model, attack, inputs.x, inputs.y, inputs.generator(self.name))
            variants.append({"top_u": top_u, "steepness": steepness, "robust": robust.tolist()})
        return {"n": k, "applicable": True, "eps": eps, "variants": variants}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        if not record.get("applicable", False):
            return Verdict(True, "not applicable: the model has no frontend", {"applicable": False})
        k = int(record["n"])
        suite_acc = float((col.broken_by()[:k] == -1).float().mean())
        accs = {f"top_u={v['top_u']},steepness={v['steepness']:g}": sum(v["robust"]) / k
                for v in record["variants"]}
        best = min(accs.values())
        return Verdict(suite_acc <= best + BPDA_TOLERANCE,
                       f"suite worst case {suite_acc:.2%} on the first {k} images; best BPDA variant "
                       f"{best:.2%} (" + ", ".join(f"{kk}: {vv:.2%}" for kk, vv in accs.items()) + ")",
                       {"applicable": True, "variants": accs})


# --------------------------------------------------------------------------- running, judging
def run_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: EvalSpec,
               attacks: Sequence[Attack], store: StateStore, progress: bool = True,
               indices: torch.Tensor | None = None) -> None:
    """Run every :class:`ModelCheck` not stored yet and store its record.

    Args:
        model: maps (k, C, H, W) float in [0, 1] to logits; put in eval mode on ``x``'s device.
        x: (k, C, H, W) float in [0, 1], y: (k,) int64: the first ``spec.check_images`` images.
        spec: the evaluation (its seed names the checks' generators). attacks: its suite.
        indices: (k,) int64 dataset indices of the images, which key their random streams
            (``None``: 0, ..., k − 1).
    """
    model = model.to(x.device).eval()
    inputs = CheckInputs(model, x, y, tuple(attacks), spec.seed, indices)
    todo = [c for c in create_checks() if isinstance(c, ModelCheck) and store.read_check(c.name) is None]
    for check in tqdm(todo, desc="checks", disable=not progress):
        start = time.perf_counter()
        store.write_check(check.name, check.run(inputs))
        if not progress:  # background runs: a log line per check instead of a bar
            log.info("check %s done on %d images in %.0f s", check.name, int(x.shape[0]),
                     time.perf_counter() - start)


def checks_complete(store: StateStore) -> bool:
    """Whether the record of every :class:`ModelCheck` is stored."""
    return all(store.read_check(c.name) is not None for c in create_checks() if isinstance(c, ModelCheck))


def judge_checks(col: Collected, store: StateStore) -> dict[str, dict[str, Any]]:
    """{name: verdict as JSON (``passed``, ``detail``, numbers)} for every registered check."""
    out: dict[str, dict[str, Any]] = {}
    for check in create_checks():
        record = check.run(col) if isinstance(check, ResultsCheck) else store.read_check(check.name)
        out[check.name] = (Verdict(False, NOT_RUN) if record is None else check.verdict(record, col)).to_json()
    return out
