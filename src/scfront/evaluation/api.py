"""``scfront.evaluate``: the evaluation of any model on any images in one call, with a typed result.

It is :func:`scfront.evaluation.protocol.evaluate` (the same validation, cascade, per-example
worst case, self-checks and files) behind a signature for tensors::

    result = scfront.evaluate(model, images, labels, attacks="@autoattack", eps=8/255, norm="Linf")
    result.robust_accuracy          # {attack name: accuracy after it (cumulative along the cascade)}
    result.worst_case_accuracy      # per-example worst case over the suite
    result.broken_by[i]             # name of the first attack that broke image i (None: none did)

With ``out=None`` the evaluation folder is a temporary one, removed before the call returns;
with a folder the run is resumable and leaves results.json, report.md and
adversarials.safetensors there (docs/evaluation.md §7).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from scfront.attacks.base import Attack
from scfront.attacks.blackbox.starts import StartPool
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError, InputError
from scfront.evaluation.protocol import evaluate as run_evaluation
from scfront.evaluation.runner import EvalData
from scfront.evaluation.suite import build_suite, expand_suites
from scfront.validate import to_enum

__all__ = ["AttackSummary", "CheckSummary", "Evaluation", "evaluate"]

# the largest distance of a float image's values from k/255 that still counts as 8-bit
EIGHT_BIT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AttackSummary:
    """One attack of the suite: ``robust_accuracy`` in [0, 1] over all images (cumulative along
    the cascade), ``n_run`` images it ran on, ``n_broken`` it broke, its ``seconds``."""

    name: str
    norm: str | None
    eps: float | None
    robust_accuracy: float
    n_run: int
    n_broken: int
    seconds: float


@dataclass(frozen=True)
class CheckSummary:
    """One self-check: ``passed``, its one-line ``detail`` and the ``seconds`` it took."""

    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` returns (accuracies are fractions of all N images, in [0, 1]).

    Attributes:
        clean_accuracy: accuracy without attack.
        attacks: the suite's attacks in order (:class:`AttackSummary`).
        worst_case_accuracy: an image counts only if it is classified correctly and no attack
            broke it (the number to report).
        correct: (N,) bool, classified correctly without attack.
        robust: (N,) bool, correct and broken by no attack (the per-example verdicts).
        broken_by: per image, the name of the first attack that broke it; ``None`` where no
            attack did (robust, or misclassified already: see ``correct``).
        checks: {name: :class:`CheckSummary`} of the self-checks that ran.
        clean_seconds, attack_seconds, check_seconds: time of the clean pass, of every attack,
            of every check.
        results: the results.json object (docs/evaluation.md §7).
        out: the evaluation folder, or None when it was a temporary one (removed).
    """

    clean_accuracy: float
    attacks: tuple[AttackSummary, ...]
    worst_case_accuracy: float
    correct: torch.Tensor
    robust: torch.Tensor
    broken_by: tuple[str | None, ...]
    checks: Mapping[str, CheckSummary]
    clean_seconds: float
    attack_seconds: float
    check_seconds: float
    results: Mapping[str, Any]
    out: Path | None

    @property
    def robust_accuracy(self) -> dict[str, float]:
        """{attack name: robust accuracy}, in suite order."""
        return {a.name: a.robust_accuracy for a in self.attacks}

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that did not pass."""
        return [name for name, check in self.checks.items() if not check.passed]

    @classmethod
    def from_results(cls, results: Mapping[str, Any], out: Path | None) -> "Evaluation":
        """The typed view of a results.json object (``out``: where it lives, if kept)."""
        attacks = tuple(AttackSummary(a["name"], a["norm"], a["eps"], a["robust_accuracy"], a["n_run"],
                                      a["n_broken"], a["seconds"]) for a in results["attacks"])
        positions = torch.tensor(results["broken_by"], dtype=torch.int64)
        checks = {name: CheckSummary(name, c["passed"], c["detail"], float(c.get("seconds", 0.0)))
                  for name, c in results["checks"].items()}
        return cls(clean_accuracy=results["clean_accuracy"], attacks=attacks,
                   worst_case_accuracy=results["worst_case_accuracy"], correct=positions != -2,
                   robust=positions == -1,
                   broken_by=tuple(attacks[p].name if p >= 0 else None for p in positions.tolist()),
                   checks=checks, clean_seconds=results["clean_seconds"],
                   attack_seconds=results.get("attack_seconds", sum(a.seconds for a in attacks)),
                   check_seconds=results.get("check_seconds", sum(c.seconds for c in checks.values())),
                   results=results, out=out)


def _images(images: Any) -> torch.Tensor:
    """(N, C, H, W) uint8 from uint8 pixels or float images in [0, 1] whose values are k/255."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"images must be a non-empty (N, C, H, W) tensor, uint8 or float in [0, 1], got {got}")
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.contiguous()
    if not images.is_floating_point():
        raise InputError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise InputError("images contain NaN or infinite values; expected float images in [0, 1]")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        hint = "; 0-255 pixels, it seems: divide by 255 or pass uint8" if 2.0 < hi <= 255.0 and lo >= 0.0 else ""
        raise InputError(f"float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")
    scaled = images.double() * 255.0
    off = float((scaled - scaled.round()).abs().max())
    if off > EIGHT_BIT_TOLERANCE:
        raise InputError(f"float images must hold 8-bit values k/255 (the evaluation stores and attacks 8-bit "
                         f"images; these are off by up to {off / 255:.2g}): quantize them with "
                         "(x * 255).round() / 255, or pass uint8")
    return scaled.round().to(torch.uint8)


def _labels(labels: Any, n: int) -> torch.Tensor:
    """(N,) int64 class indices >= 0."""
    labels = torch.as_tensor(labels)
    if labels.shape != (n,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"labels must be an integer tensor of shape ({n},) (one class index per image), got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    if bool((labels < 0).any()):
        raise InputError("labels contain negative values; expected class indices >= 0")
    return labels.to(torch.int64).cpu()


def _suite(attacks: str | Sequence[str | Attack], eps: float | None, norm: str | None) -> list[Attack]:
    """Attack objects: items built with ``eps`` and ``norm`` as suite-wide values, objects as given."""
    if isinstance(attacks, str):
        entries: list[str | Attack] = [part for part in attacks.split(",") if part.strip()]
    else:
        entries = list(attacks)
    if not entries:
        raise ConfigError("attacks lists no attack; name at least one, e.g. attacks=\"pgd-linf\"")
    wanted = None if norm is None else to_enum(Norm, norm, "norm")
    overrides = {"eps": eps, "norm": None if wanted is None else wanted.value}
    suite: list[Attack] = []
    for entry in entries:
        if isinstance(entry, Attack):
            suite.append(entry)
            continue
        if not isinstance(entry, str):
            raise ConfigError(f"attacks must be names (\"pgd-linf\", \"@autoattack\", \"square:queries=1000\") or "
                              f"attack objects, got a {type(entry).__name__}")
        built = build_suite(expand_suites([entry]), overrides)
        wrong = [a.name for a in built if wanted is not None and a.threat.norm is not wanted]
        if wrong:
            raise ConfigError(f"{', '.join(wrong)} attack(s) another norm than norm={wanted.value!r} (a fixed "
                              f"norm); choose attacks of that norm or pass norm=None")  # type: ignore[union-attr]
        suite.extend(built)
    return suite


def evaluate(model: nn.Module | str | Path, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
             attacks: str | Sequence[str | Attack] = "@autoattack", *, eps: float | None = 8.0 / 255.0,
             norm: str | None = "Linf", out: str | Path | None = None, weights: str | Path | None = None,
             n_classes: int | None = None, checks: bool | str | Sequence[str] = True, check_images: int = 100,
             batch_size: int = 250, seed: int = 0, cascade: bool = True, indices: torch.Tensor | None = None,
             model_name: str | None = None, dataset: str = "custom", device: torch.device | str = "cpu",
             progress: bool = False, model_seed: int | None = None, attack_model: str = "auto",
             rebatch: bool = True) -> Evaluation:
    """Attack ``model`` on ``images`` with a suite and return the typed results.

    Args:
        model: an ``nn.Module`` mapping (N, C, H, W) float in [0, 1] to (N, K) logits, or anything
            :func:`scfront.load` accepts (a saved folder, an original ResNet-32 ``.pt``, a shipped
            name such as ``"cifar10_cpu"``, ``"package.module:factory"`` with ``weights``).
        images: (N, C, H, W) uint8 pixels, or float in [0, 1] holding 8-bit values (k/255).
        labels: (N,) integer class indices.
        attacks: a string of comma-separated items (``"@autoattack"``, ``"pgd-linf,square:queries=1000"``)
            or a list of items and attack objects (objects are used as they are).
        eps: radius given to every attack built from a name (``None``: each attack's default).
        norm: ``"Linf"``, ``"L2"`` or ``"L1"``, given to attacks that take a norm; an attack of
            another fixed norm is an error (``None``: each attack's own norm).
        out: evaluation folder (kept, resumable); ``None``: a temporary folder, removed.
        weights: for a ``package.module:factory`` spec: its state_dict file.
        n_classes: the dataset's classes (the model must output one logit per class; ``None``:
            only checked against the labels).
        checks: self-checks (``True`` the defaults, ``False`` none, or names such as
            ``"default,bpda-variants"``, ``"more-steps:images=100"``; docs/evaluation.md §5).
        check_images: images the checks may use (the first ones).
        batch_size, seed, cascade: as ``scfront evaluate`` (docs/evaluation.md §3).
        indices: (N,) int64 ids of the images that key their random streams (default 0..N−1).
        model_name, dataset: display names for the results.
        device: where the model and the attacks run.
        model_seed: a randomised model's own seed (reseeded per unit, recorded; default 0),
            apart from ``seed`` (the attacks'); refused for a deterministic model.
        attack_model, rebatch: speed only (the attacks on a BatchNorm-folded copy, verdicts from
            the model; points re-batched across batches): see
            :func:`scfront.evaluation.protocol.evaluate`.
    Returns:
        :class:`Evaluation`.
    Raises:
        ConfigError, InputError: bad arguments, or a model the attacks cannot evaluate (output
            probabilities instead of logits, a class count that does not match, images it cannot
            take), before any attack.
    """
    from scfront.models.loader import load, resolve_spec

    suite = _suite(attacks, eps, norm)
    pixels = _images(images)
    y = _labels(labels, int(pixels.shape[0]))
    ids = torch.arange(pixels.shape[0]) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
    if ids.shape != y.shape or len(set(ids.tolist())) != ids.numel():
        raise InputError(f"indices must be ({y.numel()},) distinct integers, one per image")
    if isinstance(model, nn.Module):
        if weights is not None:
            raise ConfigError("weights= applies to a model spec (package.module:factory), not to a module")
        name = model_name or type(model).__name__
    else:
        resolved = resolve_spec(model)
        name = model_name or resolved.display_name
        model = load(resolved, weights=weights, device=device)
    data = EvalData(ids, pixels, y)
    options: dict[str, Any] = dict(starts=StartPool(pixels), model_name=name, dataset=dataset, seed=seed,
                                   batch_size=batch_size, cascade=cascade, checks=checks,
                                   check_images=check_images, device=device, progress=progress,
                                   n_classes=n_classes, model_seed=model_seed, attack_model=attack_model,
                                   rebatch=rebatch)
    if out is not None:
        results = run_evaluation(model, data, suite, Path(out), **options)
        assert results is not None  # one process computes every batch
        return Evaluation.from_results(results, Path(out))
    with tempfile.TemporaryDirectory(prefix="scfront-evaluate-") as tmp:
        results = run_evaluation(model, data, suite, Path(tmp) / "evaluation", **options)
        assert results is not None
        return Evaluation.from_results(results, None)
