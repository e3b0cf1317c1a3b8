"""Running an evaluation: the clean pass, then each attack of the suite, unit by unit.

AutoAttack protocol: with ``cascade`` each attack runs only on the points that are correctly
classified and that no earlier attack of its column broke (the whole suite is one column unless
the spec groups the attacks into columns); without it every attack runs on every correctly
classified point (each attack's standalone accuracy). Every unit is saved when done
(:mod:`scfront.evaluation.state`), so a killed run resumes where it stopped, and shards
(:class:`~scfront.evaluation.spec.Shard`) split the batches between processes or machines.

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
from typing import TYPE_CHECKING, Sequence

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

    def batch(self, sl: slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (B, C, H, W) float32 in [0, 1], y (B,) int64) on ``device``."""
        return self.images[sl].to(device).float().div_(255.0), self.labels[sl].to(device)


class QueryCounter(nn.Module):
    """Counts the images a model is evaluated on (forward passes, with or without gradient)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += int(x.shape[0])
        return self.model(x)


def _execute(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: Randomness, starts: StartPool | None) -> dict[str, torch.Tensor]:
    """One attack on one set of points.

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
    out["success"] = result.success
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
              progress: bool = True, starts: StartPool | None = None) -> None:
    """Compute every unit of ``shard`` that is not stored yet (clean pass, then the attacks).

    Args:
        model: maps (B, C, H, W) float in [0, 1] to logits; put in eval mode on ``device``.
        data: the whole subset (every shard holds it; each works on its own batches).
        spec: must describe ``attacks`` (same names, in order) and ``data``.
        starts: starting images for the attacks that take them (``Attack.uses_starts``), e.g.
            ``StartPool(test_set.images)``; None: those attacks find their own starts.
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
    for pos, attack in enumerate(attacks):
        bar = tqdm(batches, desc=f"[{pos + 1}/{len(attacks)}] {attack.name}", disable=not progress)
        for done, b in enumerate(bar, 1):
            path = store.attack_path(pos, attack.name, b)
            if path.is_file():
                continue
            x, y = data.batch(spec.batch_slice(b), device)
            active = store.read(store.clean_path(b))[0]["pred"].to(device) == y
            if spec.cascade:
                for prev in spec.column_peers(pos):
                    earlier = store.read(store.attack_path(prev, attacks[prev].name, b))[0]
                    active &= ~earlier["success"].to(device)
            idx = active.nonzero().squeeze(1)
            tensors: dict[str, torch.Tensor] = {"ran": active, "success": torch.zeros_like(active)}
            queries_before = counter.queries
            start = time.perf_counter()
            if idx.numel():
                # one stream per attacked image, keyed by its dataset index: what it draws does
                # not depend on the batch size, the shard or which batch mates the cascade left
                images = data.indices[spec.batch_slice(b)][idx.cpu()]
                gen = unit_generators(spec.seed, images, spec.position_in_column(pos), attack.name, device=device)
                reseed_model(counter, spec, pos, attack.name, b)
                out = _execute(attack, counter, x[idx], y[idx], gen, starts)
                tensors["success"][idx] = out.pop("success")
                tensors.update(out)
            else:
                tensors["x_adv"] = torch.zeros((0,) + tuple(x.shape[1:]))
                if isinstance(attack, MinimumNormAttack):
                    tensors["norm"] = torch.zeros(0, dtype=torch.float64)
            meta = {"seconds": time.perf_counter() - start, "queries": counter.queries - queries_before}
            store.write(path, tensors, meta)
            bar.set_postfix(broken=int(tensors["success"].sum()), ran=int(idx.numel()))
            if not progress:  # background runs: one log line per finished unit instead of a bar
                log.info("%s: [%d/%d] %s batch %d (%d of %d here): broke %d of %d in %.0f s", out_dir.name,
                         pos + 1, len(attacks), attack.name, b, done, len(batches),
                         int(tensors["success"].sum()), int(idx.numel()), meta["seconds"])
