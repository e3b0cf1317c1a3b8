"""Running an evaluation: the clean pass, then each attack of the suite, unit by unit.

AutoAttack protocol: with ``cascade`` each attack runs only on the points that are correctly
classified and that no earlier attack of its column broke (the whole suite is one column unless
the spec groups the attacks into columns); without it every attack runs on every correctly
classified point (each attack's standalone accuracy). Every unit is saved when done
(:mod:`scfront.evaluation.state`), so a killed run resumes where it stopped, and shards
(:class:`~scfront.evaluation.spec.Shard`) split the batches between processes or machines.

An attack does not run batch by batch on the few points each batch has left: the points it runs
on across the shard's pending batches are gathered into full groups of ``batch_size`` (AutoAttack
re-batches the same way), and a batch's unit file is written once all of its points are done.
Each image's random stream is keyed by its dataset index and every attack computes per image,
so the grouping changes nothing but the speed. The attacks may run on a faster copy of the model
(:func:`~scfront.models.prepare_for_attack`, BatchNorm folded): then the verdict on every returned
point is re-checked on the model itself, and the clean pass uses the model itself.

Minimum-norm attacks (:class:`~scfront.attacks.base.MinimumNormAttack`: Boundary, HopSkipJump,
ZOO) return the unconstrained adversarial and its ε-constrained verdict; the norm of what they
find is kept (the paper reports its median) and the verdict is stored like any other attack's
result. Every stored adversarial is asserted to lie in its ε-ball and in [0, 1].

This module runs the attack units only; :mod:`scfront.evaluation.protocol` runs them, then the
gradient-masking checks, then writes the results.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from scfront.attacks.base import Attack, MinimumNormAttack, MinimumNormResult, predict
from scfront.errors import ConfigError
from scfront.evaluation.spec import EvalSpec, Shard, unit_generators, write_or_check_spec
from scfront.evaluation.state import StateStore
from scfront.sampling import Randomness

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalData:
    """The evaluated subset: indices (N,) int64 into the test set, images (N, C, H, W) uint8,
    labels (N,) int64, in subset order."""

    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor

    def batch(self, sl: slice | torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (B, C, H, W) float32 in [0, 1], y (B,) int64) on ``device`` of the positions ``sl``
        (a slice, or (B,) int64 positions in subset order)."""
        return self.images[sl].to(device).float().div_(255.0), self.labels[sl].to(device)


class QueryCounter(nn.Module):
    """Counts the images a model is evaluated on: ``queries`` every forward pass,
    ``gradient_queries`` those recorded by autograd (each attack here follows them with a
    backward pass), so a unit's model cost is ``gradient_queries`` forward + backward passes and
    ``queries − gradient_queries`` plain forward passes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.queries = 0
        self.gradient_queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += int(x.shape[0])
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            self.gradient_queries += int(x.shape[0])
        return self.model(x)


def _execute(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: Randomness, starts: StartPool | None,
             verify: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """One attack on one set of points.

    ``verify``: the model whose prediction on the returned points is the verdict when ``model``
    is a faster copy of it (:func:`~scfront.models.prepare_for_attack`); None: ``model``'s own.

    Returns:
        ``x_adv`` (K, C, H, W) float32 inside the attack's ε-ball and [0, 1], ``success`` (K,)
        bool, and for minimum-norm attacks ``norm`` (K,) float64: the norm of the unconstrained
        adversarial, ``inf`` where none was found.
    """
    result = attack(model, x, y, generator=generator, starts=starts)
    threat = attack.threat
    out: dict[str, torch.Tensor] = {}
    if isinstance(result, MinimumNormResult):
        out["norm"] = result.norm
    inside = threat.contains(result.x_adv, x)
    if not bool(inside.all()):
        raise AssertionError(f"{attack.name}: {int((~inside).sum())} adversarials outside the "
                             f"{threat.norm.value} ball of radius {threat.eps} or [0, 1]")
    out["x_adv"] = result.x_adv.float()
    out["success"] = result.success if verify is None else predict(verify, result.x_adv) != y
    return out


def reseed_model(model: nn.Module, spec: EvalSpec, *unit: object) -> None:
    """Reseed a randomised model's own stream for one unit of work (``spec.model_seed`` not
    None): ``seed_model(model, model_seed, *unit)``. The model's noise then depends only on the
    unit (clean pass or attack position and name, batch; ``"check", name`` for a check), never
    on what ran before it, so resuming and shards give the same draws; it is keyed apart from
    the attacks' streams (:mod:`scfront.models.randomness`)."""
    if spec.model_seed is not None:
        from scfront.models.randomness import seed_model

        seed_model(model, spec.model_seed, *unit)


def run_units(model: nn.Module, data: EvalData, spec: EvalSpec, attacks: Sequence[Attack],
              out_dir: str | Path, shard: Shard = Shard(), device: torch.device | str = "cpu",
              progress: bool = True, starts: StartPool | None = None, *,
              attack_model: Callable[[], nn.Module | None] | None = None, rebatch: bool = True) -> None:
    """Compute every unit of ``shard`` that is not stored yet (clean pass, then the attacks).

    Args:
        model: maps (B, C, H, W) float in [0, 1] to logits; put in eval mode on ``device``.
        data: the whole subset (every shard holds it; each works on its own batches).
        spec: must describe ``attacks`` (same names, in order) and ``data``.
        starts: starting images for the attacks that take them (``Attack.uses_starts``), e.g.
            ``StartPool(test_set.images)``; None: those attacks find their own starts.
        attack_model: builds a faster copy of ``model`` for the attacks to run on
            (:func:`~scfront.models.prepare_for_attack`), or returns None; called once, when
            the first attack unit with work is reached (a resumed run with every attack unit
            stored builds nothing). The clean pass and every verdict (is the returned point
            misclassified?) stay ``model``'s. None: attack ``model``.
        rebatch: gather the points an attack runs on across this shard's pending batches into
            full groups of ``spec.batch_size`` (AutoAttack re-batches its robust points the same
            way) instead of attacking each batch's remainder on its own. The unit files stay
            per batch and the streams per image, so the stored results are those of the
            per-batch run (up to the rounding of batched kernels). Ignored for a randomised
            model (``spec.model_seed``): its noise is drawn per unit.
    """
    if [a.name for a in attacks] != [a.name for a in spec.attacks]:
        raise ConfigError("the attacks do not match the evaluation spec")
    out_dir = Path(out_dir)
    device = torch.device(device)
    store = StateStore(out_dir)
    write_or_check_spec(out_dir, spec)
    if not store.subset_path.is_file():
        store.write(store.subset_path, {"indices": data.indices, "images": data.images, "labels": data.labels})
    # the wrapper in eval mode like the model (a new nn.Module starts in training mode)
    counter = QueryCounter(model.to(device)).eval()
    batches = shard.batches(spec)
    for b in tqdm(batches, desc="clean", disable=not progress, leave=False):
        path = store.clean_path(b)
        if path.is_file():
            continue
        reseed_model(counter, spec, "clean", b)
        x, _ = data.batch(spec.batch_slice(b), device)
        start = time.perf_counter()
        pred = predict(counter, x)
        store.write(path, {"pred": pred}, {"seconds": time.perf_counter() - start})
    rebatch = rebatch and spec.model_seed is None
    attack_counter: QueryCounter | None = None
    verify: nn.Module | None = None
    for pos, attack in enumerate(attacks):
        pending = [b for b in batches if not store.attack_path(pos, attack.name, b).is_file()]
        if not pending:
            continue
        if attack_counter is None:  # the first attack with work: build the attack copy now
            fast = None if attack_model is None else attack_model()
            attack_counter = counter if fast is None else QueryCounter(fast.to(device)).eval()
            verify = None if fast is None else counter
        work = _AttackWork(pos, attack, data, spec, store, device, out_dir.name, len(attacks), len(batches),
                           log_units=not progress)
        plan = work.plan(pending)
        groups = _chunks(plan, spec.batch_size) if rebatch else [[piece] for piece in plan]
        bar = tqdm(groups, desc=f"[{pos + 1}/{len(attacks)}] {attack.name}", disable=not progress)
        for group in bar:
            work.run(group, attack_counter, starts, verify)
            bar.set_postfix(broken=work.broken, ran=work.ran)


#: Rows of one batch that one attack runs on: (batch, (K,) int64 positions inside the batch).
Piece = tuple[int, torch.Tensor]


def _chunks(plan: Sequence[Piece], size: int) -> list[list[Piece]]:
    """The attacked rows of ``plan`` (in subset order) cut into groups of ``size`` rows, a
    batch's rows split between two groups where needed; a batch without attacked rows is a
    group of its own (its unit file is written without running anything)."""
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    filled = 0
    for b, rows in plan:
        if rows.numel() == 0:
            groups.append([(b, rows)])
            continue
        begin = 0
        while begin < rows.numel():
            take = min(size - filled, rows.numel() - begin)
            current.append((b, rows[begin:begin + take]))
            filled, begin = filled + take, begin + take
            if filled == size:
                groups.append(current)
                current, filled = [], 0
    if current:
        groups.append(current)
    return groups


class _AttackWork:
    """One attack over the pending batches of a shard: runs groups of points and writes a
    batch's unit file as soon as all of its attacked points are done."""

    def __init__(self, pos: int, attack: Attack, data: EvalData, spec: EvalSpec, store: StateStore,
                 device: torch.device, run_name: str, n_attacks: int, n_batches: int, log_units: bool) -> None:
        self.log_units = log_units  # background runs: one log line per stored unit instead of a bar
        self.pos, self.attack, self.data, self.spec, self.store, self.device = pos, attack, data, spec, store, device
        self.run_name, self.n_attacks, self.n_batches = run_name, n_attacks, n_batches
        self.masks: dict[int, torch.Tensor] = {}
        self.partial: dict[int, dict[str, list]] = {}
        self.broken = self.ran = self.written = 0

    def active_rows(self, b: int) -> torch.Tensor:
        """(K,) int64: the rows of batch ``b`` this attack runs on (correctly classified, and
        with ``cascade`` not broken by an earlier attack of the column)."""
        y = self.data.labels[self.spec.batch_slice(b)]
        active = self.store.read(self.store.clean_path(b))[0]["pred"] == y
        if self.spec.cascade:
            for prev in self.spec.column_peers(self.pos):
                earlier = self.store.read(self.store.attack_path(prev, self.spec.attacks[prev].name, b))[0]
                active &= ~earlier["success"]
        self.masks[b] = active
        return active.nonzero().squeeze(1)

    def plan(self, pending: Sequence[int]) -> list[Piece]:
        return [(b, self.active_rows(b)) for b in pending]

    def run(self, group: Sequence[Piece], model: QueryCounter, starts: StartPool | None,
            verify: nn.Module | None) -> None:
        """Attack the rows of ``group`` together, then store every batch it completes."""
        positions = torch.cat([rows + self.spec.batch_slice(b).start for b, rows in group])
        out: dict[str, torch.Tensor] = {}
        seconds, queries, gradient_queries = 0.0, 0, 0
        if positions.numel():
            x, y = self.data.batch(positions, self.device)
            # one stream per attacked image, keyed by its dataset index: what it draws does not
            # depend on the batch size, the shard or which images share its group
            gen = unit_generators(self.spec.seed, self.data.indices[positions],
                                  self.spec.position_in_column(self.pos), self.attack.name, device=self.device)
            reseed_model(model, self.spec, self.pos, self.attack.name, group[0][0])  # single-batch groups
            queries_before, gradient_before = model.queries, model.gradient_queries
            start = time.perf_counter()
            out = _execute(self.attack, model, x, y, gen, starts, verify)
            seconds, queries = time.perf_counter() - start, model.queries - queries_before
            gradient_queries = model.gradient_queries - gradient_before
        offset = 0
        for b, rows in group:
            k = rows.numel()
            share = k / positions.numel() if positions.numel() else 0.0
            acc = self.partial.setdefault(b, {"rows": [], "seconds": [], "queries": [], "gradient_queries": []})
            acc["rows"].append(rows)
            acc["seconds"].append(seconds * share)
            acc["queries"].append(queries * share)
            acc["gradient_queries"].append(gradient_queries * share)
            for key, value in out.items():
                acc.setdefault(key, []).append(value[offset:offset + k].cpu())
            offset += k
            if sum(r.numel() for r in acc["rows"]) == int(self.masks[b].sum()):
                self._write(b, self.partial.pop(b))

    def _write(self, b: int, acc: dict[str, list]) -> None:
        active = self.masks.pop(b)
        rows = torch.cat(acc["rows"])
        tensors: dict[str, torch.Tensor] = {"ran": active, "success": torch.zeros_like(active)}
        if rows.numel():
            tensors["success"][rows] = torch.cat(acc["success"])
            tensors["x_adv"] = torch.cat(acc["x_adv"])
            if "norm" in acc:
                tensors["norm"] = torch.cat(acc["norm"])
        else:
            shape = tuple(self.data.images.shape[1:])
            tensors["x_adv"] = torch.zeros((0,) + shape)
            if isinstance(self.attack, MinimumNormAttack):
                tensors["norm"] = torch.zeros(0, dtype=torch.float64)
        # a group's time and queries are shared among its batches by their number of points
        meta = {"seconds": sum(acc["seconds"]), "queries": int(round(sum(acc["queries"]))),
                "gradient_queries": int(round(sum(acc["gradient_queries"])))}
        self.store.write(self.store.attack_path(self.pos, self.attack.name, b), tensors, meta)
        self.written += 1
        broken = int(tensors["success"].sum())
        self.broken, self.ran = self.broken + broken, self.ran + int(rows.numel())
        if self.log_units:
            log.info("%s: [%d/%d] %s batch %d (%d of %d here): broke %d of %d in %.0f s", self.run_name,
                     self.pos + 1, self.n_attacks, self.attack.name, b, self.written, self.n_batches,
                     broken, int(rows.numel()), meta["seconds"])
