"""Accuracy against the attack radius ε, for each norm, until the accuracy reaches 0.

For each norm the radius doubles along :data:`EPS_GRIDS` (which contains the paper's radius:
Linf 8/255, L2 0.6, L1 30) and the sweep stops at the first ε where no image is classified
correctly any more, or at the grid's end. Each point is PGD with the step size in the paper's
ratio ``step = ε/8`` (1/255 at 8/255, 0.075 at 0.6, 3.75 at 30; docs/method.md §7). Points are
saved as they finish (``sweep.json``), so a rerun only computes the missing ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scfront.attacks.base import predict
from scfront.attacks.registry import create_attack
from scfront.evaluation.spec import unit_generator
from scfront.io import atomic_write_json

log = logging.getLogger(__name__)

# ε grids per norm, doubling; the last point is large enough to break any classifier.
EPS_GRIDS: dict[str, tuple[float, ...]] = {
    "Linf": tuple(k / 255.0 for k in (0, 2, 4, 8, 16, 32, 64, 128)),
    "L2": (0.0, 0.15, 0.3, 0.6, 1.2, 2.4, 4.8, 9.6),
    "L1": (0.0, 7.5, 15.0, 30.0, 60.0, 120.0, 240.0, 480.0),
}
ATTACK_OF_NORM = {"Linf": "pgd-linf", "L2": "pgd-l2", "L1": "pgd-l1-sparse"}
STEP_RATIO = 1.0 / 8.0
SWEEP_FILE = "sweep.json"


def _accuracy_at(model: nn.Module, norm: str, eps: float, x: torch.Tensor, y: torch.Tensor,
                 steps: int, seed: int) -> float:
    """Fraction of (x, y) still classified correctly after PGD of radius ``eps``."""
    if eps == 0.0:
        return float((predict(model, x) == y).float().mean())
    attack = create_attack(ATTACK_OF_NORM[norm], eps=eps, rel_step_size=STEP_RATIO, steps=steps)
    result = attack(model, x, y, generator=unit_generator(seed, "sweep", norm, eps, device=x.device))
    return float((~result.success).float().mean())


def accuracy_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, out_dir: str | Path, *,
                   steps: int, seed: int = 0, norms: tuple[str, ...] = ("Linf", "L2", "L1"),
                   batch_size: int = 250) -> dict[str, list[dict[str, float]]]:
    """Run (or resume) the sweeps of ``model`` on ``(x, y)``; returns {norm: [{eps, accuracy}]}.

    Args:
        model: (N, 3, H, W) float in [0, 1] -> logits; used in eval mode.
        x: (N, 3, H, W) float in [0, 1]; y: (N,) int64.
        out_dir: folder of ``sweep.json`` (created).
        steps: PGD iterations per point.
    """
    out_dir = Path(out_dir)
    path = out_dir / SWEEP_FILE
    done: dict[str, list[dict[str, float]]] = json.loads(path.read_text()) if path.is_file() else {}
    model.eval()
    for norm in norms:
        points = done.setdefault(norm, [])
        for eps in EPS_GRIDS[norm]:
            if points and points[-1]["accuracy"] == 0.0:
                break  # the accuracy has reached 0: larger radii add nothing
            if any(abs(p["eps"] - eps) < 1e-12 for p in points):
                continue
            correct = 0.0
            for start in range(0, int(x.shape[0]), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                correct += _accuracy_at(model, norm, eps, xb, yb, steps, seed) * int(xb.shape[0])
            points.append({"eps": eps, "accuracy": correct / int(x.shape[0])})
            log.info("sweep %s eps=%.4g: accuracy %.4f", norm, eps, points[-1]["accuracy"])
            atomic_write_json(path, done)
    return done


def read_sweep(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
