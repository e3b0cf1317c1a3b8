"""From stored units to results: results.json, report.md, adversarials.safetensors; merging shards.

Everything here reads only the evaluation folder (never the model), so the results of one
uninterrupted run, of a resumed run and of merged shards are computed by the same code from the
same unit files, and are identical (timings aside).

Accuracies are fractions of all ``n_images`` images. With ``cascade`` an attack's
``robust_accuracy`` is the accuracy after it and every earlier attack (points broken earlier count
as broken); ``standalone_accuracy`` is the fraction of the points it was run on that it did not
break. Without ``cascade`` both describe the attack alone. ``worst_case_accuracy`` counts an image
as robust only if it is classified correctly and no attack broke it.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from scfront.attacks.blackbox.stored import StoredAdversarials, StoredAttack, save_adversarials
from scfront.errors import ConfigError
from scfront.evaluation.spec import EvalSpec, read_spec, write_or_check_spec
from scfront.evaluation.state import StateStore
from scfront.io import atomic_write, atomic_write_json, atomic_write_text

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
ADVERSARIALS_FILE = "adversarials.safetensors"


@dataclass(frozen=True)
class AttackOutcome:
    """One attack over the whole subset (positions in subset order)."""

    ran: torch.Tensor  # (N,) bool
    success: torch.Tensor  # (N,) bool, False where not run
    positions: torch.Tensor  # (K,) int64, where ran
    x_adv: torch.Tensor  # (K, C, H, W) float32
    norm: torch.Tensor | None  # (K,) float64 unconstrained norms (minimum-norm attacks), inf = none found
    seconds: float
    queries: int


@dataclass(frozen=True)
class Collected:
    spec: EvalSpec
    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    pred: torch.Tensor
    clean_seconds: float
    attacks: tuple[AttackOutcome, ...]

    @property
    def correct(self) -> torch.Tensor:
        return self.pred == self.labels

    def broken_by(self) -> torch.Tensor:
        """(N,) int64: first attack that broke each image, -1 robust, -2 misclassified clean."""
        out = torch.full_like(self.labels, -1)
        for pos in reversed(range(len(self.attacks))):
            out[self.attacks[pos].success] = pos
        out[~self.correct] = -2
        return out


def missing_units(out_dir: Path, spec: EvalSpec) -> list[str]:
    store = StateStore(out_dir)
    paths = [store.subset_path] + [store.clean_path(b) for b in range(spec.n_batches)]
    paths += [store.attack_path(p, a.name, b) for p, a in enumerate(spec.attacks) for b in range(spec.n_batches)]
    return [str(p.relative_to(store.root)) for p in paths if not p.is_file()]


def collect(out_dir: str | Path) -> Collected:
    """Read every unit of a complete evaluation; ConfigError naming what is missing otherwise."""
    out_dir = Path(out_dir)
    spec = read_spec(out_dir)
    missing = missing_units(out_dir, spec)
    if missing:
        raise ConfigError(f"{out_dir}: the evaluation is incomplete ({len(missing)} units missing, "
                          f"e.g. {', '.join(missing[:3])}); run the remaining shards or resume")
    store = StateStore(out_dir)
    subset, _ = store.read(store.subset_path)
    preds, clean_seconds = [], 0.0
    for b in range(spec.n_batches):
        tensors, meta = store.read(store.clean_path(b))
        preds.append(tensors["pred"])
        clean_seconds += float(meta.get("seconds", 0.0))
    outcomes = []
    for pos, attack in enumerate(spec.attacks):
        ran, success, x_adv, norms, positions = [], [], [], [], []
        seconds, queries = 0.0, 0
        for b in range(spec.n_batches):
            tensors, meta = store.read(store.attack_path(pos, attack.name, b))
            ran.append(tensors["ran"])
            success.append(tensors["success"])
            positions.append(tensors["ran"].nonzero().squeeze(1) + spec.batch_slice(b).start)
            x_adv.append(tensors["x_adv"])
            if "norm" in tensors:
                norms.append(tensors["norm"])
            seconds += float(meta.get("seconds", 0.0))
            queries += int(meta.get("queries", 0))
        outcomes.append(AttackOutcome(torch.cat(ran), torch.cat(success), torch.cat(positions),
                                      torch.cat(x_adv), torch.cat(norms) if norms else None, seconds, queries))
    return Collected(spec, subset["indices"], subset["images"], subset["labels"], torch.cat(preds),
                     clean_seconds, tuple(outcomes))


def _fraction(mask: torch.Tensor, total: int) -> float:
    return float(mask.sum()) / total if total else 0.0


def build_results(col: Collected, checks: dict[str, Any]) -> dict[str, Any]:
    """The results.json object (DESIGN.md schema plus extras)."""
    spec, n = col.spec, col.spec.n_images
    correct = col.correct
    robust = correct.clone()
    attacks = []
    for attack, outcome in zip(spec.attacks, col.attacks):
        if spec.cascade:
            robust &= ~outcome.success
            accuracy = _fraction(robust, n)
        else:
            accuracy = _fraction(correct & ~outcome.success, n)
        n_run = int(outcome.ran.sum())
        entry: dict[str, Any] = {
            "name": attack.name, "norm": attack.norm, "eps": attack.eps, "params": attack.params,
            "robust_accuracy": accuracy, "seconds": outcome.seconds,
            "standalone_accuracy": 1.0 - _fraction(outcome.success, n_run) if n_run else None,
            "n_run": n_run, "n_broken": int(outcome.success.sum()), "queries": outcome.queries,
        }
        if outcome.norm is not None:
            found = outcome.norm[torch.isfinite(outcome.norm)]
            entry["unconstrained"] = {
                "median_norm": statistics.median(found.tolist()) if found.numel() else None,
                "found": int(found.numel()), "ran": n_run,
            }
        attacks.append(entry)
    broken_by = col.broken_by()
    return {
        "model": spec.model, "dataset": spec.dataset, "n_images": n, "subset_seed": spec.subset_seed,
        "clean_accuracy": _fraction(correct, n),
        "attacks": attacks,
        "worst_case_accuracy": _fraction(broken_by == -1, n),
        "checks": checks,
        "model_sha256": spec.model_sha256, "seed": spec.seed, "batch_size": spec.batch_size,
        "cascade": spec.cascade, "clean_seconds": col.clean_seconds,
        "indices": col.indices.tolist(),
        "broken_by": broken_by.tolist(),
    }


def stored_adversarials(col: Collected) -> StoredAdversarials:
    items = tuple(
        StoredAttack(a.name, a.norm or "", float(a.eps or 0.0), o.positions, o.x_adv, o.success[o.positions])
        for a, o in zip(col.spec.attacks, col.attacks)
    )
    return StoredAdversarials(col.indices, col.images, col.labels, col.pred, col.broken_by(), items)


def finalize(out_dir: str | Path) -> dict[str, Any]:
    """Write results.json, report.md and adversarials.safetensors of a complete evaluation."""
    from scfront.evaluation.checks import summarize_checks
    from scfront.evaluation.report import render_report

    out_dir = Path(out_dir)
    col = collect(out_dir)
    checks = summarize_checks(col, StateStore(out_dir)) if col.spec.checks else {}
    results = build_results(col, checks)
    save_adversarials(out_dir / ADVERSARIALS_FILE, stored_adversarials(col))
    atomic_write_json(out_dir / RESULTS_FILE, results)
    atomic_write_text(out_dir / REPORT_FILE, render_report(results))
    return results


def merge(shard_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Combine the unit files of shards run into separate folders, then :func:`finalize`."""
    if not shard_dirs:
        raise ConfigError("evaluate-merge needs at least one shard folder")
    out_dir = Path(out_dir)
    specs = [read_spec(Path(d)) for d in shard_dirs]
    for d, spec in zip(shard_dirs, specs):
        if spec != specs[0]:
            raise ConfigError(f"{d} holds a different evaluation than {shard_dirs[0]}; cannot merge")
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
