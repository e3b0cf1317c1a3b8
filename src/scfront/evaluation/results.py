"""From stored units to results: the collected outcomes and the results.json object.

Everything here reads only the evaluation folder (never the model), so the results of one
uninterrupted run, of a resumed run and of merged shards are computed by the same code from the
same unit files, and are identical (timings aside). Writing the files is
:func:`scfront.evaluation.protocol.finalize`.

Accuracies are fractions of all ``n_images`` images. With ``cascade`` an attack's
``robust_accuracy`` is the accuracy after it and every earlier attack of its column (points
broken earlier count as broken); ``standalone_accuracy`` is the fraction of the points it was run
on that it did not break. Without ``cascade`` both describe the attack alone.
``worst_case_accuracy`` counts an image as robust only if it is classified correctly and no
attack broke it. When the attacks are grouped into columns, ``columns`` gives each column's
accuracy: the per-example worst case over the column's attacks.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from scfront.attacks.blackbox.stored import StoredAdversarials, StoredAttack
from scfront.errors import ConfigError
from scfront.evaluation.spec import EvalSpec, read_spec
from scfront.evaluation.state import StateStore

# The files of a finished evaluation folder (written by scfront.evaluation.protocol.finalize).
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
    gradient_queries: int = 0  # the queries recorded by autograd (forward + backward)


@dataclass(frozen=True)
class Collected:
    """A complete evaluation read back from its folder (positions in subset order).

    Attributes:
        indices: (N,) int64 test-set indices; images: (N, C, H, W) uint8; labels, pred: (N,)
        int64 true and clean-predicted labels; attacks: one outcome per attack of ``spec``.
    """

    spec: EvalSpec
    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    pred: torch.Tensor
    clean_seconds: float
    attacks: tuple[AttackOutcome, ...]

    @property
    def correct(self) -> torch.Tensor:
        """(N,) bool: classified correctly without attack."""
        return self.pred == self.labels

    def robust(self, positions: Sequence[int] | None = None) -> torch.Tensor:
        """(N,) bool: correct and broken by none of the attacks at ``positions`` (None: all)."""
        out = self.correct.clone()
        for pos in range(len(self.attacks)) if positions is None else positions:
            out &= ~self.attacks[pos].success
        return out

    def broken_by(self) -> torch.Tensor:
        """(N,) int64: first attack that broke each image, -1 robust, -2 misclassified clean."""
        out = torch.full_like(self.labels, -1)
        for pos in reversed(range(len(self.attacks))):
            out[self.attacks[pos].success] = pos
        out[~self.correct] = -2
        return out


@dataclass(frozen=True)
class StoredRun:
    """What one attack of the evaluation did to the first ``k`` images of the subset, read from
    the stored units (what the checks reuse instead of attacking again).

    Attributes:
        ran: (k,) bool, the attack ran on the image. success: (k,) bool, it broke it.
        x_adv: (k, C, H, W) float32, its point where it ran, the clean image elsewhere.
    """

    ran: torch.Tensor
    success: torch.Tensor
    x_adv: torch.Tensor

    def first(self, k: int) -> "StoredRun":
        """The first ``k`` rows."""
        return StoredRun(self.ran[:k], self.success[:k], self.x_adv[:k])


def stored_runs(out_dir: str | Path, spec: EvalSpec, k: int) -> dict[int, StoredRun]:
    """{attack position: :class:`StoredRun`} on the first ``k`` images of the subset, for every
    attack whose units covering them are all stored (a shard may lack some; those positions are
    left out)."""
    store = StateStore(out_dir)
    if not store.subset_path.is_file():
        return {}
    images = store.read(store.subset_path)[0]["images"][:k]
    x = images.float().div(255.0)
    batches = range(-(-k // spec.batch_size))
    out: dict[int, StoredRun] = {}
    for pos, attack in enumerate(spec.attacks):
        paths = [store.attack_path(pos, attack.name, b) for b in batches]
        if not all(path.is_file() for path in paths):
            continue
        ran, success, x_adv = [], [], []
        for b, path in zip(batches, paths):
            tensors = store.read(path)[0]
            points = x[b * spec.batch_size:(b + 1) * spec.batch_size].clone()
            rows = tensors["ran"][:points.shape[0]]
            points[rows] = tensors["x_adv"][:int(rows.sum())].float()
            ran.append(rows)
            success.append(tensors["success"][:points.shape[0]])
            x_adv.append(points)
        out[pos] = StoredRun(torch.cat(ran), torch.cat(success), torch.cat(x_adv))
    return out


def missing_units(out_dir: Path, spec: EvalSpec) -> list[str]:
    """The unit files of ``spec`` not yet in ``out_dir`` (relative to its state folder)."""
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
        seconds, queries, gradient_queries = 0.0, 0, 0
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
            gradient_queries += int(meta.get("gradient_queries", 0))
        outcomes.append(AttackOutcome(torch.cat(ran), torch.cat(success), torch.cat(positions),
                                      torch.cat(x_adv), torch.cat(norms) if norms else None, seconds, queries,
                                      gradient_queries))
    return Collected(spec, subset["indices"], subset["images"], subset["labels"], torch.cat(preds),
                     clean_seconds, tuple(outcomes))


def _fraction(mask: torch.Tensor, total: int) -> float:
    return float(mask.sum()) / total if total else 0.0


def _median_norm(outcome: AttackOutcome) -> dict[str, Any]:
    """Median norm of the unconstrained adversarials a minimum-norm attack found."""
    assert outcome.norm is not None
    found = outcome.norm[torch.isfinite(outcome.norm)]
    return {"median_norm": statistics.median(found.tolist()) if found.numel() else None,
            "found": int(found.numel()), "ran": int(outcome.ran.sum())}


def _columns(col: Collected) -> dict[str, Any]:
    """{label: accuracy (worst case over the column's attacks), attack names, seconds, median
    norm of its first minimum-norm attack (None if it has none)}."""
    out: dict[str, Any] = {}
    for label, positions in col.spec.columns.items():
        outcomes = [col.attacks[p] for p in positions]
        medians = [_median_norm(o)["median_norm"] for o in outcomes if o.norm is not None]
        out[label] = {"attacks": [col.spec.attacks[p].name for p in positions],
                      "accuracy": _fraction(col.robust(positions), col.spec.n_images),
                      "median_norm": medians[0] if medians else None,
                      "seconds": sum(o.seconds for o in outcomes)}
    return out


def build_results(col: Collected, checks: dict[str, Any]) -> dict[str, Any]:
    """The results.json object (docs/evaluation.md §7).

    Args:
        col: the collected evaluation. checks: {check name: verdict as JSON} (may be empty).
    """
    spec, n = col.spec, col.spec.n_images
    correct = col.correct
    attacks = []
    for pos, (attack, outcome) in enumerate(zip(spec.attacks, col.attacks)):
        if spec.cascade:
            accuracy = _fraction(col.robust(spec.column_peers(pos) + (pos,)), n)
        else:
            accuracy = _fraction(correct & ~outcome.success, n)
        n_run = int(outcome.ran.sum())
        entry: dict[str, Any] = {
            "name": attack.name, "norm": attack.norm, "eps": attack.eps, "params": attack.params,
            "robust_accuracy": accuracy, "seconds": outcome.seconds,
            "standalone_accuracy": 1.0 - _fraction(outcome.success, n_run) if n_run else None,
            "n_run": n_run, "n_broken": int(outcome.success.sum()), "queries": outcome.queries,
            "gradient_queries": outcome.gradient_queries,
        }
        if attack.column is not None:
            entry["column"] = attack.column
        if outcome.norm is not None:
            entry["unconstrained"] = _median_norm(outcome)
        attacks.append(entry)
    broken_by = col.broken_by()
    columns = {"columns": _columns(col)} if spec.columns else {}
    return {
        "model": spec.model, "dataset": spec.dataset, "n_images": n, "subset_seed": spec.subset_seed,
        "clean_accuracy": _fraction(correct, n),
        "attacks": attacks,
        "worst_case_accuracy": _fraction(broken_by == -1, n),
        **columns,
        "checks": checks,
        "model_sha256": spec.model_sha256, "seed": spec.seed, "batch_size": spec.batch_size,
        "cascade": spec.cascade, "clean_seconds": col.clean_seconds,
        "attack_seconds": sum(o.seconds for o in col.attacks),
        "check_seconds": sum(float(c.get("seconds", 0.0)) for c in checks.values()),
        "indices": col.indices.tolist(),
        "broken_by": broken_by.tolist(),
    }


def without_timings(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of a results.json object without its wall-clock times (top-level ``*_seconds`` and
    each attack's, column's and check's ``seconds``): what runs of one evaluation share exactly."""
    out = {k: v for k, v in results.items() if not k.endswith("_seconds")}
    out["attacks"] = [{k: v for k, v in a.items() if k != "seconds"} for a in results["attacks"]]
    out["checks"] = {name: {k: v for k, v in c.items() if k != "seconds"} for name, c in results["checks"].items()}
    if "columns" in results:
        out["columns"] = {label: {k: v for k, v in c.items() if k != "seconds"}
                          for label, c in results["columns"].items()}
    return out


def stored_adversarials(col: Collected) -> StoredAdversarials:
    """Every attack's adversarials with the clean subset, for ``adversarials.safetensors``."""
    items = tuple(
        StoredAttack(a.name, a.norm or "", float(a.eps or 0.0), o.positions, o.x_adv, o.success[o.positions])
        for a, o in zip(col.spec.attacks, col.attacks)
    )
    return StoredAdversarials(col.indices, col.images, col.labels, col.pred, col.broken_by(), items)
