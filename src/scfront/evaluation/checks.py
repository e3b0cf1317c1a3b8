"""Self-checks of an evaluation (Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"; AutoAttack's flags) as objects in a registry.

A check is a class registered with :func:`register_check`. It has a :meth:`~Check.verdict` that
judges a raw record against the evaluation's results, and a ``run`` that produces the record:

- a :class:`ModelCheck` runs on the model and the first images of the subset
  (:class:`CheckInputs`: at most its :attr:`~Check.budget` of them, and at most the
  evaluation's ``check_images``); its record, with the seconds it took, is stored in
  ``state/checks/<name>.json`` as soon as it is done, so a killed run keeps the finished checks;
- a :class:`ResultsCheck` is computed from the collected results of the evaluation alone
  (:class:`~scfront.evaluation.results.Collected`), when the results are written.

What a check is, is declared by its class and read, never derived from its name:
:attr:`Check.from_results` (which kind), :attr:`Check.default` (run unless the caller selects
checks itself; opt-in otherwise), :attr:`Check.budget` (default number of images) and
:attr:`Check.before_attacks` (a failure stops the evaluation before any attack:
:func:`validate_model`). The registered checks, in report order:

- ``probability-outputs`` (before attacks): the rows of the output are probabilities (all in
  [0, 1], summing to 1), not logits; attacks on probabilities have vanishing gradients.
- ``class-count`` (before attacks): the model has one output per class of the dataset, every
  label is one of them, and attacks on the DLR loss get the classes they need (3, targeted 4).
- ``randomness``: five forward passes give the same logits, or every gradient attack of the
  suite averages gradients over EOT samples (``eot_samples > 1``).
- ``dynamic``: the forward pass computes no gradient (``torch.autograd.grad``/``backward``
  called inside it: a test-time optimising defense, which fixed attacks do not model).
- ``gradients-nonzero``: fraction of correctly classified images whose input gradient of the
  margin ``z_y − max_{j≠y} z_j`` is exactly zero; passes if ≤ 1 %.
- ``large-eps``: PGD-Linf from the clean image at ε = 128/255, 100 steps of 2.5ε/100; passes
  if accuracy ≤ 1 %. (At 64/255 a strong model can keep a few percent: the paper's defense kept
  6.25 %.) On a randomised model the attack and the judgement are on its expectation, the
  mean softmax of 20 passes (:func:`expectation`; an ensemble of E passes is called ceil(20/E)
  times): one draw near chance is right about 1/K of the time whatever the attack did, and a
  lucky wrong draw would stop PGD early.
- ``more-steps``: the suite's first white-box attack with a ``steps`` parameter (else
  pgd-linf) against the same attack with twice the steps: the evaluation's own run is reused
  (a PGD run is continued from its stored points; another attack reruns with twice the steps on
  the images it left robust); passes if doubling breaks at most 1 % more of the images (a
  randomised model: both sets of points judged by the mean softmax of 20 draws).
- ``blackbox-vs-whitebox`` (from the results): images broken by a black-box attack although
  every white-box attack of the same norm and at least the same ε ran on them and failed, in
  whichever column those attacks are; passes if ≤ 1 % of the subset.
- ``bpda-variants`` (models with a sparse coding frontend): PGD-Linf with other BPDA rules on
  the images the suite left robust; passes if no rule breaks more than 1 % of the images.

Checks that attack draw from per-image streams keyed by the seed, ``"check"``, their name and
the image's dataset index (:func:`~scfront.evaluation.spec.unit_generators`), so a record is the
same in every run and every shard. Which checks an evaluation runs, with their budgets, is
stored next to the records (:func:`write_selection`), so resuming, merging and finalising judge
exactly those.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

from scfront.attacks.base import Attack, AttackResult, predict
from scfront.attacks.losses import margin
from scfront.attacks.pgd import PGD
from scfront.attacks.registry import create_attack, with_params
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError, InputError, one_line
from scfront.evaluation.results import Collected, StoredRun
from scfront.evaluation.spec import EvalSpec, unit_generators
from scfront.evaluation.state import StateStore
from scfront.frontend.bpda import BPDA
from scfront.frontend.encoder import Encoder
from scfront.io import atomic_write_json
from scfront.models.ensemble import Ensemble
from scfront.models.randomness import random_layers, seed_model
from scfront.naming import NameRegistry
from scfront.sampling import RowGenerators, rows_of

__all__ = ["BPDA_VARIANTS", "Check", "CheckInputs", "ModelCheck", "ResultsCheck", "Verdict",
           "available_checks", "check_class", "checks_complete", "count_gradient_calls",
           "create_checks", "default_checks", "expectation", "expected_correct",
           "judge_checks", "read_selection", "register_check", "resolve_selection", "run_checks",
           "validate_model", "write_selection"]

log = logging.getLogger(__name__)

PROBABILITY_TOLERANCE = 1e-5  # rows within this of [0, 1] and of sum 1 count as probabilities
RANDOMNESS_PASSES = 5
RANDOMNESS_TOLERANCE = 1e-4  # relative L2 change of a logit row that counts as random
LARGE_EPS = 128.0 / 255.0
LARGE_EPS_STEPS = 100
LARGE_EPS_MAX_ACCURACY = 0.01
# A randomised model's point counts as robust when the mean softmax of this many forward passes
# classifies it correctly (large-eps, more-steps): one draw is right by luck about 1/K of the time.
# An ensemble of E passes is called ceil(20 / E) times.
EXPECTATION_DRAWS = 20
MORE_STEPS_TOLERANCE = 0.01
ZERO_GRADIENT_MAX_FRACTION = 0.01
BLACKBOX_NOISE = 0.01
BPDA_TOLERANCE = 0.01
# (top_u, steepness) at attack time: 0 = identity (docs/method.md §6; the paper's rule is (30, 4)).
BPDA_VARIANTS = ((30, 4.0), (0, 4.0), (30, 0.0), (0, 0.0), (60, 4.0), (30, 16.0))
VALIDATION_IMAGES = 8  # images the pre-attack validation runs on
NOT_RUN = "not run (the shard that owns batch 0 has not finished its checks)"
SELECTION_FILE = "check_selection.json"  # in the state folder, next to checks/


# --------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Verdict:
    """A check's judgement.

    Attributes:
        passed: whether the check passed. detail: one sentence with the numbers it rests on,
            the number of images among them.
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
        x: (k, C, H, W) float in [0, 1]: the first images of the subset.
        y: (k,) int64 true labels. attacks: the evaluation's suite, in order.
        seed: the evaluation's base seed (:attr:`EvalSpec.seed`).
        indices: (k,) int64 dataset indices of the images (``None``: 0, ..., k − 1).
        n_classes: the dataset's number of classes (``None``: unknown; at least every label + 1).
        stored: {attack position: what that attack of the evaluation did to these images}, for
            the attacks whose units are stored (what checks reuse instead of attacking again).
        randomised: the model's forward pass draws (it has a model seed, or two passes differ):
            ``large-eps`` attacks and judges its expectation, ``more-steps`` judges points by
            :func:`expected_correct`, not by one draw.
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    attacks: tuple[Attack, ...]
    seed: int
    indices: torch.Tensor | None = None
    n_classes: int | None = None
    stored: Mapping[int, StoredRun] = field(default_factory=dict)
    randomised: bool = False

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def first(self, k: int) -> "CheckInputs":
        """The same inputs restricted to the first ``k`` images."""
        if k >= self.n:
            return self
        return dataclasses.replace(self, x=self.x[:k], y=self.y[:k],
                                   indices=None if self.indices is None else self.indices[:k],
                                   stored={p: run.first(k) for p, run in self.stored.items()})

    def generator(self, check: str) -> RowGenerators:
        """Fresh per-image streams of check ``check``: ``unit_generators(seed, indices, "check", check)``."""
        images = torch.arange(self.n) if self.indices is None else self.indices
        return unit_generators(self.seed, images, "check", check, device=self.x.device)


class Check(abc.ABC):
    """A self-check of an evaluation; subclass :class:`ModelCheck` or :class:`ResultsCheck`."""

    #: Registry name, the key of results.json ``checks``.
    name: ClassVar[str]
    #: Computed from the evaluation's collected results alone (nothing runs on the model and
    #: nothing is stored); otherwise the check runs on the model and its record is stored.
    from_results: ClassVar[bool]
    #: Part of the default selection (``checks=True``, no ``--checks``); otherwise opt-in by name.
    default: ClassVar[bool] = True
    #: Default number of images (the first of the subset; capped by ``check_images``); ``None``:
    #: all check images. ``NAME:images=K`` in a selection overrides it.
    budget: ClassVar[int | None] = None
    #: A failure is an error before any attack (:func:`validate_model`), not only a verdict.
    before_attacks: ClassVar[bool] = False

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


def default_checks() -> list[str]:
    """The names of the registered checks with :attr:`Check.default`, in report order."""
    return [cls.name for cls in _REGISTRY if cls.default]


def check_class(name: str) -> type[Check]:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    return _REGISTRY.get(name)


def create_checks(names: Sequence[str] | None = None) -> list[Check]:
    """One instance of each check in ``names`` (``None``: every registered one), in report order."""
    wanted = None if names is None else set(names)
    return [cls() for cls in _REGISTRY if wanted is None or cls.name in wanted]


# --------------------------------------------------------------------------- selection
Selection = dict[str, int]  # {check name: images it runs on}, in report order


def resolve_selection(checks: bool | str | Sequence[str], check_images: int) -> Selection:
    """{name: images} of the checks an evaluation runs, in report order.

    Args:
        checks: ``True`` (the default checks), ``False`` (none), or items: a check name,
            ``NAME:images=K`` (its own number of images), ``default`` (every default check) or
            ``all`` (every registered check); a string is split at commas.
        check_images: the images the checks may use (the first of the subset).
    Raises:
        ConfigError: an unknown name (listing the choices), a bad ``images`` option.
    """
    if isinstance(checks, bool):
        items = ["default"] if checks else []
    else:
        items = [part.strip() for part in (checks.split(",") if isinstance(checks, str) else checks)]
        items = [item for item in items if item]
    if isinstance(check_images, bool) or not isinstance(check_images, int) or check_images < 1:
        raise ConfigError(f"check_images must be an integer >= 1, got {check_images!r}")
    own: dict[str, int | None] = {}
    for item in items:
        name, *options = item.split(":")
        if name in ("default", "all") and not options:
            for cls in _REGISTRY:
                if name == "all" or cls.default:
                    own.setdefault(cls.name, None)
            continue
        check_class(name)
        images: int | None = None
        for option in options:
            key, sep, value = option.partition("=")
            if key.strip() != "images" or not sep or not value.strip().isdigit() or int(value) < 1:
                raise ConfigError(f"check option {option!r} in {item!r} must be images=K with K >= 1 "
                                  "(e.g. more-steps:images=50)")
            images = int(value)
        own[name] = images
    out: Selection = {}
    for cls in _REGISTRY:
        if cls.name in own:
            budget = own[cls.name] or cls.budget or check_images
            out[cls.name] = min(budget, check_images)
    return out


def _selection_path(store: StateStore) -> Path:
    return store.root / SELECTION_FILE


def write_selection(store: StateStore, selection: Selection) -> None:
    """Record which checks this evaluation runs (read by :func:`judge_checks`)."""
    atomic_write_json(_selection_path(store), {"checks": dict(selection)})


def read_selection(store: StateStore) -> Selection | None:
    """The stored selection, or None when none is stored (a folder from before selections
    were stored is judged on the default checks)."""
    path = _selection_path(store)
    if not path.is_file():
        return None
    return {str(k): int(v) for k, v in json.loads(path.read_text(encoding="utf-8"))["checks"].items()}


# --------------------------------------------------------------------------- helpers
def _white_box(attacks: Sequence[Attack]) -> list[Attack]:
    return [a for a in attacks if not a.black_box]


def _gradient_settings(attacks: Sequence[Attack]) -> dict[str, Any]:
    """BPDA and EOT of the suite's first white-box Linf attack (the checks attack alike)."""
    for attack in _white_box(attacks):
        if attack.threat.norm is Norm.LINF:
            return {"bpda": attack.bpda, "eot_samples": attack.eot_samples}
    return {}


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(k, K) outputs of ``model`` on ``x`` without a graph; one clear error when the model cannot
    take ``x`` or does not return one row per image."""
    try:
        with torch.no_grad():  # not inference mode: a dynamic defense may enable gradients inside
            out = model(x)
    except (RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, (InputError, ConfigError)):
            raise
        raise InputError(f"the model fails on images of shape {tuple(x.shape)} (float in [0, 1]): "
                         f"{one_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must return logits of shape (N, K) for images of shape {tuple(x.shape)}, "
                          f"got {got}")
    return out.float()


def _robust(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
            generator: RowGenerators, rows: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) bool: correctly classified and not broken by ``attack`` (``generator``: one stream
    per image); ``rows`` (n,) bool: attack only these (the others count as robust if correct)."""
    correct = predict(model, x) == y
    out = correct.clone()
    idx = (correct if rows is None else correct & rows).nonzero().squeeze(1)
    if idx.numel():
        out[idx] = ~attack(model, x[idx], y[idx], generator=rows_of(generator, idx)).success
    return out


def _relative_change(first: torch.Tensor, other: torch.Tensor) -> float:
    """The largest relative L2 change of a logit row (k, K) from ``first`` to ``other``."""
    scale = first.norm(dim=1).clamp_min(1e-12)
    return float(((other - first).norm(dim=1) / scale).max())


def _draws(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two forward passes of ``model`` on ``x`` (k, C, H, W) differ beyond
    ``RANDOMNESS_TOLERANCE`` relative (a model that draws without declaring it)."""
    return _relative_change(_logits(model, x), _logits(model, x)) > RANDOMNESS_TOLERANCE


def expectation(model: nn.Module, draws: int = EXPECTATION_DRAWS) -> nn.Module:
    """The mean softmax of ``draws`` forward passes of a randomised ``model`` as one model
    (:class:`~scfront.models.ensemble.Ensemble`); a model that is an ensemble of E passes
    already is called ``ceil(draws / E)`` times (the same mean over at least ``draws`` passes)."""
    per_call = model.samples if isinstance(model, Ensemble) else 1
    return Ensemble(model, max(1, -(-draws // per_call)))


def expected_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     draws: int = EXPECTATION_DRAWS) -> torch.Tensor:
    """(n,) bool: whether the mean softmax of ``draws`` forward passes of a randomised ``model``
    on ``x`` (n, C, H, W) in [0, 1] predicts ``y`` (n,): the label of its expected output, which
    one lucky draw does not decide. The model's generators are left as they were before the call
    (two calls on the same model draw the same noise)."""
    states = [(m.generator, m.generator.get_state()) for m in random_layers(model)
              if isinstance(m.generator, torch.Generator)]
    try:
        with torch.no_grad():
            return expectation(model, draws)(x).argmax(dim=1) == y.to(x.device)
    finally:
        for generator, state in states:
            generator.set_state(state)


def _fraction(count: int, n: int) -> float:
    return count / n if n else 0.0


# --------------------------------------------------------------------------- before the attacks
@register_check
class ProbabilityOutputs(ModelCheck):
    """The outputs must be logits: rows that all lie in [0, 1] and sum to 1 are probabilities."""

    name = "probability-outputs"
    budget = 16
    before_attacks = True

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        out = _logits(inputs.model, inputs.x)
        return {"n": inputs.n, "min": float(out.min()), "max": float(out.max()),
                "max_sum_error": float((out.sum(dim=1) - 1.0).abs().max())}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        t = PROBABILITY_TOLERANCE
        probabilities = record["min"] >= -t and record["max"] <= 1.0 + t and record["max_sum_error"] <= t
        if probabilities:
            return Verdict(False, f"the model's outputs look like probabilities: on {record['n']} images every "
                                  f"row lies in [0, 1] and sums to 1 (max |sum - 1| {record['max_sum_error']:.1e}); "
                                  "pass logits, not softmax (remove the final softmax: attacks on probabilities "
                                  "have vanishing gradients and overstate robustness)", {"probabilities": True})
        return Verdict(True, f"outputs on {record['n']} images are logits, not probabilities (values in "
                             f"[{record['min']:.3g}, {record['max']:.3g}])", {"probabilities": False})


def _classes_needed(attack: Attack) -> int:
    """Classes the attack's loss needs: 3 for DLR, 4 for targeted DLR (read from its parameters)."""
    params = attack.params()
    if params.get("loss") != "dlr":
        return 2
    return 4 if "n_target_classes" in params else 3


@register_check
class ClassCount(ModelCheck):
    """One output per class of the dataset, every label among them, and enough classes for the
    suite's DLR attacks (3; targeted 4)."""

    name = "class-count"
    budget = 16
    before_attacks = True

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        out = _logits(inputs.model, inputs.x)
        needs = {a.name: _classes_needed(a) for a in inputs.attacks if _classes_needed(a) > 2}
        targets = {a.name: int(a.params()["n_target_classes"]) for a in inputs.attacks
                   if "n_target_classes" in a.params()}
        return {"n": inputs.n, "outputs": int(out.shape[1]), "classes": inputs.n_classes,
                "max_label": int(inputs.y.max()), "needs": needs, "targets": targets}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        k, classes, top = int(record["outputs"]), record["classes"], int(record["max_label"])
        if classes is not None and k != classes:
            return Verdict(False, f"the model has {k} outputs but the dataset has {classes} classes; give a model "
                                  f"with one logit per class ({classes})", {"outputs": k})
        if top >= k:
            return Verdict(False, f"the model has {k} outputs but the labels go up to {top}; give a model with "
                                  f"one logit per class", {"outputs": k})
        short = {name: need for name, need in record["needs"].items() if k < need}
        if short:
            return Verdict(False, f"the model has {k} classes; " + ", ".join(
                f"{name} needs at least {need} (its DLR loss)" for name, need in short.items()), {"outputs": k})
        few = [f"{name} asks for {t} target classes, {k - 1} exist (the rest are skipped)"
               for name, t in record["targets"].items() if t > k - 1]
        return Verdict(True, f"{k} outputs, one per class" + ("; " + "; ".join(few) if few else ""),
                       {"outputs": k})


def validate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack],
                   n_classes: int | None = None, seed: int = 0) -> None:
    """Refuse a model the evaluation cannot attack meaningfully, before any attack.

    Runs every registered check with :attr:`Check.before_attacks` (whether selected or not) on
    the first :data:`VALIDATION_IMAGES` images: a forward pass that fails on the dataset's
    images (wrong size or channels), outputs that are not (N, K) logits (probabilities, a wrong
    class count).

    Args:
        model: in eval mode on ``x``'s device. x: (k, C, H, W) float in [0, 1]; y: (k,) int64.
        n_classes: the dataset's number of classes (``None``: only the labels are checked).
    Raises:
        ConfigError or InputError: one line saying what is wrong and how to fix it.
    """
    inputs = CheckInputs(model, x[:VALIDATION_IMAGES], y[:VALIDATION_IMAGES], tuple(attacks), seed,
                         n_classes=n_classes)
    for check in create_checks():
        if check.before_attacks and isinstance(check, ModelCheck):
            verdict = check.verdict(check.run(inputs), _NO_RESULTS)
            if not verdict.passed:
                raise ConfigError(f"{check.name}: {verdict.detail}")


class _NoResults:
    """Stands for the results in :func:`validate_model` (before-attack checks never read them)."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"a before-attack check read the results ({name}) before any attack ran")


_NO_RESULTS: Any = _NoResults()


# --------------------------------------------------------------------------- the model's behaviour
@register_check
class Randomness(ModelCheck):
    """Five forward passes must agree, unless every gradient attack averages over EOT samples."""

    name = "randomness"
    budget = 16

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        outs = [_logits(inputs.model, inputs.x) for _ in range(RANDOMNESS_PASSES)]
        change = max(_relative_change(outs[0], o) for o in outs[1:])
        preds = torch.stack([o.argmax(dim=1) for o in outs])
        flips = int((preds != preds[0]).any(dim=0).sum())
        eot = [attack.eot_samples for attack in _white_box(inputs.attacks)]
        return {"n": inputs.n, "passes": RANDOMNESS_PASSES, "max_relative_change": change,
                "prediction_changes": flips, "eot_on": bool(eot) and all(e > 1 for e in eot)}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        random = record["max_relative_change"] > RANDOMNESS_TOLERANCE or record["prediction_changes"] > 0
        head = f"{record['passes']} forward passes on {record['n']} images"
        if not random:
            return Verdict(True, f"{head} agree (max relative logit change {record['max_relative_change']:.2g})",
                           {"random": False})
        return Verdict(bool(record["eot_on"]),
                       f"{head} differ (max relative logit change {record['max_relative_change']:.2g}, "
                       f"{record['prediction_changes']} predictions change): a randomised model; "
                       + ("EOT is on in every gradient attack" if record["eot_on"]
                          else "evaluate it with EOT (eot-pgd-linf, or --eot-samples K on the gradient attacks)"),
                       {"random": True})


def _autograd_entry_points() -> set[Any]:
    """Code objects of the Python functions through which every gradient computation passes once:
    torch's engine call behind ``torch.autograd.grad`` and every ``backward`` (older torch: those
    two functions themselves)."""
    import torch.autograd.graph as graph

    engine = getattr(graph, "_engine_run_backward", None)
    functions: list[Any] = [torch.autograd.grad, torch.autograd.backward] if engine is None else [engine]
    return {f.__code__ for f in functions if getattr(f, "__code__", None) is not None}


def count_gradient_calls(call: Callable[[], Any]) -> int:
    """How many times ``call()`` enters torch's gradient computation (``torch.autograd.grad``,
    ``backward``), counted with a profile hook on this thread (AutoAttack's ``check_dynamic``
    traces the same functions); the previous hook is restored."""
    entry, calls = _autograd_entry_points(), [0]

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in entry:
            calls[0] += 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        call()
    finally:
        sys.setprofile(previous)
    return calls[0]


@register_check
class Dynamic(ModelCheck):
    """The forward pass must not compute gradients (a dynamic, test-time optimising defense)."""

    name = "dynamic"
    budget = 4

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        x = inputs.x.detach()
        # with gradients enabled, as an attack calls the model: a defense may need them inside
        return {"n": inputs.n, "gradient_calls": count_gradient_calls(lambda: inputs.model(x))}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        calls = int(record["gradient_calls"])
        if calls == 0:
            return Verdict(True, f"a forward pass on {record['n']} images computes no gradient", {"dynamic": False})
        return Verdict(False, f"a forward pass on {record['n']} images calls torch's gradient computation {calls} "
                              "times: a dynamic defense (it optimises at test time); attacks that differentiate "
                              "through it are not adaptive to it, so add an adaptive attack (e.g. BPDA or EOT "
                              "through the inner optimisation) and black-box attacks", {"dynamic": True})


@register_check
class GradientsNonzero(ModelCheck):
    """At most 1 % of the correctly classified images may have an all-zero margin gradient."""

    name = "gradients-nonzero"
    budget = 50

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
        return {"n": int(correct.sum()), "images": inputs.n, "zero": zero}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        m = int(record["n"])
        frac = _fraction(record["zero"], m)
        among = f" (of {record['images']} images)" if "images" in record else ""
        return Verdict(frac <= ZERO_GRADIENT_MAX_FRACTION,
                       f"{record['zero']} of {m} correctly classified images{among} have an all-zero margin "
                       f"gradient (allowed: {ZERO_GRADIENT_MAX_FRACTION:.0%})",
                       {"zero_fraction": frac})


# --------------------------------------------------------------------------- attacks
@register_check
class LargeEps(ModelCheck):
    """PGD-Linf at ε = 128/255 from the clean image must bring the accuracy to ≤ 1 % (a randomised
    model: its expectation, the mean softmax of 20 draws, is attacked and judged)."""

    name = "large-eps"
    budget = 8

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        settings = _gradient_settings(inputs.attacks)
        model = inputs.model
        if inputs.randomised:
            # one draw of a randomised model near chance is right about 1/K of the time, and a
            # lucky wrong draw would end PGD at a point the model still classifies: attack and
            # judge the model's expectation, the mean softmax of EXPECTATION_DRAWS passes
            # (averaged already, so no further EOT)
            model = expectation(model)
            settings = {**settings, "eot_samples": 1}
        attack = create_attack("pgd-linf", eps=LARGE_EPS, steps=LARGE_EPS_STEPS,
                               step_size=2.5 * LARGE_EPS / LARGE_EPS_STEPS, random_start=False, **settings)
        robust = _robust(model, attack, inputs.x, inputs.y, inputs.generator(self.name))
        record = {"n": inputs.n, "eps": LARGE_EPS, "robust": int(robust.sum())}
        return {**record, "draws": EXPECTATION_DRAWS} if inputs.randomised else record

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        n = max(int(record["n"]), 1)
        acc = record["robust"] / n
        how = (f" (a randomised model: attacked and judged by the mean softmax of {record['draws']} draws)"
               if "draws" in record else "")
        return Verdict(acc <= LARGE_EPS_MAX_ACCURACY,
                       f"PGD-Linf at eps={record['eps'] * 255:.0f}/255 from the clean image: {record['robust']} of "
                       f"{n} images robust{how}, accuracy {acc:.2%} (must be <= {LARGE_EPS_MAX_ACCURACY:.0%})",
                       {"accuracy": acc})


def _more_steps_base(attacks: Sequence[Attack]) -> tuple[int | None, Attack]:
    """(suite position or None, attack): the first white-box attack with ``steps``, else pgd-linf."""
    for pos, attack in enumerate(attacks):
        if not attack.black_box and "steps" in attack.params():
            return pos, attack
    return None, create_attack("pgd-linf", **_gradient_settings(attacks))


@register_check
class MoreSteps(ModelCheck):
    """Twice the steps of the suite's first iterative white-box attack must not break more than
    1 % more of the images."""

    name = "more-steps"
    budget = 8

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        model, x, y = inputs.model, inputs.x, inputs.y
        pos, base = _more_steps_base(inputs.attacks)
        steps = int(base.params()["steps"])
        gen = inputs.generator(self.name)
        stored = None if pos is None else inputs.stored.get(pos)
        if stored is not None:  # the evaluation's own run of the attack on these images
            ran, robust, points = stored.ran.to(x.device), ~stored.success.to(x.device), stored.x_adv.to(x.device)
            robust &= ran
        else:
            ran = predict(model, x) == y
            robust, points = ran.clone(), x.clone()
            idx = ran.nonzero().squeeze(1)
            if idx.numel():
                first = base(model, x[idx], y[idx], generator=rows_of(gen, idx))
                robust[idx], points[idx] = ~first.success, first.x_adv
        idx = robust.nonzero().squeeze(1)
        newly = 0
        continued = isinstance(base, PGD) and int(base.params()["restarts"]) == 1
        if idx.numel():
            result: AttackResult
            if continued:
                assert isinstance(base, PGD)
                result = base.continue_from(model, x[idx], y[idx], points[idx])
            else:
                doubled = with_params(base, steps=2 * steps)
                result = doubled(model, x[idx], y[idx], generator=rows_of(gen, idx))
            newly = int(result.success.sum())
        record = {"n": inputs.n, "attack": base.name, "steps": steps, "reused": stored is not None,
                  "continued": continued, "ran": int(ran.sum()), "robust_1x": int(robust.sum()),
                  "robust_2x": int(robust.sum()) - newly}
        if inputs.randomised:  # judge both sets of points by the expected prediction, not one draw
            doubled_points = points.clone()
            if idx.numel():
                doubled_points[idx] = result.x_adv
            record.update(robust_1x_expected=int((ran & expected_correct(model, points, y)).sum()),
                          robust_2x_expected=int((ran & expected_correct(model, doubled_points, y)).sum()),
                          draws=EXPECTATION_DRAWS)
        return record

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        n = max(int(record["n"]), 1)
        judged = "robust_1x_expected" in record
        r1, r2 = ((record["robust_1x_expected"], record["robust_2x_expected"]) if judged
                  else (record["robust_1x"], record["robust_2x"]))
        a1, a2 = r1 / n, r2 / n
        how = ("the evaluation's run" if record.get("reused") else "a run") + \
              (" continued" if record.get("continued") else " rerun on what it left robust")
        if judged:
            how += (f"; a randomised model: robust by the mean softmax of {record['draws']} draws, by the "
                    f"attack's own draw {record['robust_1x']} -> {record['robust_2x']}")
        return Verdict(a1 - a2 <= MORE_STEPS_TOLERANCE + 1e-12,
                       f"{record['attack']}: {r1} of {n} images robust after {record['steps']} steps, "
                       f"{r2} after {2 * record['steps']} ({how}); accuracy {a1:.2%} -> {a2:.2%} "
                       f"(drop must be <= {MORE_STEPS_TOLERANCE:.0%})",
                       {"accuracy_1x": a1, "accuracy_2x": a2})


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


def _model_rules(model: nn.Module) -> BPDA | None:
    """The BPDA rule every encoder of ``model`` holds (None if they differ or there is none)."""
    rules = {m.bpda for m in model.modules() if isinstance(m, Encoder)}
    return rules.pop() if len(rules) == 1 else None


def _suite_robust(inputs: CheckInputs) -> torch.Tensor | None:
    """(k,) bool: no attack of the evaluation broke the image (None unless every attack's units
    on these images are stored). Misclassified images count as robust here; callers skip them."""
    if len(inputs.stored) != len(inputs.attacks):
        return None
    out = torch.ones(inputs.n, dtype=torch.bool, device=inputs.x.device)
    for run in inputs.stored.values():
        out &= ~run.success.to(out.device)
    return out


@register_check
class BpdaVariants(ModelCheck):
    """No other BPDA rule may break more than 1 % of the images the suite left robust (models
    with a sparse coding frontend only)."""

    name = "bpda-variants"
    # one PGD run per rule (five) on the images the suite left robust: about five times the
    # suite's own PGD on them, hence opt-in (``--checks default,bpda-variants``)
    default = False
    budget = 20

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        k = inputs.n
        if not any(isinstance(m, Encoder) for m in inputs.model.modules()):
            return {"n": k, "applicable": False}
        eps = next((a.threat.eps for a in inputs.attacks if a.threat.norm is Norm.LINF), 8.0 / 255.0)
        settings = _gradient_settings(inputs.attacks)
        own = settings.get("bpda") or _model_rules(inputs.model)
        same_pgd = any(a.name == "pgd-linf" and a.threat.eps == eps for a in inputs.attacks)
        suite_robust = _suite_robust(inputs)  # attack only what the suite left, when it is known
        variants, skipped = [], []
        for top_u, steepness in BPDA_VARIANTS:
            rule = BPDA(top_u=top_u, steepness=steepness)
            if same_pgd and rule == own:
                skipped.append({"top_u": top_u, "steepness": steepness})  # the suite ran this attack
                continue
            attack = create_attack("pgd-linf", eps=eps, bpda=rule, eot_samples=settings.get("eot_samples", 1))
            robust = _robust(inputs.model, attack, inputs.x, inputs.y, inputs.generator(self.name), suite_robust)
            variants.append({"top_u": top_u, "steepness": steepness, "robust": robust.tolist()})
        return {"n": k, "applicable": True, "eps": eps, "variants": variants, "skipped": skipped}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        if not record.get("applicable", False):
            return Verdict(True, "not applicable: the model has no frontend", {"applicable": False})
        k = int(record["n"])
        suite = col.broken_by()[:k] == -1
        new = {f"top_u={v['top_u']},steepness={v['steepness']:g}":
               int((suite & ~torch.tensor(v["robust"], dtype=torch.bool)).sum()) for v in record["variants"]}
        worst = max(new.values(), default=0)
        skipped = "".join(f"; top_u={s['top_u']},steepness={s['steepness']:g} is the suite's own rule"
                          for s in record.get("skipped", []))
        return Verdict(worst <= BPDA_TOLERANCE * k + 1e-12,
                       f"of the {int(suite.sum())} of the first {k} images the suite left robust, PGD-Linf with "
                       "another BPDA rule breaks " + ", ".join(f"{kk}: {vv}" for kk, vv in new.items())
                       + f"{skipped} (allowed: {BPDA_TOLERANCE:.0%} of {k})",
                       {"applicable": True, "broken": new})


# --------------------------------------------------------------------------- running, judging
def run_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: EvalSpec,
               attacks: Sequence[Attack], store: StateStore, progress: bool = True,
               indices: torch.Tensor | None = None, selection: Selection | None = None,
               n_classes: int | None = None, stored: Mapping[int, StoredRun] | None = None) -> None:
    """Run every selected :class:`ModelCheck` not stored yet and store its record with its seconds.

    Args:
        model: maps (k, C, H, W) float in [0, 1] to logits; put in eval mode on ``x``'s device.
        x: (k, C, H, W) float in [0, 1], y: (k,) int64: the first ``spec.check_images`` images.
        spec: the evaluation (its seed names the checks' generators). attacks: its suite.
        indices: (k,) int64 dataset indices of the images, which key their random streams
            (``None``: 0, ..., k − 1).
        selection: {check: images} (:func:`resolve_selection`; ``None``: the defaults); stored
            with the records (:func:`write_selection`).
        n_classes: the dataset's number of classes. stored: the evaluation's attack runs on
            these images (:func:`~scfront.evaluation.results.stored_runs`), which checks reuse.
    """
    selection = resolve_selection(True, spec.check_images) if selection is None else selection
    write_selection(store, selection)
    model = model.to(x.device).eval()
    randomised = spec.model_seed is not None or _draws(model, x[:VALIDATION_IMAGES])
    inputs = CheckInputs(model, x, y, tuple(attacks), spec.seed, indices, n_classes, dict(stored or {}),
                         randomised)
    todo = [c for c in create_checks(list(selection)) if isinstance(c, ModelCheck)
            and store.read_check(c.name) is None]
    for check in tqdm(todo, desc="checks", disable=not progress):
        start = time.perf_counter()
        if spec.model_seed is not None:  # a randomised model: its own stream, keyed by the check
            seed_model(model, spec.model_seed, "check", check.name)
        record = check.run(inputs.first(selection[check.name]))
        seconds = time.perf_counter() - start
        store.write_check(check.name, {**record, "seconds": seconds})
        if not progress:  # background runs: a log line per check instead of a bar
            log.info("check %s done on %d images in %.1f s", check.name, min(selection[check.name], inputs.n),
                     seconds)


def _selected(store: StateStore) -> list[Check]:
    selection = read_selection(store)
    return create_checks(default_checks() if selection is None else list(selection))


def checks_complete(store: StateStore) -> bool:
    """Whether the selection is stored and the record of every selected :class:`ModelCheck` too."""
    if read_selection(store) is None:
        return False
    return all(store.read_check(c.name) is not None for c in _selected(store) if isinstance(c, ModelCheck))


def judge_checks(col: Collected, store: StateStore) -> dict[str, dict[str, Any]]:
    """{name: verdict as JSON (``passed``, numbers, ``seconds``, ``detail``)} for every selected check.

    ``seconds`` is what a :class:`ModelCheck` took when it ran (stored with its record); a
    :class:`ResultsCheck` costs no model evaluation and has none, so that the results of a
    folder are the same however often they are written.
    """
    out: dict[str, dict[str, Any]] = {}
    for check in _selected(store):
        record = check.run(col) if isinstance(check, ResultsCheck) else store.read_check(check.name)
        if record is None:
            out[check.name] = Verdict(False, NOT_RUN).to_json()
            continue
        entry = check.verdict(record, col).to_json()
        if "seconds" in record:
            detail = entry.pop("detail")
            entry = {**entry, "seconds": float(record["seconds"]), "detail": detail}
        out[check.name] = entry
    return out
