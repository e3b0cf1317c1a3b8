"""The evaluation protocol in one place: run the attack units, then the checks, then the results.

:func:`evaluate` is ``scfront evaluate`` (and what Table 1, the ablations and the demo call):

1. :func:`~scfront.evaluation.checks.validate_model`: before anything is written or attacked,
   the model must take the images and return logits, one per class of the dataset (a clear
   error otherwise);
2. :func:`~scfront.evaluation.runner.run_units`: the clean pass and every attack on every batch
   of this shard that is not stored yet (AutoAttack cascade inside each column);
3. :func:`~scfront.evaluation.checks.run_checks`: the selected self-checks that run on the
   model, in the shard that owns batch 0, reusing the stored attack runs on their images;
4. :func:`finalize`, once every unit and check is stored: results.json (with the per-example
   worst case, the per-column accuracies and every check's verdict), report.md and
   adversarials.safetensors, all computed from the stored units only.

:func:`merge` (``scfront evaluate-merge``) copies the units of shards run into separate folders
into one and finalizes it. The modules below this one never import it, so the evaluation's import
graph has no cycle.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import nn

from scfront.attacks.base import Attack
from scfront.attacks.blackbox.stored import save_adversarials
from scfront.errors import ConfigError
from scfront.evaluation.checks import (VALIDATION_IMAGES, checks_complete, judge_checks, resolve_selection,
                                       run_checks, validate_model)
from scfront.evaluation.report import render_report
from scfront.evaluation.results import (ADVERSARIALS_FILE, REPORT_FILE, RESULTS_FILE, build_results,
                                        collect, missing_units, stored_adversarials, stored_runs)
from scfront.evaluation.runner import EvalData, run_units
from scfront.evaluation.spec import EvalSpec, Shard, model_digest, read_spec, write_or_check_spec
from scfront.evaluation.state import StateStore
from scfront.evaluation.suite import attack_spec
from scfront.evaluation import binarization  # noqa: F401  (registers the opt-in check "binarization")
from scfront.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool

__all__ = ["evaluate", "finalize", "merge", "suite_of"]

Suite = Sequence[Attack] | Mapping[str, Sequence[Attack]]

log = logging.getLogger(__name__)


def suite_of(attacks: Suite) -> tuple[list[Attack], list[str | None]]:
    """(attacks in order, the column label of each) for a plain suite or {label: attacks}."""
    if isinstance(attacks, Mapping):
        if not attacks:
            raise ConfigError("an evaluation needs at least one column of attacks")
        pairs = [(attack, str(label)) for label, column in attacks.items() for attack in column]
        empty = [str(label) for label, column in attacks.items() if not column]
        if empty:
            raise ConfigError(f"column(s) {', '.join(empty)} have no attack")
        return [a for a, _ in pairs], [label for _, label in pairs]
    suite = list(attacks)
    return suite, [None] * len(suite)


def evaluate(model: nn.Module, data: EvalData, attacks: Suite, out_dir: str | Path, *,
             starts: StartPool | None = None, model_name: str = "model", dataset: str = "cifar10",
             subset_seed: int = 0, seed: int = 0, batch_size: int = 250, cascade: bool = True,
             checks: bool | str | Sequence[str] = True, check_images: int = 100, shard: Shard = Shard(),
             device: torch.device | str = "cpu", progress: bool = True,
             n_classes: int | None = None, model_seed: int | None = None, attack_model: str = "auto",
             rebatch: bool = True) -> dict[str, Any] | None:
    """Run (or resume) an evaluation into ``out_dir``; the results once every unit is done.

    Args:
        model: maps (N, C, H, W) float in [0, 1] to logits. data: the subset (:class:`EvalData`).
        attacks: the suite in order (one cascade, see :func:`~scfront.evaluation.suite.build_suite`),
            or {column label: attacks} (a cascade per column, columns independent of each other;
            e.g. the columns of a Table 1 row, :func:`~scfront.evaluation.suite.build_columns`).
        starts: starting images for the attacks that take them (``Attack.uses_starts``:
            Boundary, HopSkipJump), e.g. ``StartPool(test_set.images)``; None: those attacks
            find their own starts.
        cascade: each attack only on the points every earlier attack of its column failed on.
        checks: which self-checks run on the first ``check_images`` images: ``True`` the default
            ones, ``False`` none, or names (``"default"``, ``"all"``, ``"NAME:images=K"``; see
            :func:`~scfront.evaluation.checks.resolve_selection`). The selection is stored with
            the checks' records; results.json reports the selection of the last run.
        shard: the batches this process computes (the checks run in shard 0).
        n_classes: the dataset's number of classes (the model must have one output per class;
            ``None``: only checked against the labels).
        model_seed: for a model whose test-time forward pass is random (noise, dropout, an
            ensemble of them): the seed of its own stream, reseeded per unit of work and
            recorded in spec.json (default 0); separate from ``seed``, the attacks' streams.
            Refused for a deterministic model.
        attack_model: the copy of the model the attacks run on (:func:`~scfront.models.
            prepare_for_attack` mode): ``"auto"`` (BatchNorm folded, checked against the model
            on the first images, the plain copy where the check fails), ``"fold"``, ``"jit"``,
            ``"compile"``, or ``"plain"`` (attack the model itself). Verdicts and the clean pass
            always come from the model itself; a randomised model is always attacked itself.
            Not part of the spec: it changes the speed, not the results (beyond float rounding).
        rebatch: gather each attack's points across batches into full batches
            (:func:`~scfront.evaluation.runner.run_units`); ``False``: batch by batch.
    Returns:
        The results.json object, or None while other shards still have units to compute.
    """
    suite, labels = suite_of(attacks)
    selection = resolve_selection(checks, check_images)
    spec = EvalSpec(model=model_name, model_sha256=model_digest(model), dataset=dataset,
                    n_images=int(data.labels.shape[0]), subset_seed=subset_seed, seed=seed,
                    batch_size=batch_size, cascade=cascade, checks=bool(selection), check_images=check_images,
                    attacks=tuple(attack_spec(a, label) for a, label in zip(suite, labels)),
                    model_seed=_model_seed(model, model_seed))
    device = torch.device(device)
    model = model.to(device).eval()
    validate_model(model, *data.batch(slice(0, VALIDATION_IMAGES), device), suite, n_classes, seed)
    _check_attack_model(attack_model)
    randomized = spec.model_seed is not None
    run_units(model, data, spec, suite, out_dir, shard, device, progress, starts=starts, rebatch=rebatch,
              attack_model=lambda: _attack_copy(model, data, device, attack_model, randomized))
    store = StateStore(out_dir)
    if spec.checks and shard.runs_checks:
        first = slice(0, min(spec.check_images, spec.n_images))
        x, y = data.batch(first, device)
        run_checks(model, x, y, spec, suite, store, progress, indices=data.indices[first], selection=selection,
                   n_classes=n_classes, stored=stored_runs(out_dir, spec, first.stop))
    if missing_units(Path(out_dir), spec) or (spec.checks and not checks_complete(store)):
        return None
    return finalize(out_dir)


def _check_attack_model(mode: str) -> None:
    from scfront.models.fast import MODES

    if mode not in MODES:
        raise ConfigError(f"attack_model must be one of {', '.join(MODES)}, got {mode!r}")


def _attack_copy(model: nn.Module, data: EvalData, device: torch.device, mode: str,
                 randomized: bool) -> nn.Module | None:
    """The faster copy the attacks run on (None: attack ``model`` itself)."""
    from scfront.models.fast import prepare_for_attack

    if mode == "plain" or randomized:
        return None
    probe, _ = data.batch(slice(0, VALIDATION_IMAGES), device)
    try:
        fast = prepare_for_attack(model, probe, mode=mode)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - e.g. a user model that cannot be copied
        log.warning("no attack copy of the model (%s: %s); the attacks run on the model itself",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
    prep = fast.attack_preparation
    if prep.mode == "plain" or not (prep.folded or prep.compiled):
        return None  # nothing to gain: the attacks run on the model itself
    log.info("attacks run on a %s copy of the model (%d BatchNorm folded); verdicts from the model itself",
             prep.mode, len(prep.folded))
    return fast


def _model_seed(model: nn.Module, requested: int | None) -> int | None:
    """The recorded seed of a randomised model's own stream: ``requested``, else 0; None for a
    deterministic model (a seed given for one is refused: it would change nothing)."""
    from scfront.models.randomness import is_randomized

    if not is_randomized(model):
        if requested is not None:
            raise ConfigError("a model seed was given, but the model draws no randomness at test time")
        return None
    return 0 if requested is None else int(requested)


def finalize(out_dir: str | Path) -> dict[str, Any]:
    """Write results.json, report.md and adversarials.safetensors of a complete evaluation."""
    out_dir = Path(out_dir)
    col = collect(out_dir)
    verdicts = judge_checks(col, StateStore(out_dir)) if col.spec.checks else {}
    results = build_results(col, verdicts)
    save_adversarials(out_dir / ADVERSARIALS_FILE, stored_adversarials(col))
    atomic_write_json(out_dir / RESULTS_FILE, results)
    atomic_write_text(out_dir / REPORT_FILE, render_report(results))
    return results


def merge(shard_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Combine the unit files of shards run into separate folders, then :func:`finalize`."""
    if not shard_dirs:
        raise ConfigError("evaluate-merge needs at least one shard folder")
    out_dir = Path(out_dir)
    specs: list[EvalSpec] = [read_spec(Path(d)) for d in shard_dirs]
    for d, spec in zip(shard_dirs, specs):
        if spec != specs[0]:
            raise ConfigError(f"{d} holds a different evaluation than {shard_dirs[0]}; cannot merge")
    # A merge that fails (missing units, a bad shard file) removes the folder it created, so
    # nothing is left that changes the next run; an existing --out folder is never deleted.
    created = not out_dir.exists()
    try:
        write_or_check_spec(out_dir, specs[0])
        target = StateStore(out_dir)
        for d in shard_dirs:
            source = StateStore(Path(d))
            if source.root.resolve() == target.root.resolve():
                continue
            for rel in source.unit_files():
                dst = target.root / rel
                if not dst.is_file():
                    atomic_write(dst, lambda tmp, src=source.root / rel: shutil.copyfile(src, tmp))
        return finalize(out_dir)
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
