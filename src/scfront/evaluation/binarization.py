"""The active binarization test (Zimmermann, Brendel, Tramèr & Carlini 2022, "Increasing
Confidence in Adversarial Robustness Evaluations", NeurIPS, Algorithm 1) and its check.

The test asks whether an evaluation's attacks find adversarials where one provably exists. For
each test image ``x`` it builds a binary task whose only "adversarial" region is known, replaces
the model's last layer with a linear readout for that task, and runs the attacks on the
modified model:

1. **Inner points** (label 0): ``x`` itself and ``n_inner − 1`` points drawn uniformly in the
   ball of radius ``inner_ratio·ε = 0.95ε`` around it (Linf: each pixel uniform in
   ``[−0.95ε, 0.95ε]``; L2: uniform in the L2 ball; then clipped to [0, 1], which keeps them
   in the ball), :meth:`~scfront.attacks.threat.ThreatModel.random_start`.
2. **One boundary point** (label 1) at distance exactly ε: Linf a random corner ``x + ε·s``,
   ``s ∈ {−1, 1}^D`` uniform, clipped to [0, 1]; L2 a uniformly random direction scaled so that
   the distance *after* clipping is ε (bisection on the scale).
3. **Readout**: features ``model.features`` of all points (the feature hook,
   :mod:`scfront.models.features`), and an unregularised logistic regression on them
   (boundary vs inner). If it does not classify every training point correctly the setup
   **failed** for this image (the features cannot separate the task).
4. **Hard task**: the bias is moved so that the decision boundary lies at ``closeness = 0.9999``
   of the way from where it was to the boundary point (the boundary point keeps 1e-4 of its
   logit margin), and the two logits are scaled to the range of the original model's logits on
   the training points. The readout becomes an ``nn.Linear(D, 2)`` after the model's features.
5. **Check**: through that binary model the clean image must be classified inner and the
   boundary point boundary; otherwise the setup failed. An adversarial inside the ε-ball now
   provably exists (the boundary point).
6. **Attack**: the attacks, as a cascade (the next one runs only where the earlier ones
   failed), on the binary model at ``x`` with label 0. Success: the binary model classifies the
   attack's point (inside the ε-ball ∩ [0, 1]) as boundary.
7. **Random baseline**: ``n_random`` points uniform in the ε-ball and ``n_random`` points drawn
   like the boundary point; an image counts as *random success* if any of them is classified
   boundary: there the task is easy enough for random sampling, so success says less.
8. **Verdict**: the test passes if the attack success rate over the images whose setup
   succeeded is ≥ 95 % (:data:`PASS_RATE`). Reported with it: the random success rate and the
   number of failed setups.

This follows the paper and its reference implementation (google-research/active-adversarial-tests,
``active_tests/decision_boundary_binarization.py``; the settings of its case studies: 999 inner
points, 1 boundary point, inner radius 0.95ε (``relative_inner_boundary_gap = 0.05``), corners
for Linf (``--dbl-sample-from-corners``), ``decision_boundary_closeness = 0.9999``, "adaptive"
logit rescaling, a perfect fit required, threshold 0.95). Deviations, each deliberate:

- *Class weighting*: the logistic loss weights the classes equally ("balanced": the boundary
  point weighs as much as all inner points); the reference exposes ``class_weight`` and leaves
  it unweighted by default. Balanced weights reach a separating readout in far fewer
  iterations with one point against 998; they change which separating readout is found, not
  whether one exists.
- *Fit*: L-BFGS in float64 on standardised features, stopping at the first iterate that
  separates the training points (at most ``max_fit_iterations``), instead of scikit-learn's
  solver run to its tolerance and then checked for a perfect fit.
- ``n_inner`` counts the clean image (the reference's code adds the clean image to
  ``n_inner`` new draws).
- *Logit rescaling*: the scale of the reference's "adaptive" rescaling without its offset (a
  constant added to both logits, which no loss of :mod:`scfront.attacks.losses` sees).
- *Random baseline*: ``n_random`` (default 100) points of each kind, every one counted; the
  reference samples 200 per kind, counts the first ``n_steps`` of the attack, and reports
  surface and corner points separately.
- *Batching*: images are attacked together (up to :data:`ATTACK_BATCH` at a time). Each row of
  a batch is routed to the readout of the image whose clean image is nearest to it
  (``_Readouts``). Images whose balls could touch (distance ≤ 2ε) never share a batch, so every
  query inside an image's ε-ball sees exactly that image's binary model; fixed-budget attacks
  query inside their ball (FAB's intermediate iterates may step outside it, by far less than
  half the distance between two test images). Minimum-norm attacks, whose searches start far
  from the image, run image by image.
- Supports Linf and L2 (as the reference); the labels play no part in the task (as in the
  reference) and are only recorded with whether the original model gets them right.

Randomness: each image draws one 64-bit value from its stream of ``generators`` (a
:class:`~scfront.sampling.RowGenerators`, one stream per image) to seed its sampling; the
attacks then draw from the same streams, so the result is a function of the streams alone.

Importing this module registers the check ``binarization`` (:class:`BinarizationCheck`) with
:func:`~scfront.evaluation.checks.register_check`.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront.attacks.base import Attack, MinimumNormAttack, predict
from scfront.attacks.threat import Norm, ThreatModel
from scfront.errors import ConfigError, InputError
from scfront.evaluation.checks import CheckInputs, ModelCheck, Verdict, register_check
from scfront.evaluation.results import Collected
from scfront.models.features import feature_readout
from scfront.sampling import RowGenerators, normal, randint, rows_of

__all__ = ["BinarizationCheck", "BinarizationResult", "BinarizationSettings", "BinaryTask", "CHECK_IMAGES",
           "ImageOutcome", "PASS_RATE", "Setup", "attack_tasks", "binarization_test", "prepare_tasks"]

log = logging.getLogger(__name__)

PASS_RATE = 0.95  # attack success rate the test requires (Zimmermann et al. 2022)
CHECK_IMAGES = 20  # the check's default budget of images (the first of the evaluation's check images)
SUPPORTED_NORMS = (Norm.LINF, Norm.L2)
ATTACK_BATCH = 64  # images attacked together (each row of a batch is compared with every clean image of it)
_MASK64 = (1 << 64) - 1
_BISECTION_STEPS = 60


@dataclass(frozen=True)
class BinarizationSettings:
    """How each image's binary task is built (defaults: the paper's case studies).

    Attributes:
        n_inner: inner training points, the clean image included (≥ 2).
        n_random: random points of each kind for the random baseline (≥ 0).
        inner_ratio: radius of the inner points' ball relative to ε, in (0, 1).
        closeness: how far the decision boundary is moved toward the boundary point, in [0, 1).
        max_fit_iterations: L-BFGS iterations before a fit counts as failed (≥ 1).
        batch_size: images per forward pass when computing features (≥ 1).
    """

    n_inner: int = 999
    n_random: int = 100
    inner_ratio: float = 0.95
    closeness: float = 0.9999
    max_fit_iterations: int = 500
    batch_size: int = 250

    def __post_init__(self) -> None:
        for name, low in (("n_inner", 2), ("n_random", 0), ("max_fit_iterations", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"binarization: {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 < float(self.inner_ratio) < 1.0:
            raise ConfigError(f"binarization: inner_ratio must lie in (0, 1), got {self.inner_ratio!r}")
        if not 0.0 <= float(self.closeness) < 1.0:
            raise ConfigError(f"binarization: closeness must lie in [0, 1), got {self.closeness!r}")


class Setup(str, enum.Enum):
    """Whether an image's binary task could be built."""

    OK = "ok"
    NOT_SEPARABLE = "the readout does not separate the training points"
    CLEAN_NOT_INNER = "the clean image is not classified as inner"
    BOUNDARY_NOT_ADVERSARIAL = "the boundary point is not classified as boundary"
    NO_BOUNDARY = "no point at distance eps inside [0, 1]"


@dataclass(frozen=True)
class BinaryTask:
    """One image's binary task.

    Attributes:
        x: (C, H, W) float32 in [0, 1], the clean image. boundary: (C, H, W) its boundary point.
        weight: (2, D) float32, bias: (2,) float32: the readout (row 0 inner, row 1 boundary).
        setup: whether the task is usable. fit_iterations: L-BFGS iterations of the fit.
        random_hits: random points (of ``2·n_random``) the readout classifies as boundary.
        boundary_margin: logit(boundary) − logit(inner) at the boundary point (> 0 when usable).
    """

    x: torch.Tensor
    boundary: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    setup: Setup
    fit_iterations: int
    random_hits: int
    boundary_margin: float


@dataclass(frozen=True)
class ImageOutcome:
    """What the test found for one image (JSON values).

    Attributes:
        index: the image's dataset index. label: its true label. clean_correct: the original
        model classifies it correctly. setup: a :class:`Setup` value. success: an attack found
        the adversarial (``False`` where the setup failed). broken_by: position of the first
        attack that succeeded, −1 if none, −2 if the setup failed. random_hits: see
        :class:`BinaryTask`. fit_iterations: the fit's L-BFGS iterations.
    """

    index: int
    label: int
    clean_correct: bool
    setup: str
    success: bool
    broken_by: int
    random_hits: int
    fit_iterations: int


@dataclass(frozen=True)
class BinarizationResult:
    """The test's record.

    Attributes:
        norm, eps: the threat model. attacks: names of the attacks of the cascade, in order.
        settings: the :class:`BinarizationSettings` as a dict. images: one outcome per image.
        seconds: wall time of the setup and of the attacks.
    """

    norm: str
    eps: float
    attacks: tuple[str, ...]
    settings: dict[str, Any]
    images: tuple[ImageOutcome, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def n_valid(self) -> int:
        """Images whose setup succeeded."""
        return sum(o.setup == Setup.OK.value for o in self.images)

    @property
    def n_failed(self) -> int:
        """Images whose setup failed (no usable binary task)."""
        return self.n - self.n_valid

    @property
    def n_success(self) -> int:
        return sum(o.success for o in self.images)

    @property
    def success_rate(self) -> float:
        """Attack success rate over the valid setups (0 when there is none)."""
        return self.n_success / self.n_valid if self.n_valid else 0.0

    @property
    def random_rate(self) -> float:
        """Fraction of the valid setups where a random point is already classified boundary."""
        hits = sum(o.random_hits > 0 for o in self.images if o.setup == Setup.OK.value)
        return hits / self.n_valid if self.n_valid else 0.0

    @property
    def passed(self) -> bool:
        """At least one valid setup and an attack success rate ≥ :data:`PASS_RATE`."""
        return self.n_valid > 0 and self.success_rate >= PASS_RATE

    def summary(self) -> dict[str, Any]:
        """The numbers of the record: n, n_valid, n_failed, n_success, rates, passed."""
        return {"n": self.n, "n_valid": self.n_valid, "n_failed": self.n_failed, "n_success": self.n_success,
                "success_rate": self.success_rate, "random_rate": self.random_rate, "passed": self.passed}

    def to_json(self) -> dict[str, Any]:
        """JSON values: the fields, plus :meth:`summary` (``"n"`` the number of images)."""
        return {**self.summary(), "norm": self.norm, "eps": self.eps, "attacks": list(self.attacks),
                "settings": dict(self.settings), "seconds": dict(self.seconds),
                "images": [asdict(o) for o in self.images]}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "BinarizationResult":
        """The inverse of :meth:`to_json` (the summary keys are recomputed, not read)."""
        # as a check's stored record, "seconds" is the check's total (a number) that the check
        # runner writes over this record's per-phase {phase: seconds}
        phases = record.get("seconds", {})
        return cls(norm=str(record["norm"]), eps=float(record["eps"]), attacks=tuple(record["attacks"]),
                   settings=dict(record["settings"]), images=tuple(ImageOutcome(**o) for o in record["images"]),
                   seconds=dict(phases) if isinstance(phases, Mapping) else {"total": float(phases)})


# --------------------------------------------------------------------------- sampling
def _boundary_points(x: torch.Tensor, threat: ThreatModel, generator: torch.Generator) -> torch.Tensor:
    """(n, C, H, W) points at distance ε from ``x`` (n, C, H, W) inside [0, 1] (see the module doc).

    A row whose distance cannot reach ε inside the box comes back nearer (the caller checks).
    """
    eps = threat.eps
    if threat.norm is Norm.LINF:
        signs = randint(2, x.shape, generator, x.device).to(x.dtype).mul_(2.0).sub_(1.0)
        return (x + eps * signs).clamp_(threat.lower, threat.upper)
    x64 = x.double()
    direction = normal(x.shape, generator, x64)
    direction = direction / torch.linalg.vector_norm(direction.flatten(1), dim=1).view(-1, 1, 1, 1)

    def reach(scale: torch.Tensor) -> torch.Tensor:
        moved = (x64 + scale.view(-1, 1, 1, 1) * direction).clamp(threat.lower, threat.upper)
        return torch.linalg.vector_norm((moved - x64).flatten(1), dim=1)

    lo = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    hi = torch.full_like(lo, eps)
    for _ in range(_BISECTION_STEPS):  # grow the bracket until clipping still leaves distance ε
        short = reach(hi) < eps
        if not bool(short.any()):
            break
        hi = torch.where(short, 2.0 * hi, hi)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = reach(mid) <= eps
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    point = (x64 + lo.view(-1, 1, 1, 1) * direction).clamp(threat.lower, threat.upper)
    return point.to(x.dtype)


def _image_points(x: torch.Tensor, threat: ThreatModel, settings: BinarizationSettings,
                  generator: torch.Generator) -> torch.Tensor:
    """Rows ``[x, inner (n_inner − 1), boundary, random in the ε-ball (n_random),
    random like the boundary (n_random)]`` of one image ``x`` (C, H, W)."""
    inner_threat = ThreatModel(threat.norm, settings.inner_ratio * threat.eps, threat.lower, threat.upper)
    inner = inner_threat.random_start(x.expand(settings.n_inner - 1, *x.shape).contiguous(), generator)
    boundary = _boundary_points(x[None], threat, generator)
    rows = [x[None], inner, boundary]
    if settings.n_random:
        many = x.expand(settings.n_random, *x.shape).contiguous()
        rows += [threat.random_start(many, generator), _boundary_points(many, threat, generator)]
    return torch.cat(rows)


# --------------------------------------------------------------------------- the readout
def _features(model: nn.Module, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(M, D) float32 features of ``points`` (M, C, H, W), in batches, without gradients."""
    with torch.inference_mode():
        return torch.cat([model.features(points[i:i + batch_size]) for i in range(0, points.shape[0], batch_size)])


def _fit(features: torch.Tensor, max_iterations: int) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Balanced, unregularised logistic regression of the last row (boundary) against the others.

    Args:
        features: (M, D) float64 on the CPU; row M − 1 is the boundary point.
    Returns:
        ``(w (D,), b (), iterations, separated)`` on the raw features: ``score = f·w + b`` is
        positive for boundary; ``separated``: every row has the sign of its label.
    """
    m, d = features.shape
    mean = features.mean(dim=0)
    std = features.std(dim=0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    g = (features - mean) / std
    sign = torch.full((m,), -1.0, dtype=torch.float64)
    sign[-1] = 1.0
    weight = torch.where(sign > 0, m / 2.0, m / (2.0 * (m - 1)))  # balanced classes
    params = torch.zeros(d + 1, dtype=torch.float64, requires_grad=True)
    chunk = min(20, max_iterations)
    opt = torch.optim.LBFGS([params], lr=1.0, max_iter=chunk, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * F.softplus(-sign * (g @ params[:d] + params[d]))).sum() / m
        loss.backward()
        return loss

    iterations, separated = 0, False
    with torch.enable_grad():
        while iterations < max_iterations:
            opt.step(closure)
            done = int(opt.state[params].get("n_iter", 0))
            with torch.no_grad():
                separated = bool((sign * (g @ params[:d] + params[d]) > 0).all())
            if separated or done == iterations:  # separated, or L-BFGS has converged
                iterations = done
                break
            iterations = done
    with torch.no_grad():
        w = params[:d].detach() / std
        b = params[d].detach() - (mean * w).sum()
    return w, b, iterations, separated


def _readout(features: torch.Tensor, original: torch.Tensor, settings: BinarizationSettings
             ) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """The binary readout from the training features (rows ``[x, inner..., boundary]``).

    Args:
        features: (M, D) float32 training features; original: (M, K) the model's own logits there.
    Returns:
        ``(weight (2, D) float64, bias (2,) float64, iterations, separated)``.
    """
    f = features.detach().double().cpu()
    w, b, iterations, separated = _fit(f, settings.max_fit_iterations)
    score = f @ w + b
    b = b - settings.closeness * score[-1]  # the boundary point keeps (1 − closeness) of its margin
    score = f @ w + b
    logit_range = float(original.max() - original.min())
    scale = logit_range / float(score.abs().max()) if logit_range > 0 and float(score.abs().max()) > 0 else 1.0
    weight = torch.stack([-0.5 * w, 0.5 * w]) * scale  # logit(boundary) − logit(inner) = scale·score
    bias = torch.stack([-0.5 * b, 0.5 * b]) * scale
    return weight, bias, iterations, separated


class _Readouts(nn.Module):
    """The model's features followed, row by row, by the readout of the image nearest to the row.

    forward: (n, C, H, W) float in [0, 1] → (n, 2) logits; row ``r`` uses the readout of the
    centre ``argmin_i ‖x_r − centres_i‖`` (the test's norm; the choice carries no gradient).
    With one centre this is exactly that image's binary model.
    """

    def __init__(self, model: nn.Module, centres: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 norm: Norm) -> None:
        super().__init__()
        self.model = model
        self.norm = norm
        self.register_buffer("centres", centres.flatten(1))
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.centres.shape[0] == 1:
            nearest = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        else:
            with torch.no_grad():
                diff = x.detach().flatten(1)[:, None, :] - self.centres[None]
                nearest = torch.linalg.vector_norm(diff, ord=self.norm.p, dim=2).argmin(dim=1)
        f = self.model.features(x)
        return torch.einsum("nd,ncd->nc", f, self.weight[nearest]) + self.bias[nearest]


def _binary_model(model: nn.Module, tasks: Sequence[BinaryTask], norm: Norm) -> _Readouts:
    return _Readouts(model, torch.stack([t.x for t in tasks]), torch.stack([t.weight for t in tasks]),
                     torch.stack([t.bias for t in tasks]), norm)


# --------------------------------------------------------------------------- the test
def _threat(eps: float, norm: Norm | str) -> ThreatModel:
    threat = ThreatModel(norm, eps)
    if threat.norm not in SUPPORTED_NORMS:
        raise ConfigError(f"the binarization test supports {', '.join(n.value for n in SUPPORTED_NORMS)}, "
                          f"got {threat.norm.value}")
    return threat


def _check_images(x: torch.Tensor, generators: RowGenerators) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point() or x.shape[0] == 0:
        raise InputError(f"binarization: images must be a non-empty (k, C, H, W) float tensor, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise InputError("binarization: images must lie in [0, 1]")
    if not isinstance(generators, RowGenerators) or len(generators) != x.shape[0]:
        raise InputError(f"binarization: give one random stream per image (RowGenerators with {x.shape[0]} "
                         f"rows), got {generators!r}")


def prepare_tasks(model: nn.Module, x: torch.Tensor, eps: float, norm: Norm | str,
                  generators: RowGenerators, settings: BinarizationSettings = BinarizationSettings(),
                  progress: bool = False) -> list[BinaryTask]:
    """Build the binary task of every image (steps 1-5 and 7 of the module docstring).

    Args:
        model: in eval mode, with the feature hook (:mod:`scfront.models.features`), on
            ``x``'s device; its readout is read, never changed.
        x: (k, C, H, W) float32 in [0, 1]. eps, norm: the threat model (Linf or L2).
        generators: one stream per image; one 64-bit value is drawn from each.
        settings: how the tasks are built. progress: log a line per image.
    Returns:
        One :class:`BinaryTask` per image, in order.
    Raises:
        ConfigError: the model has no feature hook, or an unsupported norm.
        InputError: bad images or generators.
    """
    threat = _threat(eps, norm)
    original = feature_readout(model)
    _check_images(x, generators)
    seeds = generators.raw(1)[:, 0].tolist()
    tasks: list[BinaryTask] = []
    n_train = settings.n_inner + 1
    for i, seed in enumerate(seeds):
        generator = torch.Generator(device="cpu").manual_seed(int(seed) & _MASK64)
        points = _image_points(x[i], threat, settings, generator)
        features = _features(model, points, settings.batch_size)
        with torch.inference_mode():
            logits = original(features[:n_train])
        weight, bias, iterations, separated = _readout(features[:n_train], logits, settings)
        weight, bias = weight.to(device=x.device, dtype=x.dtype), bias.to(device=x.device, dtype=x.dtype)
        boundary = points[settings.n_inner]
        task = BinaryTask(x[i], boundary, weight, bias, Setup.OK, iterations, 0, 0.0)
        with torch.inference_mode():
            check = _binary_model(model, [task], threat.norm)(torch.stack([x[i], boundary]))
            random_hits = int((features[n_train:] @ weight.T + bias).argmax(dim=1).sum()) if settings.n_random else 0
        margin = float(check[1, 1] - check[1, 0])
        if float(threat.distance(boundary[None], x[i][None])) < threat.eps * (1.0 - 1e-4):
            setup = Setup.NO_BOUNDARY
        elif not separated:
            setup = Setup.NOT_SEPARABLE
        elif int(check[0].argmax()) != 0:
            setup = Setup.CLEAN_NOT_INNER
        elif margin <= 0:
            setup = Setup.BOUNDARY_NOT_ADVERSARIAL
        else:
            setup = Setup.OK
        tasks.append(BinaryTask(x[i], boundary, weight, bias, setup, iterations, random_hits, margin))
        if progress:
            log.info("binarization setup %d/%d: %s (%d L-BFGS iterations, %d random hits)", i + 1, len(seeds),
                     setup.value, iterations, random_hits)
    return tasks


def _groups(tasks: Sequence[BinaryTask], rows: Sequence[int], threat: ThreatModel,
            size: int = ATTACK_BATCH) -> list[list[int]]:
    """``rows`` split into groups of at most ``size`` whose clean images are more than 2ε apart
    (greedy, in order)."""
    groups: list[list[int]] = []
    for r in rows:
        for group in groups:
            if len(group) >= size:
                continue
            others = torch.stack([tasks[g].x for g in group])
            if bool((threat.distance(others, tasks[r].x.expand_as(others)) > 2.0 * threat.eps * (1 + 1e-6)).all()):
                group.append(r)
                break
        else:
            groups.append([r])
    return groups


def attack_tasks(model: nn.Module, tasks: Sequence[BinaryTask], attacks: Sequence[Attack],
                 generators: RowGenerators, eps: float, norm: Norm | str, progress: bool = False) -> list[int]:
    """Run ``attacks`` as a cascade on the usable tasks (step 6 of the module docstring).

    Args:
        model: the model the tasks were built on (its features are used).
        tasks: from :func:`prepare_tasks`. attacks: fixed-budget or minimum-norm attacks of the
            test's norm with radius at most ``eps`` (their verdict must lie in the test's ball).
        generators: one stream per task (the attacks draw from them).
    Returns:
        Per task: the position of the first attack that found the adversarial, −1 if none did,
        −2 if the task's setup failed.
    Raises:
        ConfigError: an attack of another norm or a larger radius, or no attack.
    """
    threat = _threat(eps, norm)
    if not attacks:
        raise ConfigError("binarization: give at least one attack")
    for attack in attacks:
        if attack.threat.norm is not threat.norm or attack.threat.eps > threat.eps * (1 + 1e-9):
            raise ConfigError(f"binarization: attack {attack.name} works in the {attack.threat.norm.value} ball of "
                              f"radius {attack.threat.eps:g}; the test needs attacks inside its "
                              f"{threat.norm.value} ball of radius {threat.eps:g}")
    if len(generators) != len(tasks):
        raise InputError(f"binarization: {len(generators)} random streams for {len(tasks)} tasks")
    broken_by = [-2 if t.setup is not Setup.OK else -1 for t in tasks]
    valid = [i for i, t in enumerate(tasks) if t.setup is Setup.OK]
    batched = _groups(tasks, valid, threat)
    for j, attack in enumerate(attacks):
        start = time.perf_counter()
        groups = [[i] for i in valid] if isinstance(attack, MinimumNormAttack) else batched
        for group in groups:
            todo = [i for i in group if broken_by[i] == -1]
            if not todo:
                continue
            binary = _binary_model(model, [tasks[i] for i in todo], threat.norm)
            x = torch.stack([tasks[i].x for i in todo])
            y = torch.zeros(len(todo), dtype=torch.long, device=x.device)
            result = attack(binary, x, y, generator=rows_of(generators, todo))
            for i, hit in zip(todo, result.success.tolist()):
                if hit:
                    broken_by[i] = j
        if progress:
            log.info("binarization: %s done in %.0f s, %d of %d found", attack.name, time.perf_counter() - start,
                     sum(b >= 0 for b in broken_by), len(valid))
    return broken_by


def binarization_test(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack], eps: float,
                      norm: Norm | str, generators: RowGenerators,
                      settings: BinarizationSettings = BinarizationSettings(), *,
                      indices: torch.Tensor | Sequence[int] | None = None,
                      tasks: Sequence[BinaryTask] | None = None, progress: bool = False) -> BinarizationResult:
    """The active binarization test of ``attacks`` on ``model`` (see the module docstring).

    Args:
        model: maps (k, C, H, W) float in [0, 1] to logits and has the feature hook
            (:mod:`scfront.models.features`); put in eval mode on ``x``'s device.
        x: (k, C, H, W) float32 in [0, 1] test images. y: (k,) int64 their labels (recorded only).
        attacks: the cascade, e.g. ``build_suite(["pgd-linf"])``; each of norm ``norm`` and
            radius ≤ ``eps``.
        eps, norm: the threat model (Linf or L2).
        generators: one stream per image (e.g. the evaluation's ``unit_generators``).
        settings: how the tasks are built.
        indices: (k,) dataset indices to record (``None``: 0, ..., k − 1).
        tasks: tasks already built by :func:`prepare_tasks` with the same model, images, ε,
            norm, settings and streams (to test several cascades on one setup); the setup's
            draw is still taken from ``generators``, so the result equals a fresh call's.
    Returns:
        A :class:`BinarizationResult`.
    Raises:
        ConfigError: no feature hook, an unsupported norm, or attacks outside the test's ball.
        InputError: bad images, labels, generators or tasks.
    """
    threat = _threat(eps, norm)
    feature_readout(model)
    _check_images(x, generators)
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise InputError(f"binarization: labels must be a ({x.shape[0]},) tensor, got {getattr(y, 'shape', y)}")
    index = list(range(x.shape[0])) if indices is None else [int(i) for i in indices]
    if len(index) != x.shape[0]:
        raise InputError(f"binarization: {len(index)} indices for {x.shape[0]} images")
    model = model.eval()
    with torch.inference_mode():
        correct = (predict(model, x) == y.to(x.device)).tolist()
    start = time.perf_counter()
    if tasks is None:
        tasks = prepare_tasks(model, x, threat.eps, threat.norm, generators, settings, progress)
    else:
        if len(tasks) != x.shape[0] or any(not torch.equal(t.x, x[i]) for i, t in enumerate(tasks)):
            raise InputError("binarization: the given tasks were not built on these images")
        generators.raw(1)  # the setup's draw, as prepare_tasks takes it
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    broken_by = attack_tasks(model, tasks, attacks, generators, threat.eps, threat.norm, progress)
    outcomes = tuple(ImageOutcome(index=index[i], label=int(y[i]), clean_correct=bool(correct[i]), setup=t.setup.value,
                                  success=broken_by[i] >= 0, broken_by=broken_by[i], random_hits=t.random_hits,
                                  fit_iterations=t.fit_iterations) for i, t in enumerate(tasks))
    return BinarizationResult(norm=threat.norm.value, eps=threat.eps, attacks=tuple(a.name for a in attacks),
                              settings=asdict(settings), images=outcomes,
                              seconds={"setup": setup_seconds, "attacks": time.perf_counter() - start})


# --------------------------------------------------------------------------- the check
@register_check
class BinarizationCheck(ModelCheck):
    """The binarization test of the suite's attacks on the check's images (opt-in, at most
    :data:`CHECK_IMAGES` by default: each image costs ``n_inner + 1 + 2·n_random`` forward
    passes and one run of the cascade).

    The test's threat model is the suite's first Linf or L2 attack's; the cascade is every
    attack of the suite in that norm with radius at most that ε, in suite order. Passes if the
    attack success rate over the valid setups is ≥ 95 %. A model without the feature hook
    (:mod:`scfront.models.features`) fails the check with the message that says how to add it.
    """

    name = "binarization"
    default: ClassVar[bool] = False
    budget: ClassVar[int | None] = CHECK_IMAGES

    def run(self, inputs: CheckInputs) -> dict[str, Any]:
        n = int(inputs.x.shape[0])
        first = next((a for a in inputs.attacks if a.threat.norm in SUPPORTED_NORMS), None)
        if first is None:
            return {"n": n, "applicable": False}
        try:
            feature_readout(inputs.model)
        except ConfigError as exc:
            return {"n": n, "applicable": False, "reason": str(exc)}
        norm, eps = first.threat.norm, first.threat.eps
        cascade = [a for a in inputs.attacks if a.threat.norm is norm and a.threat.eps <= eps * (1 + 1e-9)]
        indices = torch.arange(n) if inputs.indices is None else inputs.indices
        result = binarization_test(inputs.model, inputs.x, inputs.y, cascade, eps, norm,
                                   inputs.generator(self.name), indices=indices)
        return {"applicable": True, **result.to_json()}

    def verdict(self, record: Mapping[str, Any], col: Collected) -> Verdict:
        if not record.get("applicable", False):
            if "reason" in record:
                return Verdict(False, f"could not run: {record['reason']}", {"applicable": False})
            return Verdict(True, "not applicable: no Linf or L2 attack in the suite", {"applicable": False})
        result = BinarizationResult.from_json(record)
        rate = result.success_rate
        return Verdict(result.passed,
                       f"{', '.join(result.attacks)}: attack success rate {rate:.1%} on {result.n_valid} binarized "
                       f"images (must be >= {PASS_RATE:.0%}); random points already succeed on "
                       f"{result.random_rate:.1%} of them; setup failed for {result.n_failed} of {result.n}",
                       {"applicable": True, "success_rate": rate, "random_rate": result.random_rate,
                        "n_valid": result.n_valid, "n_failed": result.n_failed})
